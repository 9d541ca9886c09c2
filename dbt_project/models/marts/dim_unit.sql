-- Units, including those merged or closed (valid_to), so historical figures still join; with each unit's
-- lineage through the reorganisations (successor, and the unit in force today that its area passed to).
select
    units.unit_code,
    units.unit_name,
    units.level,
    units.unit_type,
    units.parent_code,
    units.district_code,
    units.valid_from,
    units.valid_to,
    lineage.successor_code,
    lineage.current_unit_code,
    lineage.current_unit_name,
    lineage.is_in_force
from {{ ref('int_units__hierarchy') }} as units
join {{ ref('int_units__lineage') }} as lineage on lineage.unit_code = units.unit_code
