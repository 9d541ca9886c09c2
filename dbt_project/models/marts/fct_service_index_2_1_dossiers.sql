-- The dossiers that cost a unit points on criterion 2.1 of the service index (service-index.md), per month:
-- resolved late, resolved on time after two or more supplement requests, or pending overdue at the month's
-- end (a dossier open past its due date over several month ends appears in each). What a unit can act on.
select
    month,
    unit_code,
    dossier_id,
    reason,
    procedure_code,
    due_at,
    finished_at,
    supplement_count
from {{ ref('int_service_index__on_time') }}
where reason is not null
