{#- The incremental pattern of the per-dossier tables (fct_dossier, dq_dossiers): each build takes the
    dossiers whose landed state changed since the table's last build — raw.dossier_current.changed_at,
    stamped when a window's load commits, against the table's max(source_changed_at) — less a look-back
    (lookback_minutes(), from DBT_INCREMENTAL_LOOKBACK_MINUTES) for a load committing while dbt reads; and removes the
    dossiers that became tombstones in that span. -#}

{% macro changed_since_last_build(column, last_build=none) -%}
    {#- An empty table (a first build that found nothing) takes everything, not nothing. ``last_build``: the
        table's stamp read before a pre-hook removed rows (which could take the newest with them), by default
        read now. -#}
    {{ column }} > coalesce({{ last_build or '(select max(source_changed_at) from ' ~ this ~ ')' }},
                            '-infinity'::timestamptz)
                   - interval '{{ lookback_minutes() }} minutes'
{%- endmacro %}


{% macro delete_new_tombstones(parent) -%}
    {#- A pre-hook; ``parent`` is the model's own parent holding the dossiers with is_deleted and changed_at. -#}
    {% if is_incremental() %}
    delete from {{ this }} f using {{ parent }} s
    where s.dossier_id = f.dossier_id and s.is_deleted and {{ changed_since_last_build('s.changed_at') }}
    {% endif %}
{%- endmacro %}


{% macro ensure_unique_index(columns) -%}
    {#- A post-hook: a unique index on ``columns`` of this relation (nulls not distinct), created once — so an
        incremental table whose rows must be unique fails the build on a second row instead of keeping it. -#}
    do $$
    begin
        if not exists (
            select 1 from pg_index i
            where i.indrelid = '{{ this }}'::regclass and i.indisunique
              and i.indkey::int2[] = (
                  select array_agg(a.attnum order by k.ord)::int2[]
                  from unnest(array[{% for c in columns %}'{{ c }}'{% if not loop.last %}, {% endif %}{% endfor %}]) with ordinality as k (name, ord)
                  join pg_attribute a on a.attrelid = '{{ this }}'::regclass and a.attname = k.name
              )
        ) then
            create unique index on {{ this }} ({{ columns | join(', ') }}) nulls not distinct;
        end if;
    end
    $$
{%- endmacro %}


{% macro ensure_constraints(not_null=[], checks={}, unique_where={}, primary_key=[]) -%}
    {#- A post-hook of a large incremental table: NOT NULL on ``not_null``'s columns, the CHECK constraints of
        ``checks`` (name -> expression), the partial unique indexes of ``unique_where`` (name -> [columns,
        condition]) and the primary key on ``primary_key``'s columns, each added once — the missing ones in one
        ALTER TABLE, so the table is read once when they are added, then never again — so the database refuses
        a bad row on every write and the build fails, instead of a nightly test re-reading the whole history
        for it (those tests run weekly, tag history_scan). A table built anew (a full refresh) gets them again
        from this hook. The primary key comes here rather than from the model's contract: a contract's key
        exists before the first build's insert, which then updates the key's B-tree row by row in random order
        (18.6 s for 3M dossiers, against 7.4 s for the insert and 2.9 s for the key built after it). -#}
    do $$
    declare
        clauses text[] := '{}';
    begin
        {%- if primary_key %}
        {%- set key_name = this.identifier ~ '_pkey' %}
        if not exists (select 1 from pg_constraint where conrelid = '{{ this }}'::regclass and contype = 'p') then
            {{ free_index_name(key_name) }}
            clauses := clauses || 'add constraint {{ adapter.quote(key_name) }} primary key ({{ primary_key | join(", ") }})'::text;
        end if;
        {%- endif %}
        {%- for column in not_null %}
        if not (select attnotnull from pg_attribute
                where attrelid = '{{ this }}'::regclass and attname = '{{ column }}') then
            clauses := clauses || 'alter column {{ adapter.quote(column) }} set not null'::text;
        end if;
        {%- endfor %}
        {%- for name, expression in checks.items() %}
        if not exists (select 1 from pg_constraint
                       where conrelid = '{{ this }}'::regclass and conname = '{{ name }}') then
            clauses := clauses || $c$add constraint {{ adapter.quote(name) }} check ({{ expression }})$c$::text;
        end if;
        {%- endfor %}
        if cardinality(clauses) > 0 then
            execute 'alter table {{ this }} ' || array_to_string(clauses, ', ');
        end if;
        {%- for name, spec in unique_where.items() %}
        {{ ensure_index_statements(name, spec[0], spec[1], unique=true) }}
        {%- endfor %}
    end
    $$
{%- endmacro %}


{% macro ensure_index(name, columns, where=none, unique=false) -%}
    {#- A post-hook: the index ``name`` on ``columns`` of this relation (``where``: a partial index), created
        when this relation lacks it. -#}
    do $$
    begin
        {{ ensure_index_statements(name, columns, where, unique) }}
    end
    $$
{%- endmacro %}


{% macro ensure_index_statements(name, columns, where=none, unique=false) -%}
    {#- ensure_index's PL/pgSQL statements. The index is looked for on this relation, not by its name alone: a
        full refresh (and every build of a table) renames the former table aside and drops it only after the
        post-hooks, so its index still holds the name — ``create index if not exists`` would find it, create
        nothing, and the new table would be left without the index once the old one is dropped. That index is
        renamed out of the way instead. -#}
    {%- set qualified = adapter.quote(this.schema) ~ '.' ~ adapter.quote(name) -%}
        if not exists (select 1 from pg_index
                       where indexrelid = to_regclass('{{ qualified }}') and indrelid = '{{ this }}'::regclass) then
            {{ free_index_name(name) }}
            create {% if unique %}unique {% endif %}index {{ adapter.quote(name) }} on {{ this }}
                ({{ columns | join(', ') }}){% if where %} where {{ where }}{% endif %};
        end if;
{%- endmacro %}


{% macro free_index_name(name) -%}
    {#- A PL/pgSQL statement: the index ``name`` of this relation's schema, if another relation holds it (the
        former table a full refresh renamed aside, dropped only after the post-hooks), renamed out of the way so
        this relation's own index or key can take the name. -#}
    {%- set qualified = adapter.quote(this.schema) ~ '.' ~ adapter.quote(name) -%}
            if to_regclass('{{ qualified }}') is not null then
                execute format('alter index %s rename to %I', '{{ qualified }}',
                               left('{{ name }}', 40) || '__' || to_regclass('{{ qualified }}')::oid);
            end if;
{%- endmacro %}


{% macro state_relation(anchor_model, name) -%}
    {#- A table of state a model's hooks keep beside it (a change log, a build register): ``name`` in the schema
        of model ``anchor_model``, from the model itself or from those that ref it. -#}
    {%- set anchor = this if this.identifier == anchor_model else ref(anchor_model) -%}
    {{ adapter.quote(anchor.schema) }}.{{ adapter.quote(name) }}
{%- endmacro %}


{% macro log_trim_read(log, builds, marts) -%}
    {#- The rows of a change log every mart reading it has read (each mart's build register row keeps the last
        one it read), deleted; none while a mart has no register row. -#}
    delete from {{ log }}
    where id <= (
        select min(log_id) from {{ builds }}
        where model in ('{{ marts | join("', '") }}')
        having count(*) = {{ marts | length }}
    )
{%- endmacro %}


{% macro log_record_read(log, builds) -%}
    {#- A mart's post-hook: the change log read up to its newest row, in the build's transaction. -#}
    insert into {{ builds }} (model, log_id)
    select '{{ this.identifier }}', (select coalesce(max(id), 0) from {{ log }})
    on conflict (model) do update set log_id = excluded.log_id, built_at = now()
{%- endmacro %}


{% macro postgres__get_delete_insert_merge_sql(target, source, unique_key, dest_columns, incremental_predicates) -%}
    {#- dbt's delete+insert, with the rows to replace found through the target's index when the key is one
        column: ``key = any(array(…))`` instead of ``key in (select …)``. The new rows are an unanalysed
        temporary table, so the planner took the night's few thousand keys for many and hashed them against every
        row of the target — a scan of the whole history each night (1.5 s for int_dossiers__steps' 8.7M steps
        at 3M dossiers; 0.1 s through the index). A key of several columns gets dbt's own statement. -#}
    {%- set keys = [unique_key] if unique_key is string else (unique_key or []) -%}
    {%- if keys | length == 1 -%}
    {%- set dest_cols_csv = get_quoted_csv(dest_columns | map(attribute="name")) -%}
    delete from {{ target }} as DBT_INTERNAL_DEST
    where {{ keys[0] }} = any(array(select distinct {{ keys[0] }} from {{ source }} as DBT_INTERNAL_SOURCE))
    {%- for predicate in incremental_predicates or [] %}
        and {{ predicate }}
    {%- endfor %};

    insert into {{ target }} ({{ dest_cols_csv }})
    (
        select {{ dest_cols_csv }}
        from {{ source }}
    )
    {%- else -%}
    {{ default__get_delete_insert_merge_sql(target, source, unique_key, dest_columns, incremental_predicates) }}
    {%- endif -%}
{%- endmacro %}


{% macro full_build_work_mem() -%}
    {#- A pre-hook of a model whose first (or full) build joins whole per-dossier tables: the memory of its
        hashes for this build's transaction only (DBT_FULL_BUILD_WORK_MEM, 256MB; the server's 16MB is sized
        for BI's many connections). With 16MB the two decoders' join of the landed current state with its
        versions hashed the payload rows into 256 batches, 5 GB of temporary files (10.9 s against 3.7 s).
        (Two joins that needed it are gone: int_service_index__contributions joining fct_dossier to a table
        of its attributes — a merge join over the two keys, 17.9 s against 6.6 s — and dq_dossiers grouping
        every step by dossier, 16.0 s against 8.9 s.) A nightly build reads the night's dossiers through the
        keys and is left as it is. -#}
    {% if execute and not is_incremental() -%}
    {#- the settings' value (pipeline.settings checks it), checked again: it is written into the statement -#}
    {%- set size = var('full_build_work_mem') | string | trim -%}
    {%- if not modules.re.fullmatch('[0-9]+(kB|MB|GB|TB)', size) -%}
        {{ exceptions.raise_compiler_error("full_build_work_mem must be a size with its unit (kB, MB, GB, TB), "
                                           ~ "e.g. 256MB, not '" ~ size ~ "'") }}
    {%- endif %}
    set local work_mem = '{{ size }}'
    {%- endif %}
{%- endmacro %}
