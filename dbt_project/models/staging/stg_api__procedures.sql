-- One row per procedure (thủ tục hành chính, TTHC) of the catalogue served by GET /procedures.
with source as (
    select * from {{ source('api', 'procedures') }}
),

renamed as (
    select
        procedure_code,
        nullif(payload ->> 'TenTTHC', '') as procedure_name,
        nullif(payload ->> 'MaLinhVuc', '') as field_code,
        nullif(payload ->> 'TenLinhVuc', '') as field_name,
        -- jsonb, not integer[]: dbt unit tests cannot mock array columns of PostgreSQL.
        case when jsonb_typeof(payload -> 'CapThucHien') = 'array' then payload -> 'CapThucHien' end as levels,
        {{ json_integer("payload -> 'MucDo'") }} as online_level,
        {{ json_numeric("payload -> 'ThoiHanGiaiQuyet'") }} as legal_duration,
        nullif(payload ->> 'DonViThoiHan', '') as duration_unit,
        {{ json_boolean("payload -> 'TraKetQuaGiay'") }} as returns_paper_result,
        {{ json_boolean("payload -> 'CoPhiLePhi'") }} as has_fees
    from source
)

select * from renamed
