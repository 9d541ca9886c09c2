{#- Typed values out of the API's JSON, robust to what a server may send instead: a number as a string, a
    list that is null or missing, an object where a scalar belongs. The argument is a jsonb expression
    (e.g. `payload -> 'KenhThucHien'`); a value of the wrong JSON type becomes NULL, never an error. -#}

{% macro json_integer(value) -%}
    {#- A JSON number with no fractional part that fits an integer (2 and 2.0, not "2", 2.5 or true). -#}
    case
        when jsonb_typeof({{ value }}) = 'number' then
            case
                when ({{ value }})::numeric = trunc(({{ value }})::numeric)
                    and ({{ value }})::numeric between -2147483648 and 2147483647
                    then ({{ value }})::numeric::int
            end
    end
{%- endmacro %}


{% macro json_numeric(value) -%}
    case when jsonb_typeof({{ value }}) = 'number' then ({{ value }})::numeric end
{%- endmacro %}


{% macro json_boolean(value) -%}
    case when jsonb_typeof({{ value }}) = 'boolean' then ({{ value }})::boolean end
{%- endmacro %}


{% macro json_flag(value) -%}
    {#- The contract's 0/1 flags: true exactly when the value is the number 1 (or JSON true); never null. -#}
    case
        when jsonb_typeof({{ value }}) = 'number' then ({{ value }})::numeric = 1
        when jsonb_typeof({{ value }}) = 'boolean' then ({{ value }})::boolean
        else false
    end
{%- endmacro %}


{% macro json_timestamp(value, text=none, digits=none) -%}
    {#- A timestamp field: only a JSON string can be a valid yyyyMMddHHmmss timestamp. ``text``: the same field
        already as text (a text column of jsonb_to_record), which parse_ts then reads instead of converting the
        JSON value again at each of its references; ``digits``: its ts_digits, already taken once. -#}
    case when jsonb_typeof({{ value }}) = 'string' then
        {%- if digits %} {{ ts_from_digits(digits) }}
        {%- else %} {{ parse_ts(text or "(" ~ value ~ " #>> '{}')") }}
        {%- endif %} end
{%- endmacro %}


{% macro json_date(value) -%}
    case when jsonb_typeof({{ value }}) = 'string' then {{ parse_date("(" ~ value ~ " #>> '{}')") }} end
{%- endmacro %}


{% macro json_text(value) -%}
    {#- The value as received, as text: a string unquoted, a number or boolean as written, null as NULL. -#}
    ({{ value }} #>> '{}')
{%- endmacro %}


{% macro json_array(value) -%}
    {#- The value if it is a JSON array, else NULL (a null, missing or malformed list is an empty one). -#}
    case when jsonb_typeof({{ value }}) = 'array' then {{ value }} end
{%- endmacro %}
