{#- A value that changes from one night to the next — the as-of time, the run id —
    read when dbt executes, not when it parses: from `var(name)` when the command line gives it, else from the
    environment variable CCHC_DBT_<NAME> that the pipeline sets (ops.dbt, the nightly DAG's dbt tasks), else
    `default`. dbt re-parses the whole project whenever `--vars` change (some ten seconds); kept out of the
    vars, a new night's timestamp costs no parse. At parse time the default stands in (parsing only needs the
    refs). -#}
{% macro run_var(name, default=none) -%}
    {%- set given = var(name, none) -%}
    {%- if given is not none -%}
        {{ return(given) }}
    {%- endif -%}
    {%- if execute -%}
        {%- set value = env_var('CCHC_DBT_' ~ (name | upper), '') -%}
        {%- if value != '' -%}
            {{ return(value) }}
        {%- endif -%}
    {%- endif -%}
    {{ return(default) }}
{%- endmacro %}


{% macro lookback_minutes() -%}
    {#- The incremental models' look-back in minutes (DBT_INCREMENTAL_LOOKBACK_MINUTES: ops.dbt and the nightly
        DAG pass it as a run-context value, so a caller with another look-back costs no parse). A number, or
        the build stops: without it an incremental model could not say what it has already read. -#}
    {%- set value = run_var('incremental_lookback_minutes') -%}
    {%- if value is none -%}
        {%- if execute -%}
            {{ exceptions.raise_compiler_error("incremental_lookback_minutes is not set: run dbt through ops.dbt "
                                               "(python -m ops.dbt ...), which passes the pipeline's settings") }}
        {%- endif -%}
        {{ return(0) }}
    {%- endif -%}
    {{ return(value | float) }}
{%- endmacro %}
