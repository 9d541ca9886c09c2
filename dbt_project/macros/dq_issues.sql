{% macro dq_issue_measures() -%}
    {#- int_dq_issues' columns of one issue from its intervals (``i``, the voided ones left out): the unit of the
        interval found last, when it was first found, when it was last found once closed, whether it is open. -#}
    (array_agg(i.unit_code order by i.opened_seq desc))[1] as unit_code,
        min(i.opened_at) as first_seen_at,
        max(i.last_seen_at) filter (where i.closed_seq is not null) as last_closed_seen_at,
        bool_or(i.closed_seq is null) as is_open
{%- endmacro %}
