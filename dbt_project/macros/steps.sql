{#- fct_step_monthly is rebuilt month by month: only the months whose steps changed since its last build. -#}

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
