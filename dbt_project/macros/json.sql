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


{% macro json_timestamp_digits(value, text) -%}
    {#- A timestamp field's digits (ts_digits) for a decoder that takes them once and builds the timestamp
        later (ts_from_digits): json_timestamp's rule, only a JSON string can be a valid timestamp. ``text``:
        the same field as text (a text column of jsonb_to_record). -#}
    case when jsonb_typeof({{ value }}) = 'string' then {{ ts_digits(text) }} end
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


{% macro dossiers_add_latest_step_at() -%}
    {#- stg_api__dossiers' pre-hook: a table built before it carried the latest step time (latest_step_at, of
        the dossiers in processing) gains the column, filled for those dossiers from their landed payloads —
        a few percent of the rows, read through the key —, so the incremental build goes on instead of
        failing on the schema change (on_schema_change='fail') until a full refresh decodes every payload
        again. The others keep NULL, as the model writes them. -#}
    {% if is_incremental() %}
    do $$
    begin
        if not exists (select 1 from pg_attribute
                       where attrelid = '{{ this }}'::regclass and attname = 'latest_step_at' and not attisdropped) then
            alter table {{ this }} add column latest_step_at timestamp;
            update {{ this }} as staged
            set latest_step_at = {{ ts_from_digits('step_digits.latest') }}
            from {{ source('api', 'dossiers_current') }} as landed
            cross join lateral (
                select {{ latest_step_digits(json_array("landed.payload -> 'QuaTrinhXuLy'")) }} as latest
                offset 0
            ) as step_digits
            where landed.dossier_id = staged.dossier_id and staged.status in (2, 4)
                and step_digits.latest is not null;
        end if;
    end
    $$
    {% endif %}
{%- endmacro %}
