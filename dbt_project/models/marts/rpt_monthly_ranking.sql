-- The monthly publication (công khai): per month and level, units with at least var min_resolved resolved
-- dossiers, ranked by on-time rate ascending, then resolved descending; below target under 95%. Each month
-- ranks the units in force in that month.
with per_unit as (
    select month, unit_code, sum(resolved) as resolved, sum(early + on_time) as timely
    from {{ ref('fct_timeliness_monthly') }}
    group by 1, 2
),

eligible as (
    select
        per_unit.month,
        units.level,
        per_unit.unit_code,
        units.unit_name,
        per_unit.resolved,
        per_unit.timely::numeric / per_unit.resolved as on_time_rate
    from per_unit
    -- Only units in force in the month (reorganisation.md).
    {{ join_units_in_force('per_unit') }}
    where per_unit.resolved >= {{ var('min_resolved') }}
)

select
    month,
    level,
    unit_code,
    unit_name,
    resolved::integer as resolved,
    on_time_rate,
    row_number() over (partition by month, level order by on_time_rate, resolved desc, unit_code)::integer as rank,
    on_time_rate < {{ var('on_time_target') }} as below_target
from eligible
