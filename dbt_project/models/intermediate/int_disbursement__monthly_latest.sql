{{ config(tags=['finance']) }}
-- A month's disbursement figures are those of the latest report date within the month.
with rows as (
    select * from {{ ref('stg_finance__disbursement_rows') }}
),

latest as (
    select date_trunc('month', report_date)::date as month, max(report_date) as report_date
    from rows
    group by 1
)

select
    latest.month,
    rows.report_date,
    rows.project_code,
    rows.investor_unit_code,
    rows.funding_source,
    rows.plan_year,
    rows.is_carried_over,
    rows.plan_pm,
    rows.plan_province,
    rows.disbursed_cumulative
from rows
join latest using (report_date)
