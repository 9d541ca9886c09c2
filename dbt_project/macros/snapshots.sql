{#- The status-history snapshot compares a night's changes with the current versions of those dossiers only.

    dbt's staging query for a snapshot materialises every current version of the snapshot table
    (`snapshotted_data`, read twice) and hash-joins it with the source: the whole history, every night, however
    few dossiers changed. With `hard_deletes: ignore` a key absent from the source means nothing, so only the
    source's keys can be inserted or updated: reading the snapshot table narrowed to them (through the
    partial index on the current versions' keys) gives the same rows. The keys go in as an array (= any): as
    an IN list the planner took the night's keys for a third of the table and hashed them against all of it.
    dbt's own macro builds the query; it is only handed the narrowed table. Other strategies (`invalidate`,
    `new_record`) need every current key and keep dbt's query as it is. -#}

{% macro postgres__snapshot_staging_table(strategy, source_sql, target_relation) -%}
    {%- if strategy.hard_deletes == 'ignore' and strategy.unique_key is string -%}
        {%- set narrowed -%}
            (
                select * from {{ target_relation }}
                where {{ strategy.unique_key }} = any(array(
                    select changed.{{ strategy.unique_key }} from ({{ source_sql }}) as changed
                ))
            ) as snapshotted_target
        {%- endset -%}
        {{ dbt.default__snapshot_staging_table(strategy, source_sql, narrowed) }}
    {%- else -%}
        {{ dbt.default__snapshot_staging_table(strategy, source_sql, target_relation) }}
    {%- endif -%}
{%- endmacro %}
