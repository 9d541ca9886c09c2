-- One row per unit (đơn vị) ever served by GET /units, as its latest version: a unit the API stopped
-- listing (merged, closed) is kept with is_listed false, so old dossiers still find their unit.
with source as (
    select * from {{ source('api', 'reference_versions') }}
    where reference_versions.source = 'units'
),

latest as (
    select distinct on (record_key) record_key, payload, valid_to is null as is_listed
    from source
    order by record_key, valid_from desc
),

renamed as (
    select
        record_key as unit_code,
        nullif(payload ->> 'TenDonVi', '') as unit_name,
        {{ json_integer("payload -> 'CapDonVi'") }} as level,
        nullif(payload ->> 'LoaiDonVi', '') as unit_type,
        nullif(payload ->> 'MaDonViCha', '') as parent_code,
        nullif(payload ->> 'MaHanhChinh', '') as stat_code,
        {{ json_date("payload -> 'HieuLucTu'") }} as valid_from,
        {{ json_date("payload -> 'HieuLucDen'") }} as valid_to,
        -- DonViKeThua (optional): the units that took over a closed unit's area, the main successor first.
        -- Only non-empty strings count; anything else a server may send (not a list, numbers) is no successor.
        array(
            select successor.value #>> '{}'
            from jsonb_array_elements({{ json_array("payload -> 'DonViKeThua'") }})
                with ordinality as successor (value, position)
            where jsonb_typeof(successor.value) = 'string' and successor.value #>> '{}' <> ''
            order by successor.position
        ) as successor_codes,
        is_listed
    from latest
)

select * from renamed
