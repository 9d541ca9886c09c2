{#- A recorded-unit monthly fact re-expressed on today's units (reorganisation.md): every row's unit replaced by
    its current unit (dim_unit.current_unit_code), counts summed over every unit whose lineage ends there.
    Rows of units without a current unit, or of units the API does not list, are left out (they stay in the
    recorded-unit table). `unit_code` repeats `current_unit_code`, so a query written for the recorded-unit
    table runs unchanged on the current one. -#}
{% macro on_current_units(relation, keys, counts) -%}
select
    facts.month,
    units.current_unit_code,
    units.current_unit_code as unit_code,
    max(units.current_unit_name) as current_unit_name,
    {%- for key in keys %}
    facts.{{ key }},
    {%- endfor %}
    {%- for count in counts %}
    sum(facts.{{ count }})::integer as {{ count }}{{ "," if not loop.last }}
    {%- endfor %}
from {{ relation }} as facts
join {{ ref('dim_unit') }} as units on units.unit_code = facts.unit_code
where units.current_unit_code is not null
group by facts.month, units.current_unit_code{% for key in keys %}, facts.{{ key }}{% endfor %}
{%- endmacro %}
