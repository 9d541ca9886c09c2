{#- Timestamps and dates of the procedure-system API, parsed without ever raising.

    The contract sends local times (Asia/Ho_Chi_Minh) as text `yyyyMMddHHmmss` and dates as `yyyyMMdd`;
    a missing value is null or "". Anything else — wrong length, not digits, an impossible date (30
    February, month 13, 29 February of a common year), hour 24, minute or second 60 — is invalid and parses
    to NULL, the value the data-quality rule VAL06 flags. The checks are plain SQL in a CASE, so the cast
    only ever sees a valid value (PostgreSQL evaluates CASE branches lazily, and constant-folds a branch only
    when its condition holds). The argument must be a text expression; pass a column, not a costly
    expression, as it is repeated. -#}

{% macro is_present(column) -%}
    ({{ column }} is not null and {{ column }} <> '')
{%- endmacro %}


{#- The shape of a valid yyyyMMdd…: digits, a month 01–12, a day 01–31, then (for a timestamp) an hour 00–23
    and minutes and seconds 00–59, in one regular expression; what it cannot say — the year 0000, a day 29,
    30 or 31 its month does not have — is checked after it, and only for those days. A value that passes is
    cast by PostgreSQL's own ISO 8601 reader (`20240115T083000`), which then cannot fail. About half the cost
    of taking the parts apart as integers (`make bench-timestamps`): the text is read four or five times
    instead of about twenty, and the cast is C. -#}
{% macro _month_has_day(column) -%}
    (substr({{ column }}, 7, 2) <= '28'
        or case substr({{ column }}, 5, 2)
            when '02' then substr({{ column }}, 7, 2) = '29'
                and ((substr({{ column }}, 1, 4)::int % 4 = 0 and substr({{ column }}, 1, 4)::int % 100 <> 0)
                     or substr({{ column }}, 1, 4)::int % 400 = 0)
            when '04' then substr({{ column }}, 7, 2) <> '31'
            when '06' then substr({{ column }}, 7, 2) <> '31'
            when '09' then substr({{ column }}, 7, 2) <> '31'
            when '11' then substr({{ column }}, 7, 2) <> '31'
            else true
        end)
{%- endmacro %}


{% macro parse_ts(column) -%}
    case
        when {{ column }} ~ '^[0-9]{4}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])([01][0-9]|2[0-3])[0-5][0-9][0-5][0-9]$'
            and left({{ column }}, 4) <> '0000' and {{ _month_has_day(column) }}
            then (left({{ column }}, 8) || 'T' || right({{ column }}, 6))::timestamp
    end
{%- endmacro %}


{% macro parse_date(column) -%}
    case
        when {{ column }} ~ '^[0-9]{4}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])$'
            and left({{ column }}, 4) <> '0000' and {{ _month_has_day(column) }}
            then ({{ column }})::date
    end
{%- endmacro %}


{% macro is_valid_ts(column) -%}
    ({{ parse_ts(column) }} is not null)
{%- endmacro %}
