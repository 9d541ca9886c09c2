-- Units, including those merged or closed (valid_to), so historical figures still join.
select
    unit_code,
    unit_name,
    level,
    unit_type,
    parent_code,
    district_code,
    valid_from,
    valid_to
from {{ ref('int_units__hierarchy') }}
