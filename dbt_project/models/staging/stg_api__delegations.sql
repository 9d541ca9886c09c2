-- One row per delegation or decentralisation plan item (ủy quyền, phân cấp) served by GET /delegations.
with source as (
    select * from {{ source('api', 'delegations') }}
),

renamed as (
    select
        delegation_id,
        nullif(payload ->> 'SoQuyetDinh', '') as decision_no,
        {{ json_date("payload -> 'NgayQuyetDinh'") }} as decision_date,
        {{ json_date("payload -> 'HieuLucDen'") }} as valid_to,
        nullif(payload ->> 'LoaiUyQuyen', '') as delegation_type,
        nullif(payload ->> 'KeHoach', '') as plan,
        nullif(payload ->> 'MaTTHC', '') as procedure_code,
        nullif(payload ->> 'DonViUyQuyen', '') as delegating_unit_code,
        nullif(payload ->> 'DonViNhanUyQuyen', '') as receiving_unit_code,
        {{ json_date("payload -> 'NgayKeHoach'") }} as planned_date,
        nullif(payload ->> 'TrangThai', '') as status,
        {{ json_timestamp("payload -> 'NgayCapNhat'") }} as updated_at
    from source
)

select * from renamed
