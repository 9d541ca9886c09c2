-- One row per dossier × data-quality rule × interval it failed in, as the data-quality stage keeps them in
-- dq.issue_intervals (opened by the validation that first found it, closed by the first that no longer did).
with source as (
    select * from {{ source('dq', 'issue_intervals') }}
),

renamed as (
    select
        dossier_id,
        rule_id,
        unit_code,
        observed_value,
        opened_seq,
        opened_at,
        closed_seq,
        closed_at,
        last_seen_at,
        changed_seq,
        voided
    from source
)

select * from renamed
