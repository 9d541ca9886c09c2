{#- The nightly DAG passes its run id (run_var pipeline_run_id); a dbt invocation of a run that no longer holds
    the warehouse's lease (pipeline/lease.py: it expired and another run took it) stops before touching
    anything. Without the var (a dbt command run by hand, the tests) there is nothing to check. -#}
{% macro assert_run_lease() %}
    {%- set run_id = run_var('pipeline_run_id') -%}
    {%- if execute and run_id -%}
        {%- set held = run_query(
            "select count(*) from audit.run_lease where name = 'warehouse' and run_id = '"
            ~ (run_id | replace("'", "''")) ~ "' and expires_at > now()") -%}
        {%- if held.columns[0].values()[0] == 0 -%}
            {{ exceptions.raise_compiler_error(
                "run " ~ run_id ~ " does not hold the warehouse's lease (audit.run_lease): another run is "
                ~ "writing the warehouse, so this dbt invocation must not") }}
        {%- endif -%}
    {%- endif -%}
    select 1
{% endmacro %}
