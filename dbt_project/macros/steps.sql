{#- fct_step_monthly and fct_step_monthly_by_field are rebuilt month by month: only the months whose steps changed
    since their last build, read from a change log int_dossiers__steps' hooks write — never from the steps of the
    whole history. A changed dossier's steps are replaced whole, but most of them come back as they were (a new
    version of a dossier mostly adds a step or changes its status): a month's figures change only when the
    multiset of its steps, as the marts read them (step_mart_columns), does. The pre-hook of int_dossiers__steps
    keeps those columns of the steps it is about to replace or remove (every step of the dossiers changed since
    its last build); its post-hook logs the months of the steps that differ between before and after, both
    ways. A mart's build register (step_month_builds) keeps the last log row it read. A mart with no register
    row — its first incremental build after int_dossiers__steps was rebuilt whole, which empties the log and
    forgets the registers, or after an upgrade — rebuilds every month. -#}

{% macro step_log() -%}{{ state_relation('int_dossiers__steps', 'step_month_changes') }}{%- endmacro %}
{% macro step_builds() -%}{{ state_relation('int_dossiers__steps', 'step_month_builds') }}{%- endmacro %}


{% macro step_log_readers() -%}
    {#- The models that read the log (a row is dropped once each has read it): the step marts, and
        fct_late_origin_monthly_by_field, which reads only whether it has a build on record. -#}
    {{ return(['fct_step_monthly', 'fct_step_monthly_by_field', 'fct_late_origin_monthly_by_field']) }}
{%- endmacro %}


{% macro step_prepare_log() -%}
    {#- The log and the register, created when missing (a log found missing forgets every mart's build: their
        ids would point into a log that is gone). -#}
    do $$
    begin
        {{ step_prepare_statements() }}
    end
    $$
{%- endmacro %}


{% macro step_prepare_statements() -%}
    {#- step_prepare_log's PL/pgSQL statements, for the hooks that run them inside a block of their own. -#}
        create table if not exists {{ step_builds() }} (
            model text primary key,
            log_id bigint not null,
            built_at timestamptz not null default now()
        );
        if to_regclass('{{ step_log() }}') is null then
            create table {{ step_log() }} (id bigserial primary key, month date not null);
            delete from {{ step_builds() }};
        end if;
{%- endmacro %}


{% macro step_mart_columns() -%}
    {#- What the step marts read of a step: their groups and their measures. A month is rebuilt when a step
        with these values comes or goes. -#}
    month, unit_code, office, field_code, is_late, duration_seconds
{%- endmacro %}


{% macro steps_last_build() -%}
    {#- The steps' stamp as it was before step_delete_changed took the changed dossiers' steps out (the newest
        among them): the body reads the same dossiers the hooks saw, not those changed since an older stamp. -#}
    (select changed_at from steps_last_build)
{%- endmacro %}


{% macro step_delete_changed() -%}
    {#- int_dossiers__steps' last pre-hook (incremental builds): every step of the dossiers changed since the last
        build removed — tombstones, dossiers left with no valid step, and those the body writes again (it
        reads the landed dossiers, not stg_api__dossiers, so cannot tell them apart without decoding twice).
        The dossiers as an array (= any): read through the index on dossier_id; a join with them let the
        planner hash them against every step. -#}
    {% if is_incremental() %}
    delete from {{ this }} where dossier_id = any(array(select dossier_id from steps_changed))
    {% endif %}
{%- endmacro %}


{% macro step_rows_of_changed() -%}
    {#- step_mart_columns of the steps of the dossiers in steps_changed, each dossier's read through the index
        on (dossier_id, position): a loop the planner may not trade for a scan of every step (OFFSET 0 keeps the
        subquery whole; its row estimates for a dossier's steps are several times too high). -#}
    select steps.*
    from steps_changed as changed
    cross join lateral (
        select {{ step_mart_columns() }} from {{ this }} as s where s.dossier_id = changed.dossier_id offset 0
    ) as steps
{%- endmacro %}


{% macro step_log_replaced() -%}
    {#- int_dossiers__steps' pre-hook (incremental builds): the dossiers changed since the last build — those the
        model's body rebuilds and those the next pre-hook removes —, and what the marts read of their steps as
        they are before the build, kept for the post-hook. The log rows every mart has read are dropped
        first. -#}
    {% if is_incremental() %}
    {{ step_prepare_log() }};
    {{ log_trim_read(step_log(), step_builds(), step_log_readers()) }};
    create temporary table steps_last_build on commit drop as
    select max(source_changed_at) as changed_at from {{ this }};
    create temporary table steps_changed on commit drop as
    select dossier_id
    from {{ ref('stg_api__dossier_changes') }}
    where {{ changed_since_last_build('changed_at', steps_last_build()) }};
    create temporary table steps_before on commit drop as
    {{ step_rows_of_changed() }}
    {% endif %}
{%- endmacro %}


{% macro step_log_written() -%}
    {#- int_dossiers__steps' post-hook: after an incremental build (the pre-hook left the changed dossiers' steps
        as they were), the months of the steps that differ between before and after written to the log — a
        step gone or changed, a step new —; after a full build, a new, empty log and every mart's build
        forgotten, so each rebuilds every month. (is_incremental() cannot tell the two apart here: a first
        build's table exists by the time its post-hook runs.) -#}
    do $$
    begin
        if to_regclass('pg_temp.steps_before') is not null then
            insert into {{ step_log() }} (month)
            with after_build as materialized ({{ step_rows_of_changed() }})
            select distinct month from (
                (select * from steps_before except all select * from after_build)
                union all
                (select * from after_build except all select * from steps_before)
            ) as differing;
        else
            drop table if exists {{ step_log() }};
            {{ step_prepare_statements() }}
        end if;
    end
    $$
{%- endmacro %}


{% macro step_months_logged() -%}
    {#- The months a mart rebuilds tonight: those logged since its last build; null when it has no build on
        record (then every month). -#}
    (select array(
        select distinct changes.month from {{ step_log() }} as changes
        where changes.id > builds.log_id
     )
     from {{ step_builds() }} as builds
     where builds.model = '{{ this.identifier }}')
{%- endmacro %}


{% macro step_mart_drop_stamp() -%}
    {#- A mart's first pre-hook: a table built when the marts carried their newest step's stamp
        (source_changed_at) loses the column, so the incremental build goes on (on_schema_change='fail'). The
        stamp changed with every new version of a dossier, even when its steps did not: the months would have
        been rebuilt for it. -#}
    {% if is_incremental() %}
    alter table {{ this }} drop column if exists source_changed_at
    {% endif %}
{%- endmacro %}


{% macro step_months_delete() -%}
    {#- A mart's pre-hook: the months it rebuilds taken out (all of them when it has no build on record). -#}
    {% if is_incremental() %}
    {{ step_prepare_log() }};
    delete from {{ this }}
    where month = any(coalesce({{ step_months_logged() }}, array(select distinct month from {{ this }})))
    {% endif %}
{%- endmacro %}


{% macro step_months_missing() -%}
    {#- In an incremental build, the filter of int_dossiers__steps on the months the pre-hook took out — read
        through the index on month; every month when the mart has no build on record. -#}
    where month = any(coalesce({{ step_months_logged() }},
                               array(select distinct month from {{ ref('int_dossiers__steps') }})))
{%- endmacro %}


{% macro step_record_build() -%}
    {#- A mart's post-hook: the log read up to its newest row, in the build's transaction. -#}
    {{ step_prepare_log() }};
    {{ log_record_read(step_log(), step_builds()) }}
{%- endmacro %}


{% macro steps_add_field_code() -%}
    {#- int_dossiers__steps' first pre-hook: a table built before the steps carried their dossier's field is
        rewritten once with the column, read from stg_api__dossier_steps (what the model's body reads) — a new
        table and its indexes, not an UPDATE of every row, which would cost more than a full refresh and leave
        the table twice its size —, so the incremental build goes on instead of failing on the schema change
        (on_schema_change='fail') until a full refresh decodes every payload again. The constraints follow
        from the post-hook; the statistics are taken at once (the night's statements that follow plan
        on them). -#}
    {% if is_incremental() %}
    {%- set before = this.identifier ~ '__without_field' -%}
    do $$
    begin
        if not exists (select 1 from pg_attribute
                       where attrelid = '{{ this }}'::regclass and attname = 'field_code' and not attisdropped) then
            alter table {{ this }} rename to {{ adapter.quote(before) }};
            create table {{ this }} as
            select s.*, d.field_code
            from {{ adapter.quote(this.schema) }}.{{ adapter.quote(before) }} as s
            left join (
                select distinct on (dossier_id) dossier_id, field_code from {{ ref('stg_api__dossier_steps') }}
            ) as d on d.dossier_id = s.dossier_id;
            drop table {{ adapter.quote(this.schema) }}.{{ adapter.quote(before) }};
            {%- for index in config.get('indexes', []) %}
            {{ get_create_index_sql(this, index) }};
            {%- endfor %}
            analyze {{ this }};
        end if;
    end
    $$
    {% endif %}
{%- endmacro %}


{% macro step_measures() -%}
    {#- The measures of a group of steps (metrics.md): steps, late steps and their share, median and 90th
        percentile of the durations in hours (continuous, steps without a duration left out). -#}
    count(*)::integer as steps,
    (count(*) filter (where is_late))::integer as late_steps,
    (count(*) filter (where is_late))::numeric / count(*) as late_step_rate,
    (percentile_cont(0.5) within group (order by duration_seconds) / 3600)::numeric as median_hours,
    (percentile_cont(0.9) within group (order by duration_seconds) / 3600)::numeric as p90_hours
{%- endmacro %}
