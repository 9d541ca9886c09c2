{{ config(tags=['finance']) }}
-- One row per plan line (project × funding source × plan year × carried over) of the current workbook of
-- each report date: disbursement of public investment capital (giải ngân vốn đầu tư công), VND.
with source as (
    select * from {{ source('finance', 'disbursement_rows') }}
),

renamed as (
    select
        report_date,
        file_name,
        row_number,
        project_code,
        project_name,
        investor_code as investor_unit_code,
        funding_source,
        plan_year,
        is_carried_over,
        plan_pm,
        plan_province,
        disbursed_cumulative
    from source
)

select * from renamed
