{{
    config(
        materialized='incremental',
        unique_key='dossier_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        post_hook=["{{ ensure_constraints(not_null=['dossier_id', 'supplement_count', 'is_paid_online', 'has_reused_component',
                                                  'has_electronic_result', 'source_changed_at']) }}"],
        pre_hook=["{{ delete_new_tombstones(ref('stg_api__dossiers')) }}"],
        indexes=[{'columns': ['dossier_id'], 'unique': True}, {'columns': ['source_changed_at']}]
    )
}}
-- What the service index (service-index.md) needs of a dossier beyond fct_dossier, one narrow row per
-- current, non-deleted dossier, decoded from the JSON once, when the dossier changes: incremental on
-- raw.dossier_current.changed_at like fct_dossier, which it joins on dossier_id.
--
-- A table of its own rather than new fct_dossier columns: fct_dossier is incremental with
-- on_schema_change 'fail' (the pipeline never guesses values for old rows), so new columns there would stop
-- the first night after an upgrade of every existing warehouse until a full refresh of its largest table;
-- a new model is built whole on its first night and incrementally after, with nothing to refresh by hand.
-- It also keeps fct_dossier, a public table (marts.md), as it is.
--
-- The procedure's flags (MucDo, CoPhiLePhi, TraKetQuaGiay) are not copied here: the index joins the
-- catalogue as it is tonight, so a procedure whose entry changes is scored by its new entry the same night.

select
    dossier_id,
    supplement_count,
    refused_at,
    online_payment,
    -- DuocThanhToanTrucTuyen 1 (national portal) or 2 (provincial gateway); 0 or anything else is not.
    coalesce(online_payment in (1, 2), false) as is_paid_online,
    reused_component_count > 0 as has_reused_component,
    electronic_result_count > 0 as has_electronic_result,
    changed_at as source_changed_at
from {{ ref('stg_api__dossiers') }}
where not is_deleted
{% if is_incremental() %}
  and {{ changed_since_last_build('changed_at') }}
{% endif %}
