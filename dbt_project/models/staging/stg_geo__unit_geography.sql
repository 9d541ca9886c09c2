-- The units' geography as the nightly reference step wrote it (ingestion/geography.py): renames and types only.
select
    unit_code,
    nullif(stat_code, '') as stat_code,
    geo_status,
    geo_kind,
    geo_dataset,
    geo_name,
    lat,
    lon,
    south,
    west,
    north,
    east,
    centre_source,
    area_method,
    area_geojson,
    package as geo_package,
    computed_at
from {{ source('geo', 'unit_geography') }}
