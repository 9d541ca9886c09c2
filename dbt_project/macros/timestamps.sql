{#- Timestamps and dates of the procedure-system API, parsed without ever raising.

    The contract sends local times (Asia/Ho_Chi_Minh) as text `yyyyMMddHHmmss` and dates as `yyyyMMdd`;
    a missing value is null or "". Anything else — wrong length, not digits, an impossible date (30
    February, month 13, 29 February of a common year), hour 24, minute or second 60 — is invalid and parses
    to NULL, the value the data-quality rule VAL06 flags. The checks are plain SQL in nested CASEs, so
    make_timestamp/make_date only ever see valid parts (PostgreSQL evaluates CASE branches lazily, and
    constant-folds a branch only when its condition holds). The argument must be a text expression; pass
    a column, not a costly expression, as it is repeated. -#}

{% macro is_present(column) -%}
    ({{ column }} is not null and {{ column }} <> '')
{%- endmacro %}


{% macro _days_in_month(year, month) -%}
    case
        when {{ month }} = 2 then
            case when ({{ year }} % 4 = 0 and {{ year }} % 100 <> 0) or {{ year }} % 400 = 0 then 29 else 28 end
        when {{ month }} in (4, 6, 9, 11) then 30
        else 31
    end
{%- endmacro %}


{% macro _is_calendar_date(year, month, day) -%}
    ({{ year }} >= 1
        and {{ month }} between 1 and 12
        and {{ day }} between 1 and {{ _days_in_month(year, month) }})
{%- endmacro %}


{% macro parse_ts(column) -%}
    {%- set y = "substr(" ~ column ~ ", 1, 4)::int" -%}
    {%- set mo = "substr(" ~ column ~ ", 5, 2)::int" -%}
    {%- set d = "substr(" ~ column ~ ", 7, 2)::int" -%}
    {%- set h = "substr(" ~ column ~ ", 9, 2)::int" -%}
    {%- set mi = "substr(" ~ column ~ ", 11, 2)::int" -%}
    {%- set s = "substr(" ~ column ~ ", 13, 2)::int" -%}
    case
        when {{ column }} ~ '^[0-9]{14}$' then
            case
                when {{ _is_calendar_date(y, mo, d) }} and {{ h }} <= 23 and {{ mi }} <= 59 and {{ s }} <= 59
                    then make_timestamp({{ y }}, {{ mo }}, {{ d }}, {{ h }}, {{ mi }}, {{ s }})
            end
    end
{%- endmacro %}


{% macro parse_date(column) -%}
    {%- set y = "substr(" ~ column ~ ", 1, 4)::int" -%}
    {%- set mo = "substr(" ~ column ~ ", 5, 2)::int" -%}
    {%- set d = "substr(" ~ column ~ ", 7, 2)::int" -%}
    case
        when {{ column }} ~ '^[0-9]{8}$' then
            case when {{ _is_calendar_date(y, mo, d) }} then make_date({{ y }}, {{ mo }}, {{ d }}) end
    end
{%- endmacro %}


{% macro is_valid_ts(column) -%}
    ({{ parse_ts(column) }} is not null)
{%- endmacro %}
