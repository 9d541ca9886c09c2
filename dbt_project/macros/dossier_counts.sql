{#- The monthly facts that count fct_dossier's rows (fct_timeliness_monthly, fct_online_monthly,
    fct_digitisation_monthly) are kept from fct_dossier's changes, not recounted from the history each night.

    fct_dossier carries three statement-level triggers (installed by its post-hook) that write every row it
    loses with sign -1 and every row it gains with sign +1 — what these marts read of it — to a change log,
    dossier_fact_changes: whatever removes or writes a row (dbt's delete+insert, the tombstones' pre-hook, a
    hand-made correction) is logged in the same transaction, so the log cannot drift from the table. A mart's
    build register (dossier_fact_builds) keeps the last log row it read. A mart with a register row takes out
    the groups the new log rows touch (its pre-hook keeps their counts aside) and writes them back as those
    counts plus the log's signed counts; a group whose counts fall to zero is not written back. A mart without
    one — its first build, an upgrade, or a fct_dossier built anew (a new table, no trigger yet: the post-hook
    installs them, empties the log and forgets every mart's build) — is counted whole from fct_dossier.

    A mart is described by its parts: each part says which rows of fct_dossier count (where), the group they
    count in (keys: output column -> expression over a row of fct_dossier) and what each row adds (measures:
    output column -> condition); a measure a part does not name adds 0. -#}

{% macro dossier_log() -%}{{ state_relation('int_dossiers__classified', 'dossier_fact_changes') }}{%- endmacro %}
{% macro dossier_log_builds() -%}
    {{ state_relation('int_dossiers__classified', 'dossier_fact_builds') }}
{%- endmacro %}
{% macro dossier_log_function() -%}
    {{ state_relation('int_dossiers__classified', 'dossier_fact_log_rows') }}
{%- endmacro %}


{% macro dossier_log_readers() -%}
    {#- The models that read the log (a row is dropped once each has): the count marts, and
        fct_late_origin_monthly_by_field for its months (macros/late_origins.sql). -#}
    {{ return(['fct_timeliness_monthly', 'fct_online_monthly', 'fct_digitisation_monthly',
               'fct_late_origin_monthly_by_field']) }}
{%- endmacro %}


{% macro dossier_log_columns() -%}
    {#- What the marts read of a fct_dossier row. -#}
    {{ return(['received_month', 'resolved_month', 'unit_code', 'field_code', 'is_received', 'is_online',
               'is_resolved', 'timeliness', 'is_paper_intake', 'intake_digitised', 'result_digitised']) }}
{%- endmacro %}


{% macro dossier_log_prepare_statements(source) -%}
    {#- PL/pgSQL statements: the build register and the change log (``source``'s columns the marts read, a sign,
        an increasing id), created when missing; a log found missing forgets every mart's build. -#}
        create table if not exists {{ dossier_log_builds() }} (
            model text primary key,
            log_id bigint not null,
            built_at timestamptz not null default now()
        );
        if to_regclass('{{ dossier_log() }}') is null then
            create table {{ dossier_log() }} as
            select null::smallint as sign, {{ dossier_log_columns() | join(', ') }}
            from {{ source }} with no data;
            alter table {{ dossier_log() }} add column id bigserial primary key;
            delete from {{ dossier_log_builds() }};
        end if;
{%- endmacro %}


{% macro dossier_log_prepare(source) -%}
    {#- dossier_log_prepare_statements as a statement of its own. -#}
    do $$
    begin
        {{ dossier_log_prepare_statements(source) }}
    end
    $$
{%- endmacro %}


{% macro dossier_log_trim() -%}
    {#- fct_dossier's pre-hook (incremental builds): the log rows every mart has read dropped. -#}
    {% if is_incremental() %}
    {{ dossier_log_prepare(this) }};
    {{ log_trim_read(dossier_log(), dossier_log_builds(), dossier_log_readers()) }}
    {% endif %}
{%- endmacro %}


{% macro dossier_log_install() -%}
    {#- fct_dossier's post-hook: the triggers that log its rows, installed on a table that lacks them — a table
        built anew, whose rows were never logged: the log is emptied and every mart's build forgotten, so each
        is counted whole at its next build. -#}
    {%- set columns = dossier_log_columns() | join(', ') -%}
    do $$
    begin
        {{ dossier_log_prepare_statements(this) }}
        if not exists (select 1 from pg_trigger
                       where tgrelid = '{{ this }}'::regclass and tgname = 'dossier_fact_log_insert') then
            delete from {{ dossier_log() }};
            delete from {{ dossier_log_builds() }};
            create or replace function {{ dossier_log_function() }}() returns trigger
            language plpgsql as $f$
            begin
                if tg_op in ('DELETE', 'UPDATE') then
                    insert into {{ dossier_log() }} (sign, {{ columns }})
                    select -1, {{ columns }} from old_rows;
                end if;
                if tg_op in ('INSERT', 'UPDATE') then
                    insert into {{ dossier_log() }} (sign, {{ columns }})
                    select 1, {{ columns }} from new_rows;
                end if;
                return null;
            end
            $f$;
            create trigger dossier_fact_log_insert after insert on {{ this }}
                referencing new table as new_rows
                for each statement execute function {{ dossier_log_function() }}();
            create trigger dossier_fact_log_update after update on {{ this }}
                referencing old table as old_rows new table as new_rows
                for each statement execute function {{ dossier_log_function() }}();
            create trigger dossier_fact_log_delete after delete on {{ this }}
                referencing old table as old_rows
                for each statement execute function {{ dossier_log_function() }}();
        end if;
    end
    $$
{%- endmacro %}


{% macro dossier_counts_plan() -%}
    {#- The mart's register row: the last log row it read (no row: it is counted whole). -#}
    (select builds.log_id from {{ dossier_log_builds() }} as builds where builds.model = '{{ this.identifier }}')
{%- endmacro %}


{% macro dossier_counts_replaced() -%}{{ this.identifier }}__replaced{%- endmacro %}


{% macro dossier_counts_group(relation, keys) -%}
    {#- A group's keys as one text — a null key and an empty one stay apart (row(…)::text writes the first as
        nothing, the second as "") — so the groups a night touches are matched by hashing, not compared pair by
        pair (IS NOT DISTINCT FROM cannot be hashed). -#}
    row({% for k in keys %}{{ relation }}.{{ k }}{% if not loop.last %}, {% endif %}{% endfor %})::text
{%- endmacro %}


{% macro dossier_counts_keys(parts) -%}
    {{ return(parts[0]['keys'].keys() | list) }}
{%- endmacro %}


{% macro dossier_counts_measures(parts) -%}
    {%- set names = [] -%}
    {%- for part in parts -%}
        {%- for name in part['measures'] -%}
            {%- if name not in names -%}{%- do names.append(name) -%}{%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(names) }}
{%- endmacro %}


{% macro dossier_counts_of(parts, source, sign, condition) -%}
    {#- The signed counts of ``source``'s rows (fct_dossier or the log) per part and group. -#}
    {%- set measures = dossier_counts_measures(parts) -%}
    {%- for part in parts %}
    select
        {%- for name, expression in part['keys'].items() %}
        {{ expression }} as {{ name }},
        {%- endfor %}
        {%- for name in measures %}
        {%- if name in part['measures'] %}
        sum(case when {{ part['measures'][name] }} then {{ sign }} else 0 end) as {{ name }}
        {%- else %}
        0 as {{ name }}
        {%- endif %}{% if not loop.last %},{% endif %}
        {%- endfor %}
    from {{ source }}
    where ({{ part['where'] }}) and ({{ condition }})
    group by {% for name in part['keys'] %}{{ loop.index }}{% if not loop.last %}, {% endif %}{% endfor %}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
{%- endmacro %}


{% macro dossier_counts_delete(parts) -%}
    {#- A mart's pre-hook (incremental builds): the groups the log rows written since its build touch taken out,
        their counts kept aside (a temporary table) for the body to add the changes to; every group when it has
        no build on record. -#}
    {% if is_incremental() %}
    {%- set keys = dossier_counts_keys(parts) -%}
    {{ dossier_log_prepare(ref('fct_dossier')) }};
    create temporary table {{ dossier_counts_replaced() }} on commit drop as
    select * from {{ this }} with no data;
    with touched as (
        select distinct {{ dossier_counts_group('changes', keys) }} as grp
        from (
            {{ dossier_counts_of(parts, dossier_log(), 1, 'id > ' ~ dossier_counts_plan()) }}
        ) as changes
    ),
    removed as (
        delete from {{ this }} as mart
        where {{ dossier_counts_plan() }} is null
           or {{ dossier_counts_group('mart', keys) }} in (select grp from touched)
        returning mart.*
    )
    insert into {{ dossier_counts_replaced() }}
    select * from removed where {{ dossier_counts_plan() }} is not null
    {% endif %}
{%- endmacro %}


{% macro dossier_counts(parts) -%}
    {#- A mart's counts per group: in an incremental build with a build on record, the groups its pre-hook took
        out — their former counts plus the log's signed counts since that build —; otherwise every row of
        fct_dossier counted (a scan the planner skips when the mart has a build on record). -#}
    {%- set keys = dossier_counts_keys(parts) -%}
    {%- set measures = dossier_counts_measures(parts) -%}
    select
        {{ keys | join(', ') }},
        {%- for name in measures %}
        sum({{ name }}) as {{ name }}{% if not loop.last %},{% endif %}
        {%- endfor %}
    from (
        {%- if is_incremental() %}
        select {{ keys | join(', ') }}, {{ measures | join(', ') }}
        from {{ dossier_counts_replaced() }}
        union all
        {{ dossier_counts_of(parts, dossier_log(), 'sign', 'id > ' ~ dossier_counts_plan()) }}
        union all
        {{ dossier_counts_of(parts, ref('fct_dossier'), 1, dossier_counts_plan() ~ ' is null') }}
        {%- else %}
        {{ dossier_counts_of(parts, ref('fct_dossier'), 1, 'true') }}
        {%- endif %}
    ) as counts
    group by {{ keys | join(', ') }}
{%- endmacro %}


{% macro dossier_counts_record_build() -%}
    {#- A mart's post-hook: the log read up to its newest row, in the build's transaction. -#}
    {{ log_record_read(dossier_log(), dossier_log_builds()) }}
{%- endmacro %}


{#- The marts' parts (metrics.md). -#}

{% macro timeliness_parts() -%}
    {#- fct_timeliness_monthly: resolved dossiers by resolution month × handling unit × field, by timeliness. -#}
    {{ return([{
        'where': 'is_resolved',
        'keys': {'month': 'resolved_month', 'unit_code': 'unit_code', 'field_code': 'field_code'},
        'measures': {'resolved': 'true', 'early': "timeliness = 'early'", 'on_time': "timeliness = 'on_time'",
                     'late': "timeliness = 'late'"},
    }]) }}
{%- endmacro %}


{% macro online_parts() -%}
    {#- fct_online_monthly: received dossiers by receipt month × handling unit, those submitted online. -#}
    {{ return([{
        'where': 'is_received',
        'keys': {'month': 'received_month', 'unit_code': 'unit_code'},
        'measures': {'received': 'true', 'online': 'is_online'},
    }]) }}
{%- endmacro %}


{% macro digitisation_parts() -%}
    {#- fct_digitisation_monthly: paper dossiers by receipt month (intake digitised), and resolved dossiers of
        paper-result procedures by resolution month (result digitised), per handling unit. -#}
    {{ return([{
        'where': 'is_paper_intake',
        'keys': {'month': 'received_month', 'unit_code': 'unit_code'},
        'measures': {'paper_received': 'true', 'intake_digitised': 'intake_digitised'},
    }, {
        'where': 'result_digitised is not null',
        'keys': {'month': 'resolved_month', 'unit_code': 'unit_code'},
        'measures': {'paper_result_resolved': 'true', 'result_digitised': 'result_digitised'},
    }]) }}
{%- endmacro %}
