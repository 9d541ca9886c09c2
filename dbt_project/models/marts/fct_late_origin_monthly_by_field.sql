{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook=["{{ late_origin_months_delete() }}"],
        post_hook=["{{ ensure_unique_index(['month', 'unit_code', 'field_code', 'office']) }}",
                   "{{ late_origin_record_build() }}"]
    )
}}
-- depends_on: {{ ref('int_dossiers__classified') }}
-- Where late dossiers' delay began (metrics.md, "where dossiers are held up") with the field (lĩnh vực) in the
-- grain: the dossiers resolved late (fct_dossier.timeliness) per resolution month × handling unit × field ×
-- office of their first late step (int_dossiers__steps.is_first_late); '(không ghi nhận)' when no step of theirs
-- is late — their delay is recorded nowhere in the System. The field is the dossier's own
-- (fct_dossier.field_code, MaLinhVuc) — where the land field's delays begin. fct_late_origin_monthly is this
-- mart summed over the field.
--
-- Incremental by resolution month (macros/late_origins.sql): a night rebuilds the months of the late dossiers
-- it changed, read through fct_dossier's index on the late dossiers' month, not every late dossier.
with late_dossiers as (
    select dossier_id, unit_code, field_code, resolved_month
    from {{ ref('fct_dossier') }}
    where timeliness = 'late'
    {% if is_incremental() %}
      and {{ late_origin_months_missing() }}
    {% endif %}
)

select
    late_dossiers.resolved_month as month,
    late_dossiers.unit_code,
    late_dossiers.field_code,
    coalesce(first_late_step.office, '(không ghi nhận)') as office,
    count(*)::integer as late_dossiers
from late_dossiers
-- each late dossier's first late step (at most one: a unique index) read through that partial index — not
-- a hash of every first late step of the history against the night's few months (OFFSET 0 keeps the
-- subquery a lookup per dossier)
left join lateral (
    select steps.office
    from {{ ref('int_dossiers__steps') }} as steps
    where steps.dossier_id = late_dossiers.dossier_id and steps.is_first_late
    offset 0
) as first_late_step on true
group by 1, 2, 3, 4
