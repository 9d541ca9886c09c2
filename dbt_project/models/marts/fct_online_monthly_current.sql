-- fct_online_monthly on today's units.
with summed as (
    {{ on_current_units(ref('fct_online_monthly'), [], ['received', 'online']) }}
)

select
    month, current_unit_code, unit_code, current_unit_name, received, online,
    online::numeric / received as online_rate
from summed
