-- Each unit's lineage through mergers and closures (reorganisation.md): the unit in force as of the run that
-- its area passed to, following main successors (the first DonViKeThua) transitively; itself while in force.
-- A unit is in force as of the run when it has started (valid_from missing or not after the as-of date) and
-- not ended (valid_to missing or not before it). The chain stops, with no current unit, at a closed unit
-- without a successor, at a successor the API does not list (unknown), and at a cycle (a System's error:
-- never followed forever).
with recursive units as (
    select
        unit_code,
        unit_name,
        successor_codes[1] as main_successor,
        coalesce(valid_from <= {{ as_of_date() }}, true)
            and coalesce(valid_to >= {{ as_of_date() }}, true) as in_force
    from {{ ref('stg_api__units') }}
),

chain as (
    select unit_code, unit_code as node, array[unit_code] as path
    from units
    union all
    select chain.unit_code, next.unit_code, chain.path || next.unit_code
    from chain
    join units as here on here.unit_code = chain.node
    join units as next on next.unit_code = here.main_successor
    where not here.in_force and not next.unit_code = any(chain.path)
),

ends as (
    -- The last node reached: the longest path of each unit.
    select distinct on (chain.unit_code) chain.unit_code, chain.node, cardinality(chain.path) - 1 as successions
    from chain
    order by chain.unit_code, cardinality(chain.path) desc
)

select
    units.unit_code,
    case when not units.in_force then units.main_successor end as successor_code,
    case when last.in_force then last.unit_code end as current_unit_code,
    case when last.in_force then last.unit_name end as current_unit_name,
    ends.successions,
    units.in_force as is_in_force
from units
join ends on ends.unit_code = units.unit_code
join units as last on last.unit_code = ends.node
