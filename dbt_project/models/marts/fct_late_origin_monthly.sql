-- Where late dossiers' delay began (metrics.md, "where dossiers are held up"), per resolution month ×
-- handling unit × office: fct_late_origin_monthly_by_field summed over the field. A late dossier has one field,
-- so its counts add up; which dossiers are late and the office of their first late step ('(không ghi nhận)'
-- when none is) are decided there, once.
select
    month,
    unit_code,
    office,
    sum(late_dossiers)::integer as late_dossiers
from {{ ref('fct_late_origin_monthly_by_field') }}
group by 1, 2, 3
