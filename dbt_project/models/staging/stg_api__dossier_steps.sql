-- One row per processing step (quá trình xử lý, QuaTrinhXuLy item) of each current, non-deleted dossier.
-- The official's name (NguoiXuLy) is personal data and does not pass; the position title does. The dossier's
-- own unit_code, field_code and changed_at come along: an incremental consumer decodes only the dossiers that
-- changed (a filter on changed_at reaches raw.dossier_current's index before any JSON is read) and needs no
-- join back to stg_api__dossiers (two scans of the payloads, which the planner may nest).
with source as (
    select dossier_id, changed_at, payload from {{ source('api', 'dossiers_current') }}
    where not is_deleted
),

renamed as (
    select
        source.dossier_id,
        source.changed_at,
        nullif(source.payload ->> 'DonViXuLy', '') as unit_code,
        -- the dossier's field, as stg_api__dossiers reads it (jsonb_to_record's text is ->>'s)
        nullif(source.payload ->> 'MaLinhVuc', '') as field_code,
        step.position::int as position,
        {{ json_integer("step.value -> 'BuocXuLy'") }} as step_no,
        {{ json_timestamp("step.value -> 'ThoiDiemXuLy'", 'step_text."ThoiDiemXuLy"') }} as processed_at,
        nullif(step.value ->> 'ChucDanh', '') as position_title,
        case
            when jsonb_typeof(step.value -> 'PhongBanXuLy') = 'string' then nullif(step.value ->> 'PhongBanXuLy', '')
        end as department,
        nullif(step.value ->> 'NoiDungXuLy', '') as content,
        {{ json_integer("step.value -> 'TrangThai'") }} as step_status,
        {{ json_timestamp("step.value -> 'NgayBatDau'", 'step_text."NgayBatDau"') }} as started_at,
        {{ json_timestamp("step.value -> 'NgayKetThucTheoQuyDinh'", 'step_text."NgayKetThucTheoQuyDinh"') }} as legal_end_at
    from source
    cross join lateral jsonb_array_elements({{ json_array("source.payload -> 'QuaTrinhXuLy'") }})
        with ordinality as step (value, position)
    -- The timestamps' text read out of the step once: parse_ts reads its argument a dozen times, and each
    -- `->` and `#>>` copies the value again (a seventh of the decoding of 8.7M steps). A step that is not an
    -- object has none.
    cross join lateral jsonb_to_record(
        case when jsonb_typeof(step.value) = 'object' then step.value else '{}'::jsonb end
    ) as step_text ("ThoiDiemXuLy" text, "NgayBatDau" text, "NgayKetThucTheoQuyDinh" text)
)

select * from renamed
