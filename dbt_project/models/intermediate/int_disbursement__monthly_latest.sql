-- A month's disbursement figures are those of the latest report date within the month.
with rows as (
    select * from {{ ref('stg_finance__disbursement_rows') }}
),

latest as (
    select date_trunc('month', report_date)::date as month, max(report_date) as report_date
    from rows
    group by 1
)

select latest.month, rows.*
from rows
join latest using (report_date)
