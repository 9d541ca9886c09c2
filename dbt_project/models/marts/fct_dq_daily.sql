{{
    config(
        materialized='incremental',
        unique_key='run_date',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        full_refresh=false
    )
}}
-- Open data-quality issues per run date × handling unit × rule: the findings of the latest dossier
-- validation of each run date (a rerun of a night replaces its figures). Units with no open issue of a
-- rule have no row. Incremental: only run dates validated since the last build are rebuilt;
-- full_refresh=false keeps the history beyond the findings kept in dq.findings.
with validations as (
    select
        validation_id,
        run_date,
        finished_at,
        row_number() over (partition by run_date order by finished_at desc) as attempt
    from {{ ref('stg_dq__validation_runs') }}
    where suite = 'dossiers' and status in ('passed', 'warnings')
),

daily as (
    select * from validations
    where attempt = 1
    {% if is_incremental() %}
      and run_date in (
          select run_date from validations
          where finished_at > coalesce((select max(validated_through) from {{ this }}), '-infinity'::timestamptz)
      )
    {% endif %}
)

select
    daily.run_date,
    f.unit_code,
    f.rule_id,
    count(*)::int as open_issues,
    daily.finished_at as validated_through
from daily
inner join {{ ref('stg_dq__findings') }} as f on f.validation_id = daily.validation_id
group by daily.run_date, f.unit_code, f.rule_id, daily.finished_at
