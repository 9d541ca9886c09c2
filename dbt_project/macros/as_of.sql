{#- The run's as-of time (run_var as_of, an ISO local date-time: the end of the night's data interval),
    else now in Asia/Ho_Chi_Minh. Every "as of" figure (pending overdue, delegation status) uses it. -#}
{% macro as_of_ts() -%}
    {%- set as_of = run_var('as_of') -%}
    {%- if as_of -%}
        '{{ as_of }}'::timestamp
    {%- else -%}
        (now() at time zone 'Asia/Ho_Chi_Minh')::timestamp(0)
    {%- endif -%}
{%- endmacro %}

{% macro as_of_date() -%}
    ({{ as_of_ts() }})::date
{%- endmacro %}
