-- fct_timeliness_monthly on today's units: a new commune's history is that of the units it was made from.
with summed as (
    {{ on_current_units(ref('fct_timeliness_monthly'), ['field_code'], ['resolved', 'early', 'on_time', 'late']) }}
)

select
    month, current_unit_code, unit_code, current_unit_name, field_code, resolved, early, on_time, late,
    (early + on_time)::numeric / resolved as on_time_rate,
    late::numeric / resolved as overdue_rate
from summed
