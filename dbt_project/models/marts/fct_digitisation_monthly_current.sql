-- fct_digitisation_monthly on today's units.
with summed as (
    {{ on_current_units(ref('fct_digitisation_monthly'), [],
                        ['paper_received', 'intake_digitised', 'paper_result_resolved', 'result_digitised']) }}
)

select
    month, current_unit_code, unit_code, current_unit_name, paper_received, intake_digitised,
    intake_digitised::numeric / nullif(paper_received, 0) as intake_digitisation_rate,
    paper_result_resolved, result_digitised,
    result_digitised::numeric / nullif(paper_result_resolved, 0) as result_digitisation_rate
from summed
