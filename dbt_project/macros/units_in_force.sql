{#- The rankings' units (reorganisation.md): joins `rows` (a relation or CTE with month and unit_code) to
    dim_unit, as `units`, where the unit is in force in the row's month — a unit closed on day d is in force in
    d's month, a unit opened on day d from d's month on. Rows of units dim_unit does not know are left out. -#}
{% macro join_units_in_force(rows) -%}
join {{ ref('dim_unit') }} as units on units.unit_code = {{ rows }}.unit_code
        and (units.valid_from is null or units.valid_from < {{ rows }}.month + interval '1 month')
        and (units.valid_to is null or units.valid_to >= {{ rows }}.month)
{%- endmacro %}
