{#- The criteria of the service index (service-index.md) with their threshold and maximum points, from the
    vars service_index_thresholds and service_index_max_points (dbt_project.yml holds the spec's defaults).
    Each var is a mapping criterion id -> number and must name all six criteria: a var given on the command
    line replaces the project's mapping whole, so a partial one is an error, not a silent mix. -#}

{% macro service_index_criteria() -%}
    {%- set ids = ['2.1', '3.3', '3.6', '4.1', '4.2', '4.3'] -%}
    {%- set thresholds = var('service_index_thresholds') -%}
    {%- set maxima = var('service_index_max_points') -%}
    {%- set criteria = [] -%}
    {%- for id in ids -%}
        {%- set threshold = thresholds.get(id) if thresholds is mapping else none -%}
        {%- set max_points = maxima.get(id) if maxima is mapping else none -%}
        {%- if threshold is not number or threshold is boolean or threshold <= 0 or threshold > 1 -%}
            {{ exceptions.raise_compiler_error("var service_index_thresholds needs a rate in (0, 1] for criterion " ~ id ~ ", got " ~ threshold) }}
        {%- endif -%}
        {%- if max_points is not number or max_points is boolean or max_points < 0 -%}
            {{ exceptions.raise_compiler_error("var service_index_max_points needs a number >= 0 for criterion " ~ id ~ ", got " ~ max_points) }}
        {%- endif -%}
        {%- do criteria.append({'id': id, 'threshold': threshold, 'max_points': max_points}) -%}
    {%- endfor -%}
    {{ return(criteria) }}
{%- endmacro %}


{% macro service_index_cut_off() -%}
    {#- 00:00 of the run's as-of date: the running month is counted up to it (service-index.md's c). -#}
    ({{ as_of_date() }})::timestamp
{%- endmacro %}


{#- The service-index marts are built from what changed, not from the history (docs/architecture.md, "The
    service index, night by night"). int_service_index__contributions holds one row per dossier with what the
    index reads of it; each of its incremental builds writes the rows it replaces (sign -1) and the rows it
    writes (sign +1) to the change log service_index_changes. A mart recomputes from the dossiers only the
    running months — from the month of its previous build's as-of date to tonight's — and, for the months
    before them, which do not depend on the as-of date any more, applies the change log's rows written since
    its previous build (service_index_builds keeps, per mart, the last change read, the as-of date and the
    catalogue's fingerprint). It is rebuilt whole when it has no previous build, when the contributions table
    was rebuilt (which forgets every mart's build) or, for the monthly figures, when the procedure catalogue or
    the criteria vars changed. -#}

{% macro service_index_log() -%}
    {{ state_relation('int_service_index__contributions', 'service_index_changes') }}
{%- endmacro %}
{% macro service_index_builds() -%}
    {{ state_relation('int_service_index__contributions', 'service_index_builds') }}
{%- endmacro %}


{% macro service_index_marts() -%}
    {{ return(['fct_service_index_monthly', 'fct_service_index_2_1_dossiers']) }}
{%- endmacro %}


{% macro service_index_contribution_columns() -%}
    {{ return(['dossier_id', 'unit_code', 'procedure_code', 'received_month', 'received_at', 'resolved_month',
               'finished_at', 'is_resolved', 'is_online', 'intake_digitised', 'is_paid_online',
               'has_reused_component', 'has_electronic_result', 'timeliness', 'supplement_count', 'due_at',
               'refused_at', 'pending_from', 'pending_until', 'source_changed_at']) }}
{%- endmacro %}


{% macro service_index_prepare_log() -%}
    {#- PL/pgSQL statements: create the build register and the change log (the contributions' columns, a sign,
        an increasing id) when missing. A log found missing forgets every mart's build: their change ids would
        point into a log that is gone. -#}
        create table if not exists {{ service_index_builds() }} (
            model text primary key,
            log_id bigint not null,
            as_of date not null,
            fingerprint text,
            built_at timestamptz not null default now()
        );
        if to_regclass('{{ service_index_log() }}') is null then
            create table {{ service_index_log() }} (
                id bigserial primary key,
                sign smallint not null,
                like {{ this }}
            );
            delete from {{ service_index_builds() }};
        end if;
{%- endmacro %}


{% macro service_index_log_replaced() -%}
    {#- The contributions' pre-hook (incremental builds): the dossiers changed since the last build — the same
        set the model's body rebuilds, plus the deleted ones — and their rows as they are before the build,
        written to the log with sign -1. The log's rows every mart has read are dropped first. -#}
    {% if is_incremental() %}
    do $$
    begin
        {{ service_index_prepare_log() }}
    end
    $$;
    {{ log_trim_read(service_index_log(), service_index_builds(), service_index_marts()) }};
    create temporary table service_index_changed on commit drop as
    select distinct dossier_id
    from {{ ref('stg_api__dossiers') }}
    where {{ changed_since_last_build('changed_at') }};
    insert into {{ service_index_log() }} (sign, {{ service_index_contribution_columns() | join(', ') }})
    select -1, {{ service_index_contribution_columns() | join(', ') }}
    from {{ this }}
    where dossier_id in (select dossier_id from service_index_changed)
    {% endif %}
{%- endmacro %}


{% macro service_index_log_written() -%}
    {#- The contributions' post-hook: after an incremental build (the pre-hook left the changed dossiers' list),
        their rows as built, written to the log with sign +1; after a full build, a new, empty log and every
        mart's build forgotten, so each is rebuilt whole. (is_incremental() cannot tell the two apart here: a
        first build's table exists by the time its post-hook runs.) -#}
    do $$
    begin
        if to_regclass('pg_temp.service_index_changed') is not null then
            insert into {{ service_index_log() }} (sign, {{ service_index_contribution_columns() | join(', ') }})
            select 1, {{ service_index_contribution_columns() | join(', ') }}
            from {{ this }}
            where dossier_id in (select dossier_id from service_index_changed);
        else
            drop table if exists {{ service_index_log() }};
            {{ service_index_prepare_log() }}
            delete from {{ service_index_builds() }};
        end if;
    end
    $$
{%- endmacro %}


{% macro service_index_fingerprint() -%}
    {#- What the monthly figures read besides the dossiers: the procedure catalogue's flags and the criteria. -#}
    (select md5(coalesce(string_agg(
        concat_ws('|', procedure_code, online_level, has_fees, returns_paper_result), ',' order by procedure_code
     ), '') || '{{ tojson(service_index_criteria()) }}')
     from {{ ref('stg_api__procedures') }})
{%- endmacro %}


{% macro service_index_plan(with_fingerprint, existing) -%}
    {#- One row: whether the mart is rebuilt whole (full), the change log's ids to read (log_from, log_to], the
        first running month (rmin: the earlier of the previous build's as-of month and tonight's) and the
        running month (r, tonight's as-of month). -#}
    select
        {%- if existing %}
        (builds.model is null
            {%- if with_fingerprint %}
            or builds.fingerprint is distinct from {{ service_index_fingerprint() }}
            {%- endif %}
        ) as rebuild_all,
        {%- else %}
        true as rebuild_all,
        {%- endif %}
        coalesce(builds.log_id, 0) as log_from,
        (select coalesce(max(id), 0) from {{ service_index_log() }}) as log_to,
        date_trunc('month', least(coalesce(builds.as_of, {{ as_of_date() }}), {{ as_of_date() }}))::date as rmin,
        date_trunc('month', {{ as_of_date() }})::date as r
    from (select 1) as one
    left join {{ service_index_builds() }} as builds on builds.model = '{{ this.identifier }}'
{%- endmacro %}


{% macro service_index_changes_read(plan) -%}
    {#- The change log's rows a mart reads tonight (none when it is rebuilt whole); ``plan`` names the relation
        holding service_index_plan's row. -#}
    (select changes.*
     from {{ service_index_log() }} as changes
     where not (select rebuild_all from {{ plan }})
        and changes.id > (select log_from from {{ plan }})
        and changes.id <= (select log_to from {{ plan }}))
{%- endmacro %}


{% macro service_index_record_build(with_fingerprint) -%}
    {#- A mart's post-hook: what it has read — the change log up to its newest row, tonight's as-of date and,
        for the monthly figures, the catalogue's fingerprint. In the build's transaction: a failed build
        records nothing. -#}
    insert into {{ service_index_builds() }} (model, log_id, as_of, fingerprint)
    select
        '{{ this.identifier }}',
        (select coalesce(max(id), 0) from {{ service_index_log() }}),
        {{ as_of_date() }},
        {% if with_fingerprint %}{{ service_index_fingerprint() }}{% else %}null{% endif %}
    on conflict (model) do update
    set log_id = excluded.log_id, as_of = excluded.as_of, fingerprint = excluded.fingerprint, built_at = now()
{%- endmacro %}


{% macro service_index_expand(source, lo, hi, kinds=('received', 'resolved', 'pending')) -%}
    {#- The rows of contributions ``source`` (with a ``sign``) in the months lo..hi (SQL dates), one per
        dossier and month it counts in: ``received`` in R_m (received before the cut-off), ``resolved`` in D_m
        (with 2.1's reason: late, supplements or null) and ``pending`` overdue at the cut-off of m. The cut-off
        of m is 00:00 of the first day of m+1, or of the as-of date in the running month; a month after the
        running month is never asked for. -#}
    {%- set parts = [] -%}
    {#- No lower bound written when there is none: a condition ">= '-infinity'" keeps nothing out, yet the
        planner reads it through the month's index (every row of the history) instead of the dossier's. The
        upper bound keeps the nulls out on its own. -#}
    {%- set unbounded = lo == "'-infinity'::date" -%}
    {%- set common -%}
        s.sign, s.unit_code, s.dossier_id, s.procedure_code, s.due_at, s.finished_at, s.supplement_count,
        s.is_resolved, s.is_online, s.intake_digitised, s.is_paid_online, s.has_reused_component,
        s.has_electronic_result
    {%- endset -%}
    {%- if 'received' in kinds -%}
    {%- do parts.append("select 'received' as kind, s.received_month as month, null::text as reason, " ~ common ~ "
    from " ~ source ~ " as s
    where " ~ ("" if unbounded else "s.received_month >= " ~ lo ~ " and ") ~ "s.received_month <= " ~ hi ~ "
        and s.received_at < " ~ service_index_cut_off()) -%}
    {%- endif -%}
    {%- if 'resolved' in kinds -%}
    {%- do parts.append("select 'resolved' as kind, s.resolved_month as month,
        case when s.timeliness = 'late' then 'late' when s.supplement_count >= 2 then 'supplements' end as reason, " ~ common ~ "
    from " ~ source ~ " as s
    where " ~ ("" if unbounded else "s.resolved_month >= " ~ lo ~ " and ") ~ "s.resolved_month <= " ~ hi ~ "
        and s.finished_at < " ~ service_index_cut_off()) -%}
    {%- endif -%}
    {%- if 'pending' in kinds -%}
    {%- do parts.append("select 'pending' as kind, months.month::date as month, 'pending_overdue' as reason, " ~ common ~ "
    from " ~ source ~ " as s
    cross join lateral generate_series(
        greatest(s.pending_from, " ~ lo ~ ")::timestamp, least(s.pending_until, " ~ hi ~ ")::timestamp, interval '1 month'
    ) as months (month)
    cross join lateral (
        select least(months.month + interval '1 month', " ~ service_index_cut_off() ~ ") as cut_off
    ) as c
    where " ~ ("" if unbounded else "s.pending_until >= " ~ lo ~ " and ") ~ "s.pending_from <= " ~ hi ~ "
        and s.received_at < c.cut_off
        and s.due_at::date < c.cut_off::date
        and (s.finished_at is null or s.finished_at >= c.cut_off)
        and (s.refused_at is null or s.refused_at >= c.cut_off)") -%}
    {%- endif -%}
    {{ parts | join('\n    union all\n    ') }}
{%- endmacro %}


{% macro service_index_unit_counts(expanded) -%}
    {#- Per month × handling unit, the signed counts of the six criteria from ``expanded`` (rows of
        service_index_expand), with the procedure catalogue as it is tonight; null where no row counts. -#}
    select
        month,
        unit_code,
        sum(sign) filter (where kind = 'resolved' and reason is null) as n_2_1,
        sum(sign) filter (where kind in ('resolved', 'pending')) as d_2_1,
        sum(sign) filter (where kind = 'received' and is_offered_online and is_online) as n_3_3,
        sum(sign) filter (where kind = 'received' and is_offered_online) as d_3_3,
        sum(sign) filter (where kind = 'received' and has_fees and is_paid_online) as n_3_6,
        sum(sign) filter (where kind = 'received' and has_fees) as d_3_6,
        sum(sign) filter (where kind = 'resolved' and returns_paper_result and has_electronic_result) as n_4_1,
        sum(sign) filter (where kind = 'resolved' and returns_paper_result) as d_4_1,
        sum(sign) filter (
            where kind = 'received' and intake_digitised
                and not (is_resolved and returns_paper_result and not has_electronic_result)
        ) as n_4_2,
        sum(sign) filter (where kind = 'received') as d_4_2,
        sum(sign) filter (where kind = 'received' and has_reused_component) as n_4_3,
        sum(sign) filter (where kind = 'received') as d_4_3
    from (
        select
            rows.*,
            -- A dossier whose procedure is not in the catalogue has none of its flags.
            coalesce(procedures.online_level in (3, 4), false) as is_offered_online,
            coalesce(procedures.has_fees, false) as has_fees,
            coalesce(procedures.returns_paper_result, false) as returns_paper_result
        from ({{ expanded }}) as rows
        left join {{ ref('stg_api__procedures') }} as procedures on procedures.procedure_code = rows.procedure_code
    ) as flagged
    group by 1, 2
{%- endmacro %}


{% macro service_index_2_1_dossiers_plan() -%}
    {#- fct_service_index_2_1_dossiers' pre-hook (incremental builds): the plan and the changed dossiers, kept
        for the model's body in temporary tables, and the rows they replace removed. -#}
    {% if is_incremental() %}
    create temporary table service_index_2_1_plan on commit drop as
    {{ service_index_plan(with_fingerprint=false, existing=true) }};
    create temporary table service_index_2_1_changed on commit drop as
    select distinct changes.dossier_id
    from {{ service_index_changes_read('service_index_2_1_plan') }} as changes;
    delete from {{ this }} where (select rebuild_all from service_index_2_1_plan);
    delete from {{ this }}
    where not (select rebuild_all from service_index_2_1_plan) and month >= (select rmin from service_index_2_1_plan);
    delete from {{ this }}
    where not (select rebuild_all from service_index_2_1_plan)
        and dossier_id in (select dossier_id from service_index_2_1_changed)
    {% endif %}
{%- endmacro %}
