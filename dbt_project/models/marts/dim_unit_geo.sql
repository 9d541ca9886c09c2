-- Where each unit of dim_unit is, for maps (BI tools, the morning report): one row per unit, located or not.
-- A unit whose statistics code the package does not know, or that has none, is listed with its status and no
-- coordinates, never dropped. A geography row computed for another code than the unit's current one (the
-- reference step failed after the units changed) is not trusted: not_looked_up until the next night.
with units as (
    select * from {{ ref('int_units__hierarchy') }}
),

geo as (
    select * from {{ ref('stg_geo__unit_geography') }}
),

joined as (
    select
        units.*,
        geo.unit_code is not null and geo.stat_code is not distinct from units.stat_code as is_current,
        geo.geo_status,
        geo.geo_name,
        geo.geo_dataset,
        geo.lat,
        geo.lon,
        geo.south,
        geo.west,
        geo.north,
        geo.east,
        geo.centre_source,
        geo.area_method,
        geo.area_geojson,
        geo.geo_package,
        geo.computed_at
    from units
    left join geo on geo.unit_code = units.unit_code
)

select
    unit_code,
    unit_name,
    level,
    unit_type,
    district_code,
    stat_code,
    case
        when stat_code is null then 'no_code'
        when is_current then geo_status
        else 'not_looked_up'
    end as geo_status,
    case when is_current then geo_name end as geo_name,
    case when is_current then geo_dataset end as geo_dataset,
    case when is_current then lat end as lat,
    case when is_current then lon end as lon,
    case when is_current then south end as south,
    case when is_current then west end as west,
    case when is_current then north end as north,
    case when is_current then east end as east,
    case when is_current then centre_source end as centre_source,
    case when is_current then area_method end as area_method,
    case when is_current then area_geojson end as area_geojson,
    case when is_current then geo_package end as geo_package,
    case when is_current then computed_at end as computed_at,
    valid_from,
    valid_to
from joined
