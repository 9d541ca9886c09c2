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


{#- A day 29, 30 or 31 its month does not have, for parse_date (a month and day already in range). -#}
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


{#- A timestamp is the most frequent value the decoders parse (six a dossier, three a step: 44M in a rebuild
    of 3M dossiers), so its check is arithmetic rather than a regular expression. Fourteen bytes that btrim
    leaves nothing of are fourteen ASCII digits, which then read as one bigint yyyyMMddHHmmss (the cast cannot
    fail); its parts are taken by division and checked as numbers — a year from 0001, a month 01–12, a day
    its month has (29 February in a leap year), an hour 00–23, minutes and seconds 00–59 — and the valid
    value is built by make_timestamp from the same parts, without a text parser. PostgreSQL's regular
    expressions were a quarter of the steps' decoding; `make bench-timestamps` gives the cost a value.
    parse_ts(column) does it all in one expression that refers to its argument about fifteen times: pass a
    column (a Var), not an expression such as `value #>> '{}'`, which would be evaluated at each reference.
    A decoder that parses millions of them takes the number once instead (ts_digits, in a projection of its
    own that the planner cannot fold into the next: each cast reads the text again) and builds the timestamp
    from it (ts_from_digits). -#}
{% macro _fourteen_digits(column) -%}
    (octet_length({{ column }}) = 14 and btrim({{ column }}, '0123456789') = '')
{%- endmacro %}


{% macro ts_digits(column) -%}
    case when {{ _fourteen_digits(column) }} then {{ column }}::bigint end
{%- endmacro %}


{% macro _digits_spell_ts(number) -%}
    {#- Whether ``number`` (a bigint of ts_digits) spells a valid timestamp yyyyMMddHHmmss: a year from 0001,
        a month 01–12, a day its month has, an hour 00–23, minutes and seconds 00–59. -#}
    {%- set n = number -%}
    {%- set year = '(' ~ n ~ ' / 10000000000)' -%}
    {%- set month = '(' ~ n ~ ' / 100000000 % 100)' -%}
    {%- set day = '(' ~ n ~ ' / 1000000 % 100)' -%}
    ({{ n }} >= 10000000000
        and {{ n }} / 1000000 % 10000 between 101 and 1231 and {{ day }} > 0
        and {{ n }} % 1000000 < 240000 and {{ n }} % 10000 < 6000 and {{ n }} % 100 < 60
        and ({{ day }} <= 28 or {{ day }} <= case {{ month }}
            when 2 then case when {{ year }} % 4 = 0 and ({{ year }} % 100 <> 0 or {{ year }} % 400 = 0)
                             then 29 else 28 end
            when 4 then 30 when 6 then 30 when 9 then 30 when 11 then 30
            else 31
        end))
{%- endmacro %}


{% macro ts_from_digits(number) -%}
    {#- The timestamp yyyyMMddHHmmss that ``number`` (a bigint of ts_digits, or NULL) spells, or NULL. -#}
    {%- set n = number -%}
    case
        when {{ _digits_spell_ts(n) }}
            then make_timestamp(({{ n }} / 10000000000)::int, ({{ n }} / 100000000 % 100)::int,
                                ({{ n }} / 1000000 % 100)::int, ({{ n }} / 10000 % 100)::int,
                                ({{ n }} / 100 % 100)::int, ({{ n }} % 100)::float8)
    end
{%- endmacro %}


{% macro latest_step_digits(steps) -%}
    {#- The digits (ts_digits) of the latest valid ThoiDiemXuLy of a QuaTrinhXuLy list (``steps``: a JSON
        array, or NULL), or NULL: the times int_dossiers__steps keeps — an item that is an object, its
        ThoiDiemXuLy a JSON string spelling a valid timestamp — and the greatest of them. Valid digits
        yyyyMMddHHmmss order as their times do, so the maximum is taken over the numbers and one timestamp is
        built from it (ts_from_digits, by the caller, from a column: it refers to its argument many times).
        Strict SQL/JSON path: an item that is not an object, or has no ThoiDiemXuLy, fails the filter rather
        than being searched (lax mode would look inside a nested list). -#}
    (select max(step_time.digits)
     from jsonb_array_elements_text(jsonb_path_query_array({{ steps }},
         'strict $[*] ? (@.ThoiDiemXuLy.type() == "string").ThoiDiemXuLy')) as step (value)
     cross join lateral (select {{ ts_digits('step.value') }} as digits offset 0) as step_time
     where {{ _digits_spell_ts('step_time.digits') }})
{%- endmacro %}


{% macro parse_ts(column) -%}
    case when {{ _fourteen_digits(column) }} then {{ ts_from_digits(column ~ '::bigint') }} end
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
