{#- fct_step_monthly and fct_step_monthly_by_field are rebuilt month by month: only the months whose steps changed
    since their last build. -#}

{% macro step_months_to_rebuild() -%}
    {#- The months whose steps in int_dossiers__steps are not those fct_step_monthly was built from: a different
        number of steps, or a step newer than any the month had (max source_changed_at). A step is only ever
        added or removed whole (a changed dossier's steps are replaced), and an added one is newer than the
        last build, so a month with any change differs in one of the two: steps added show in the newest
        stamp, steps removed alone in the count. A month the table has and the steps no longer have (every
        step removed) is one too. One aggregate over the narrow table (a count per month, no sort) decides what
        the percentiles are recomputed for. -#}
    select coalesce(current_months.month, built_months.month)
    from (
        select month, count(*) as steps, max(source_changed_at) as changed_at
        from {{ ref('int_dossiers__steps') }}
        group by month
    ) as current_months
    full join (
        select month, sum(steps) as steps, max(source_changed_at) as changed_at
        from {{ this }}
        group by month
    ) as built_months on built_months.month = current_months.month
    where current_months.steps is distinct from built_months.steps
        or current_months.changed_at is distinct from built_months.changed_at
{%- endmacro %}



{% macro step_months_missing() -%}
    {#- In an incremental build, the filter of int_dossiers__steps on the months the pre-hook took out of the
        model (and any never built), read through the index on month. -#}
    where month = any(array(
        select candidate::date
        from generate_series(
            (select min(month) from {{ ref('int_dossiers__steps') }}),
            (select max(month) from {{ ref('int_dossiers__steps') }}),
            interval '1 month'
        ) as candidate
        except
        select month from {{ this }}
    ))
{%- endmacro %}


{% macro step_measures() -%}
    {#- The measures of a group of steps (metrics.md): steps, late steps and their share, median and 90th
        percentile of the durations in hours (continuous, steps without a duration left out), and the newest
        step's stamp, which step_months_to_rebuild compares. -#}
    count(*)::integer as steps,
    (count(*) filter (where is_late))::integer as late_steps,
    (count(*) filter (where is_late))::numeric / count(*) as late_step_rate,
    (percentile_cont(0.5) within group (order by duration_seconds) / 3600)::numeric as median_hours,
    (percentile_cont(0.9) within group (order by duration_seconds) / 3600)::numeric as p90_hours,
    max(source_changed_at) as source_changed_at
{%- endmacro %}
