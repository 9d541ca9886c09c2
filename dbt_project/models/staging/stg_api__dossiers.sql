{{
    config(
        materialized='incremental',
        unique_key='dossier_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        pre_hook=["{{ full_build_work_mem() }}", "{{ dossiers_add_latest_step_at() }}"],
        indexes=[{'columns': ['dossier_id'], 'unique': True}, {'columns': ['changed_at']}]
    )
}}
-- One row per dossier (hồ sơ) in its current state, tombstones included, in the warehouse's English names.
-- A table, incremental: each payload's JSON is decoded here once per new version (the costly part of every
-- dossier model), and the models after it read typed columns — fct_dossier, dq_dossiers and the service
-- index only the rows that changed (an index on changed_at), a full rebuild the whole table once.
-- Every value is typed defensively: a timestamp that is not a valid yyyyMMddHHmmss string, a number sent
-- as a string, a list that is null or missing all become NULL (or 0 for counts) rather than an error, and
-- the text as received is kept beside the values the data-quality rules need (VAL04, VAL06). Text
-- attributes sent as "" are NULL: the contract's two spellings of a missing value become one.
-- Personal data (ChuHoSo, SoDienThoai, Email, DinhDanhCHS, TrichYeuHoSo) does not pass: the identity
-- numbers only feed applicant_key, a keyed hash (HMAC-SHA256) for counting distinct applicants.
{#- The contract's six timestamps of a dossier: (field, column name without its _at). -#}
{%- set timestamps = [('NgayNopHoSo', 'submitted'), ('NgayTiepNhan', 'received'), ('NgayHenTra', 'due'),
                      ('NgayKetThucXuLy', 'finished'), ('NgayTra', 'returned'), ('NgayTuChoi', 'refused')] %}
with source as (
    select * from {{ source('api', 'dossiers_current') }}
    {% if is_incremental() %}
    -- the dossiers whose landed state changed since the last build (raw.dossier_current's index on changed_at,
    -- before any payload is read), less the look-back for a load committing while dbt reads
    where changed_at > coalesce((select max(changed_at) from {{ this }}), '-infinity'::timestamptz)
                       - interval '{{ lookback_minutes() }} minutes'
    {% endif %}
),

-- The payload is decompressed and decoded once per row, by one jsonb_to_record into the fields used below:
-- each function that reads the payload itself decompresses it again (lz4; a tenth of the decoding when three
-- did). raw.dossier_versions only holds JSON objects (its CHECK dossier_versions_payload_is_object; the
-- loader quarantines anything else), so no guard reads it first. The function reads changed_at (of
-- raw.dossier_current, never null) as well as the payload (of raw.dossier_versions), so the planner can only
-- call it on the join of the two — the changed dossiers of a night — never on every version before the join.
fields as (
    select
        source.dossier_id,
        source.updated_at,
        source.changed_at,
        source.is_deleted,
        source.run_id,
        -- The fields every record must carry (the contract gives them no null) that this one lacks as
        -- keys: the critical check BAT03 looks for one absent from a whole night. jsonb_to_record gives SQL
        -- NULL for a key that is absent and for a JSON null alike, so only a record with one of them NULL
        -- looks at its keys (reading the payload again); one with all four has none absent.
        -- (comma-separated text, not an array: dbt's unit tests cannot mock array columns)
        case
            when record."MaTTHC" is not null and record."DonViXuLy" is not null
                and record."TrangThaiHoSo" is not null and record."LoaiDoiTuong" is not null then ''
            when source.payload ?& array['MaTTHC', 'DonViXuLy', 'TrangThaiHoSo', 'LoaiDoiTuong'] then ''
            else concat_ws(',',
                case when not source.payload ? 'MaTTHC' then 'MaTTHC' end,
                case when not source.payload ? 'DonViXuLy' then 'DonViXuLy' end,
                case when not source.payload ? 'TrangThaiHoSo' then 'TrangThaiHoSo' end,
                case when not source.payload ? 'LoaiDoiTuong' then 'LoaiDoiTuong' end)
        end as absent_fields,
        -- the timestamps' text and digits (ts_digits), once: ts_from_digits refers to its number about fifteen
        -- times, and a cast or a `#>>` there would read the value again at each
        {%- for field, name in timestamps %}
        record."{{ field }}" #>> '{}' as {{ name }}_text,
        {{ ts_digits('(record."' ~ field ~ '" #>> \'{}\')') }} as {{ name }}_digits,
        {%- endfor %}
        -- The latest step time, decoded for the dossiers in processing alone (TrangThaiHoSo 2 or 4): INC05
        -- judges no other (dq-rules.md), and dq_dossiers takes it from here, so the data-quality stage needs
        -- neither the steps' table nor its build (int_dossiers__steps builds beside this model, then beside
        -- dq_dossiers and the batch checks). For every dossier it cost a sixth of this model's decoding.
        case when {{ json_integer('record."TrangThaiHoSo"') }} in (2, 4)
            then {{ latest_step_digits(json_array('record."QuaTrinhXuLy"')) }}
        end as latest_step_digits,
        record.*
    from source
    cross join lateral jsonb_to_record(case when source.changed_at is not null then source.payload end) as record (
        "MaTTHC" text,
        "TenTTHC" text,
        "MaLinhVuc" text,
        "TenLinhVuc" text,
        "DonViXuLy" text,
        "KenhThucHien" jsonb,
        "LoaiDoiTuong" jsonb,
        "TrangThaiHoSo" jsonb,
        "HoSoCoThanhPhanSoHoa" jsonb,
        "DuocThanhToanTrucTuyen" jsonb,
        "NgayNopHoSo" jsonb,
        "NgayTiepNhan" jsonb,
        "NgayHenTra" jsonb,
        "NgayKetThucXuLy" jsonb,
        "NgayTra" jsonb,
        "NgayTuChoi" jsonb,
        "DinhDanhCHS" jsonb,
        "TaiLieuNop" jsonb,
        "DanhSachGiayToKetQua" jsonb,
        "DanhSachHoSoBoSung" jsonb,
        "QuaTrinhXuLy" jsonb
    )
    -- A fence: without it the planner would pull this subquery up into the one below and evaluate each
    -- expression above at every reference made to it there, instead of once a row.
    offset 0
),

renamed as (
    select
        dossier_id,
        updated_at,
        changed_at,
        is_deleted,
        run_id,
        absent_fields,
        nullif("MaTTHC", '') as procedure_code,
        nullif("TenTTHC", '') as procedure_name,
        nullif("MaLinhVuc", '') as field_code,
        nullif("TenLinhVuc", '') as field_name,
        nullif("DonViXuLy", '') as unit_code,
        {{ json_integer('"KenhThucHien"') }} as channel,
        {{ json_text('"KenhThucHien"') }} as channel_raw,
        {{ json_integer('"LoaiDoiTuong"') }} as applicant_type,
        {{ json_text('"LoaiDoiTuong"') }} as applicant_type_raw,
        {{ json_integer('"TrangThaiHoSo"') }} as status,
        {{ json_text('"TrangThaiHoSo"') }} as status_raw,
        {{ json_flag('"HoSoCoThanhPhanSoHoa"') }} as has_digitised_components,
        {{ json_integer('"DuocThanhToanTrucTuyen"') }} as online_payment,
        {%- for field, name in timestamps %}
        {{ json_timestamp('"' ~ field ~ '"', digits=name ~ '_digits') }} as {{ name }}_at,
        {%- endfor %}
        {%- for field, name in timestamps %}
        {{ name }}_text as {{ name }}_at_raw,
        {%- endfor %}
        coalesce(jsonb_array_length({{ json_array('"TaiLieuNop"') }}), 0) as component_count,
        -- The counts over the lists are SQL/JSON path queries, one function call each, where a subquery over
        -- jsonb_array_elements cost an executor subplan and a tuplestore a dossier (a quarter of this model's
        -- decoding). Strict mode: an item that is not an object, or lacks the key, fails its filter
        -- ("unknown") rather than matching, and `==` compares numbers as numbers (1 and 1.0) and a string or
        -- a list with nothing — the json_flag rule: the number 1 or JSON true. `.type()` keeps the matched
        -- items small; only their number is used.
        coalesce(jsonb_array_length(jsonb_path_query_array({{ json_array('"TaiLieuNop"') }},
            'strict $[*] ? (@.DuocSoHoa == 1 || @.DuocSoHoa == true).type()')), 0) as digitised_component_count,
        coalesce(jsonb_array_length(jsonb_path_query_array({{ json_array('"TaiLieuNop"') }},
            'strict $[*] ? (@.DuocTaiSuDung == 1 || @.DuocTaiSuDung == true
                            || @.DuocLayTuKhoDMQG == 1 || @.DuocLayTuKhoDMQG == true).type()')), 0)
            as reused_component_count,
        coalesce(jsonb_array_length({{ json_array('"DanhSachGiayToKetQua"') }}), 0) as result_count,
        -- a file link present: any value but null and "" (a number or an object counts, as `->>` reads them)
        coalesce(jsonb_array_length(jsonb_path_query_array({{ json_array('"DanhSachGiayToKetQua"') }},
            'strict $[*] ? (@.DuongDanTepTinKetQua.type() != "null"
                            && (@.DuongDanTepTinKetQua.type() != "string" || @.DuongDanTepTinKetQua != "")).type()')),
            0) as electronic_result_count,
        coalesce(jsonb_array_length({{ json_array('"DanhSachHoSoBoSung"') }}), 0) as supplement_count,
        coalesce(jsonb_array_length({{ json_array('"QuaTrinhXuLy"') }}), 0) as step_count,
        -- HMAC-SHA256 (RFC 2104) of the sorted, distinct identity numbers joined by ',', keyed with the padded
        -- keys the bootstrap keeps in raw (readable by the writer only): the key never appears in this
        -- model's SQL, nor in any view definition, which every role can read in pg_views. The two key
        -- lookups are uncorrelated, so PostgreSQL evaluates them once per query, not once per dossier.
        -- A dossier with one applicant (most) hashes its number directly; sorting and joining the distinct
        -- numbers of a list of one is that number, and the subquery is left to longer lists.
        {%- set hmac -%}
            encode(sha256(
                (select hash_key.outer_pad from {{ source('warehouse', 'applicant_hash_key') }} as hash_key)
                || sha256(
                    (select hash_key.inner_pad from {{ source('warehouse', 'applicant_hash_key') }} as hash_key)
                    || convert_to(__NUMBERS__, 'UTF8')
                )
            ), 'hex')
        {%- endset %}
        case
            when jsonb_array_length({{ json_array('"DinhDanhCHS"') }}) = 1 then
                case
                    when {{ is_present('("DinhDanhCHS" -> 0 ->> \'SoDinhDanh\')') }}
                        then {{ hmac | replace('__NUMBERS__', '("DinhDanhCHS" -> 0 ->> \'SoDinhDanh\')') }}
                end
            else (
                select {{ hmac | replace('__NUMBERS__', 'string_agg(distinct identity.number collate "C", \',\'
                                                         order by identity.number collate "C")') }}
                from jsonb_array_elements({{ json_array('"DinhDanhCHS"') }}) as item (value)
                cross join lateral (select item.value ->> 'SoDinhDanh' as number) as identity
                where {{ is_present('identity.number') }}
            )
        end as applicant_key,
        -- the latest valid ThoiDiemXuLy of a dossier in processing (status 2 or 4), NULL for the others
        {{ ts_from_digits('latest_step_digits') }} as latest_step_at
    from fields
)

select * from renamed
