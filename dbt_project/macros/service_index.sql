{#- The criteria of the service index (service-index.md) with their threshold and maximum points, from the
    vars service_index_thresholds and service_index_max_points (dbt_project.yml holds the spec's defaults).
    Each var is a mapping criterion id -> number and must name all six criteria: a var given on the command
    line replaces the project's mapping whole, so a partial one is an error, not a silent mix. -#}

{% macro service_index_criteria() -%}
    {%- set ids = ['2.1', '3.3', '3.6', '4.1', '4.2', '4.3'] -%}
    {%- set thresholds = var('service_index_thresholds') -%}
    {%- set maxima = var('service_index_max_points') -%}
    {%- set criteria = [] -%}
    {%- for id in ids -%}
        {%- set threshold = thresholds.get(id) if thresholds is mapping else none -%}
        {%- set max_points = maxima.get(id) if maxima is mapping else none -%}
        {%- if threshold is not number or threshold is boolean or threshold <= 0 or threshold > 1 -%}
            {{ exceptions.raise_compiler_error("var service_index_thresholds needs a rate in (0, 1] for criterion " ~ id ~ ", got " ~ threshold) }}
        {%- endif -%}
        {%- if max_points is not number or max_points is boolean or max_points < 0 -%}
            {{ exceptions.raise_compiler_error("var service_index_max_points needs a number >= 0 for criterion " ~ id ~ ", got " ~ max_points) }}
        {%- endif -%}
        {%- do criteria.append({'id': id, 'threshold': threshold, 'max_points': max_points}) -%}
    {%- endfor -%}
    {{ return(criteria) }}
{%- endmacro %}


{% macro service_index_cut_off() -%}
    {#- 00:00 of the run's as-of date: the running month is counted up to it (service-index.md's c). -#}
    ({{ as_of_date() }})::timestamp
{%- endmacro %}
