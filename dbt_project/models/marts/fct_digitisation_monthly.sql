-- Intake digitisation (paper dossiers, by receipt month) and result digitisation (resolved dossiers of
-- paper-result procedures, by resolution month) per month × handling unit.
with intake as (
    select
        received_month as month,
        unit_code,
        count(*) as paper_received,
        count(*) filter (where intake_digitised) as intake_digitised
    from {{ ref('fct_dossier') }}
    where is_paper_intake
    group by 1, 2
),

results as (
    select
        resolved_month as month,
        unit_code,
        count(*) as paper_result_resolved,
        count(*) filter (where result_digitised) as result_digitised
    from {{ ref('fct_dossier') }}
    where result_digitised is not null
    group by 1, 2
),

joined as (
    select
        coalesce(intake.month, results.month) as month,
        coalesce(intake.unit_code, results.unit_code) as unit_code,
        coalesce(intake.paper_received, 0) as paper_received,
        coalesce(intake.intake_digitised, 0) as intake_digitised,
        coalesce(results.paper_result_resolved, 0) as paper_result_resolved,
        coalesce(results.result_digitised, 0) as result_digitised
    from intake
    full outer join results
        on results.month = intake.month and results.unit_code is not distinct from intake.unit_code
)

select
    month,
    unit_code,
    paper_received::integer as paper_received,
    intake_digitised::integer as intake_digitised,
    intake_digitised::numeric / nullif(paper_received, 0) as intake_digitisation_rate,
    paper_result_resolved::integer as paper_result_resolved,
    result_digitised::integer as result_digitised,
    result_digitised::numeric / nullif(paper_result_resolved, 0) as result_digitisation_rate
from joined
