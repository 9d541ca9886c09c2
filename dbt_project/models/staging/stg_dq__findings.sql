-- One row per failing record × rule × validation, as the data-quality stage stored it in dq.findings.
with source as (
    select * from {{ source('dq', 'findings') }}
),

renamed as (
    select
        validation_id,
        rule_id,
        record_key,
        unit_code,
        observed_value
    from source
)

select * from renamed
