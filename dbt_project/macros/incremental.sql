{#- The incremental pattern of the per-dossier tables (fct_dossier, dq_dossiers): each build takes the
    dossiers whose landed state changed since the table's last build — raw.dossier_current.changed_at,
    stamped when a window's load commits, against the table's max(source_changed_at) — less a look-back
    (var incremental_lookback_minutes, 15) for a load committing while dbt reads; and removes the
    dossiers that became tombstones in that span. -#}

{% macro changed_since_last_build(column) -%}
    {{ column }} > (select max(source_changed_at) from {{ this }})
                   - interval '{{ var("incremental_lookback_minutes", 15) }} minutes'
{%- endmacro %}


{% macro delete_new_tombstones() -%}
    {#- A pre-hook: the table must also depend on stg_api__dossiers (`-- depends_on:` in the model). -#}
    {% if is_incremental() %}
    delete from {{ this }} f using {{ ref('stg_api__dossiers') }} s
    where s.dossier_id = f.dossier_id and s.is_deleted and {{ changed_since_last_build('s.changed_at') }}
    {% endif %}
{%- endmacro %}
