{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{% if is_incremental() %}delete from {{ this }} where as_of_date = {{ as_of_date() }}{% endif %}"
    )
}}
-- Every delegation/decentralisation plan item with its standing as of the run's date; one row set per
-- run date, kept as history.
select
    as_of_date,
    delegation_id,
    plan,
    decision_no,
    decision_date,
    delegation_type as type,
    procedure_code,
    delegating_unit_code,
    receiving_unit_code,
    status,
    planned_date,
    is_active,
    is_done,
    is_behind_plan
from {{ ref('int_delegations__status') }}
