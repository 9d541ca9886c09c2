-- Every current dossier classified by the definitions of metrics.md: received, resolved, in processing,
-- paper intake, timeliness, online, digitisation. The business rules live here, once. Tombstones are kept,
-- flagged (is_deleted): the marts leave them out, and fct_dossier's pre-hook removes them from its rows.
with dossiers as (
    select * from {{ ref('stg_api__dossiers') }}
),

procedures as (
    select procedure_code, returns_paper_result from {{ ref('stg_api__procedures') }}
),

units as (
    select unit_code, level, district_code from {{ ref('int_units__hierarchy') }}
),

flags as (
    select
        dossiers.*,
        -- A status that is missing or not a number is, literally, not in {1, 3}.
        coalesce(dossiers.status not in (1, 3), true) and dossiers.received_at is not null as is_received,
        coalesce(dossiers.status in (9, 10), false) and dossiers.finished_at is not null as is_resolved,
        coalesce(dossiers.status in (2, 4), false) as is_in_processing,
        coalesce(procedures.returns_paper_result, false) as returns_paper_result,
        units.level as unit_level,
        units.district_code
    from dossiers
    left join procedures on procedures.procedure_code = dossiers.procedure_code
    left join units on units.unit_code = dossiers.unit_code
)

select
    flags.dossier_id,
    flags.updated_at,
    flags.changed_at,
    flags.is_deleted,
    flags.unit_code,
    flags.unit_level,
    flags.district_code,
    flags.procedure_code,
    flags.field_code,
    flags.channel,
    flags.status,
    flags.submitted_at,
    flags.received_at,
    flags.due_at,
    flags.finished_at,
    flags.returned_at,
    flags.is_received,
    flags.is_resolved,
    flags.is_in_processing,
    flags.returns_paper_result,
    -- Paper intake: received in person, by post, or through a channel left empty (counts as in person).
    flags.is_received and (flags.channel in (1, 3) or coalesce(flags.channel_raw, '') = '') as is_paper_intake,
    coalesce(flags.channel = 2, false) as is_online,
    flags.has_digitised_components or flags.digitised_component_count > 0 as intake_digitised,
    case
        when flags.is_resolved and flags.returns_paper_result then flags.electronic_result_count > 0
    end as result_digitised,
    -- Timeliness compares calendar days; a missing due date counts as on time (INC03 flags it).
    case
        when not flags.is_resolved then null
        when flags.due_at is null then 'on_time'
        when flags.finished_at::date < flags.due_at::date then 'early'
        when flags.finished_at::date = flags.due_at::date then 'on_time'
        else 'late'
    end as timeliness,
    case when flags.is_received then date_trunc('month', flags.received_at)::date end as received_month,
    case when flags.is_resolved then date_trunc('month', flags.finished_at)::date end as resolved_month,
    -- What the service index (service-index.md) needs beyond the marts' classification
    -- (int_service_index__contributions reads them here, in the same pass over the staged dossiers).
    flags.supplement_count,
    flags.refused_at,
    -- DuocThanhToanTrucTuyen 1 (national portal) or 2 (provincial gateway); 0 or anything else is not.
    coalesce(flags.online_payment in (1, 2), false) as is_paid_online,
    flags.reused_component_count > 0 as has_reused_component,
    flags.electronic_result_count > 0 as has_electronic_result
from flags
