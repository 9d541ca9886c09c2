{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook=["{{ service_index_2_1_dossiers_plan() }}"],
        post_hook=[
            "{{ ensure_unique_index(['month', 'dossier_id']) }}",
            "{{ ensure_index('fct_service_index_2_1_dossiers_dossier_id', ['dossier_id']) }}",
            "{{ service_index_record_build(with_fingerprint=false) }}",
        ]
    )
}}
-- The dossiers that cost a unit points on criterion 2.1 of the service index (service-index.md), per month:
-- resolved late, resolved on time after two or more supplement requests, or pending overdue at the month's
-- end (a dossier open past its due date over several month ends appears in each). What a unit can act on.
--
-- Built from what changed (macros/service_index.sql): the pre-hook removes the running months — from the
-- month of the previous build's as-of date to tonight's — and the earlier rows of the dossiers the change log
-- names since the previous build; they are written again here from int_service_index__contributions. The
-- whole table is written when it has no previous build or the contributions were rebuilt.
with
{%- if is_incremental() %}
plan as (
    select * from service_index_2_1_plan
),

contributions as not materialized (
    -- Not materialized, though read more than once: each reader's filter reaches the table's indexes (a
    -- materialized CTE would copy all of the history first, and scan the copy without them).
    select 1 as sign, contributions.*
    from {{ ref('int_service_index__contributions') }} as contributions
),

rows as (
    -- A whole build.
    {{ service_index_expand(
        '(select * from contributions where (select rebuild_all from plan))',
        "'-infinity'::date", '(select r from plan)', kinds=('resolved', 'pending')
    ) }}
    union all
    -- The running months.
    {{ service_index_expand(
        '(select * from contributions where not (select rebuild_all from plan) and (resolved_month >= (select rmin from plan) or pending_until >= (select rmin from plan)))',
        '(select rmin from plan)', '(select r from plan)', kinds=('resolved', 'pending')
    ) }}
    union all
    -- The earlier months of the dossiers that changed.
    {{ service_index_expand(
        '(select * from contributions where not (select rebuild_all from plan) and dossier_id in (select dossier_id from service_index_2_1_changed))',
        "'-infinity'::date", "(select (rmin - interval '1 month')::date from plan)", kinds=('resolved', 'pending')
    ) }}
)
{%- else %}
rows as (
    {{ service_index_expand(
        '(select 1 as sign, contributions.* from ' ~ ref('int_service_index__contributions') ~ ' as contributions)',
        "'-infinity'::date", 'date_trunc(\'month\', ' ~ as_of_date() ~ ')::date', kinds=('resolved', 'pending')
    ) }}
)
{%- endif %}

select
    month,
    unit_code,
    dossier_id,
    reason,
    procedure_code,
    due_at,
    finished_at,
    supplement_count
from rows
where reason is not null
