-- One row per result document (giấy tờ kết quả, DanhSachGiayToKetQua item) of each current, non-deleted dossier.
with source as (
    select dossier_id, payload from {{ source('api', 'dossiers_current') }}
    where not is_deleted
),

renamed as (
    select
        source.dossier_id,
        result.position::int as position,
        nullif(result.value ->> 'GiayToId', '') as result_id,
        nullif(result.value ->> 'TenGiayTo', '') as result_name,
        nullif(result.value ->> 'MaGiayToKetQua', '') as result_code,
        {{ is_present("(result.value ->> 'DuongDanTepTinKetQua')") }} as has_electronic_file
    from source
    cross join lateral jsonb_array_elements({{ json_array("source.payload -> 'DanhSachGiayToKetQua'") }})
        with ordinality as result (value, position)
)

select * from renamed
