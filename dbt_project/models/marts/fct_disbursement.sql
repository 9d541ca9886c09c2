{{ config(tags=['finance']) }}
-- Public-investment disbursement per report date × project × funding source, against the Prime Minister's
-- and the province's capital plans.
select
    report_date,
    project_code,
    investor_unit_code,
    funding_source,
    plan_year,
    is_carried_over,
    plan_pm,
    plan_province,
    disbursed_cumulative,
    disbursed_cumulative / nullif(plan_pm, 0) as rate_vs_pm,
    disbursed_cumulative / nullif(plan_province, 0) as rate_vs_province
from {{ ref('stg_finance__disbursement_rows') }}
