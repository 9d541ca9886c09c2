-- One row per processing step (quá trình xử lý, QuaTrinhXuLy item) of each current, non-deleted dossier.
-- The official's name (NguoiXuLy) is personal data and does not pass; the position title does. The dossier's
-- own unit_code, field_code and changed_at come along: an incremental consumer decodes only the dossiers that
-- changed (a filter on changed_at reaches raw.dossier_current's index before any JSON is read) and needs no
-- join back to stg_api__dossiers (two scans of the payloads, which the planner may nest).
-- The payload is decompressed once per dossier, by one jsonb_to_record (each `->` on the payload itself would
-- decompress it again: four times a dossier, a tenth of the steps' decoding). raw.dossier_versions only holds
-- JSON objects (its CHECK dossier_versions_payload_is_object). The function reads is_deleted (of
-- raw.dossier_current) as well as the payload (of raw.dossier_versions), so the planner can only call it
-- on the join of the two — the changed dossiers of a night — never on every version before the join.
with source as (
    select current_state.dossier_id, current_state.changed_at, dossier."QuaTrinhXuLy" as steps,
        -- the dossier's unit and field, as stg_api__dossiers reads them (jsonb_to_record's text is ->>'s)
        nullif(dossier."DonViXuLy", '') as unit_code,
        nullif(dossier."MaLinhVuc", '') as field_code
    from {{ source('api', 'dossiers_current') }} as current_state
    cross join lateral jsonb_to_record(case when not current_state.is_deleted then current_state.payload end)
        as dossier ("QuaTrinhXuLy" jsonb, "DonViXuLy" text, "MaLinhVuc" text)
    where not current_state.is_deleted
),

renamed as (
    select
        source.dossier_id,
        source.changed_at,
        source.unit_code,
        source.field_code,
        step.position::int as position,
        {{ json_integer('step_text."BuocXuLy"') }} as step_no,
        step_times.processed_at,
        nullif(step.value ->> 'ChucDanh', '') as position_title,
        case
            when jsonb_typeof(step_text."PhongBanXuLy") = 'string' then nullif(step_text."PhongBanXuLy" #>> '{}', '')
        end as department,
        nullif(step.value ->> 'NoiDungXuLy', '') as content,
        {{ json_integer("step.value -> 'TrangThai'") }} as step_status,
        step_times.started_at,
        step_times.legal_end_at
    from source
    cross join lateral jsonb_array_elements({{ json_array('source.steps') }})
        with ordinality as step (value, position)
    -- The fields read out of the step once: json_integer and parse_ts read their argument many times, and each
    -- `->` and `#>>` copies the value again (a seventh of the decoding of 8.7M steps). A step that is not an
    -- object has none.
    cross join lateral jsonb_to_record(
        case when jsonb_typeof(step.value) = 'object' then step.value else '{}'::jsonb end
    ) as step_text ("ThoiDiemXuLy" text, "NgayBatDau" text, "NgayKetThucTheoQuyDinh" text, "BuocXuLy" jsonb,
                    "PhongBanXuLy" jsonb)
    -- The step's three times, once a step, in a projection of their own: the digits (ts_digits) first, in a
    -- subquery of theirs — ts_from_digits refers to its number about fifteen times, and a cast there would
    -- read the text at each (a sixth of the decoding) —, then the timestamps. A filter on processed_at (the
    -- steps' table keeps the steps with one) then reads a column, where it evaluated the whole expression
    -- once more. The fences (offset 0)
    -- keep the planner from folding these projections into the ones above; they sit on the inner side of
    -- the lateral join, so a filter on changed_at still reaches raw.dossier_current's index.
    cross join lateral (
        select
            {{ ts_from_digits('step_digits.processed') }} as processed_at,
            {{ ts_from_digits('step_digits.started') }} as started_at,
            {{ ts_from_digits('step_digits.legal_end') }} as legal_end_at
        from (
            select
                {%- for field, name in [('ThoiDiemXuLy', 'processed'), ('NgayBatDau', 'started'),
                                        ('NgayKetThucTheoQuyDinh', 'legal_end')] %}
                {{ json_timestamp_digits("step.value -> '" ~ field ~ "'", 'step_text."' ~ field ~ '"') }}
                    as {{ name }}{{ ',' if not loop.last }}
                {%- endfor %}
            offset 0
        ) as step_digits
        offset 0
    ) as step_times
)

select * from renamed
