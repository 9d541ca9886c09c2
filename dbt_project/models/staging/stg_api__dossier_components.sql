-- One row per submitted component (thành phần hồ sơ, TaiLieuNop item) of each current, non-deleted dossier.
-- The file link (DuongDanTaiTepTin) points at the applicant's own documents and does not pass.
with source as (
    select dossier_id, payload from {{ source('api', 'dossiers_current') }}
    where not is_deleted
),

renamed as (
    select
        source.dossier_id,
        component.position::int as position,
        nullif(component.value ->> 'TepDinhKemId', '') as file_id,
        nullif(component.value ->> 'TenTepDinhKem', '') as file_name,
        nullif(component.value ->> 'MaThanhPhanHoSo', '') as component_code,
        {{ json_flag("component.value -> 'DuocSoHoa'") }} as is_digitised,
        {{ json_flag("component.value -> 'DuocTaiSuDung'") }} as is_reused,
        {{ json_flag("component.value -> 'DuocLayTuKhoDMQG'") }} as from_national_repository
    from source
    cross join lateral jsonb_array_elements({{ json_array("source.payload -> 'TaiLieuNop'") }})
        with ordinality as component (value, position)
)

select * from renamed
