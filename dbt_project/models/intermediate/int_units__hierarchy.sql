-- Each unit with its level and the district-level unit whose area it belongs to.
with units as (
    select * from {{ ref('stg_api__units') }}
),

parents as (
    select unit_code, level from units
)

select
    units.unit_code,
    units.unit_name,
    units.level,
    units.unit_type,
    units.parent_code,
    case
        when units.level = 2 then units.unit_code
        when units.level = 3 and parents.level = 2 then units.parent_code
    end as district_code,
    units.stat_code,
    units.valid_from,
    units.valid_to,
    units.is_listed
from units
left join parents on parents.unit_code = units.parent_code
