-- One row per Great Expectations validation (suite × pipeline run), as the data-quality stage stored it in
-- dq.validation_runs: what the issue marts read, like every mart reads its source through staging.
with source as (
    select * from {{ source('dq', 'validation_runs') }}
),

renamed as (
    select
        validation_id,
        run_id,
        suite,
        as_of,
        run_date,
        status,
        started_at,
        finished_at,
        seq,
        batch_kind
    from source
)

select * from renamed
