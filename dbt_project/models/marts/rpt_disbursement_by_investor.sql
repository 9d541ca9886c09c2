{{ config(tags=['finance']) }}
-- Disbursement by investor (chủ đầu tư) per month and plan year, from each month's latest report date.
-- Roll-ups add up amounts and divide once: rates are never averaged.
select
    month,
    report_date,
    plan_year,
    investor_unit_code,
    count(*)::integer as plan_lines,
    sum(plan_pm) as plan_pm,
    sum(plan_province) as plan_province,
    sum(disbursed_cumulative) as disbursed_cumulative,
    sum(disbursed_cumulative) / nullif(sum(plan_pm), 0) as rate_vs_pm,
    sum(disbursed_cumulative) / nullif(sum(plan_province), 0) as rate_vs_province
from {{ ref('int_disbursement__monthly_latest') }}
group by 1, 2, 3, 4
