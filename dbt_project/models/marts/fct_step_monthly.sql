-- Processing steps (quá trình xử lý) per month × handling unit × office (metrics.md, "where dossiers are held
-- up"): steps, late steps and their share, median and 90th percentile of the durations in hours
-- (continuous percentiles, steps without a duration left out). A grouped scan of the narrow per-step table
-- int_dossiers__steps, which the night keeps current incrementally; rebuilt whole every night, like the
-- other monthly facts (measured in docs/architecture.md).
with steps as (
    select month, unit_code, office, is_late, duration_seconds
    from {{ ref('int_dossiers__steps') }}
)

select
    month,
    unit_code,
    office,
    count(*)::integer as steps,
    (count(*) filter (where is_late))::integer as late_steps,
    (count(*) filter (where is_late))::numeric / count(*) as late_step_rate,
    (percentile_cont(0.5) within group (order by duration_seconds) / 3600)::numeric as median_hours,
    (percentile_cont(0.9) within group (order by duration_seconds) / 3600)::numeric as p90_hours
from steps
group by 1, 2, 3
