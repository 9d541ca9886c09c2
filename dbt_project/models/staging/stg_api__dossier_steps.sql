-- One row per processing step (quá trình xử lý, QuaTrinhXuLy item) of each current, non-deleted dossier.
-- The official's name (NguoiXuLy) is personal data and does not pass; the position title does.
with source as (
    select dossier_id, payload from {{ source('api', 'dossiers_current') }}
    where not is_deleted
),

renamed as (
    select
        source.dossier_id,
        step.position::int as position,
        {{ json_integer("step.value -> 'BuocXuLy'") }} as step_no,
        {{ json_timestamp("step.value -> 'ThoiDiemXuLy'") }} as processed_at,
        nullif(step.value ->> 'ChucDanh', '') as position_title,
        nullif(step.value ->> 'PhongBanXuLy', '') as department,
        nullif(step.value ->> 'NoiDungXuLy', '') as content,
        {{ json_integer("step.value -> 'TrangThai'") }} as step_status,
        {{ json_timestamp("step.value -> 'NgayBatDau'") }} as started_at,
        {{ json_timestamp("step.value -> 'NgayKetThucTheoQuyDinh'") }} as legal_end_at
    from source
    cross join lateral jsonb_array_elements({{ json_array("source.payload -> 'QuaTrinhXuLy'") }})
        with ordinality as step (value, position)
)

select * from renamed
