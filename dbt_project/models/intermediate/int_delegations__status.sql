-- Each plan item's standing as of the run's as-of date (var as_of): done, active, behind plan.
with items as (
    select * from {{ ref('stg_api__delegations') }}
)

select
    {{ as_of_date() }} as as_of_date,
    items.delegation_id,
    items.plan,
    items.decision_no,
    items.decision_date,
    items.delegation_type,
    items.procedure_code,
    items.delegating_unit_code,
    items.receiving_unit_code,
    items.status,
    items.planned_date,
    items.status in ('DA_CAU_HINH', 'DANG_THUC_HIEN') as is_done,
    items.status <> 'HET_HIEU_LUC' as is_active,
    items.status <> 'HET_HIEU_LUC'
        and items.status not in ('DA_CAU_HINH', 'DANG_THUC_HIEN')
        and items.planned_date < {{ as_of_date() }} as is_behind_plan
from items
