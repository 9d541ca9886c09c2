-- One row per supplement request (yêu cầu bổ sung hồ sơ, DanhSachHoSoBoSung item) of each current,
-- non-deleted dossier. Timestamps that are missing or invalid are NULL.
with source as (
    select dossier_id, payload from {{ source('api', 'dossiers_current') }}
    where not is_deleted
),

renamed as (
    select
        source.dossier_id,
        supplement.position::int as position,
        nullif(supplement.value ->> 'HoSoBoSungId', '') as supplement_id,
        {{ json_timestamp("supplement.value -> 'NgayYeuCauBoSung'") }} as requested_at,
        {{ json_timestamp("supplement.value -> 'NgayBoSung'") }} as supplied_at,
        {{ json_timestamp("supplement.value -> 'NgayTiepNhanBoSung'") }} as supplement_received_at,
        {{ json_timestamp("supplement.value -> 'NgayHenTraTruoc'") }} as due_before,
        {{ json_timestamp("supplement.value -> 'NgayHenTraMoi'") }} as due_after,
        {{ json_integer("supplement.value -> 'TrangThaiBoSung'") }} as supplement_status
    from source
    cross join lateral jsonb_array_elements({{ json_array("source.payload -> 'DanhSachHoSoBoSung'") }})
        with ordinality as supplement (value, position)
)

select * from renamed
