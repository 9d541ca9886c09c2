{#- fct_late_origin_monthly_by_field is rebuilt month by month — the resolution months of the late dossiers
    that changed since its last build —, never from every late dossier of the history.

    A late dossier counts in the group of its resolution month, unit, field (all three from fct_dossier) and
    the office of its first late step (int_dossiers__steps). Every new version of a dossier is rewritten in
    both, and every row fct_dossier loses or gains is in its change log (macros/dossier_counts.sql) with its
    resolution month and timeliness: the months a night can change are those of the late rows that log has
    gained since the mart's last build, both signs — a dossier that left a month and the one it came into,
    one whose steps changed (its row is rewritten with its new version, changed or not), one deleted. The
    mart reads both logs' registers: a build on record in fct_dossier's log (none after fct_dossier was built
    anew) and in the steps' (none after int_dossiers__steps was built anew: any first late step may differ);
    without either, every month is rebuilt. -#}

{% macro late_origin_months() -%}
    {#- The resolution months the mart rebuilds tonight; null when it has no build on record in either log. -#}
    (select array(
        select distinct changes.resolved_month from {{ dossier_log() }} as changes
        where changes.id > builds.log_id and changes.timeliness = 'late'
     )
     from {{ dossier_log_builds() }} as builds
     where builds.model = '{{ this.identifier }}'
       and exists (select 1 from {{ step_builds() }} as steps where steps.model = '{{ this.identifier }}'))
{%- endmacro %}


{% macro late_origin_months_table() -%}{{ this.identifier }}__months{%- endmacro %}


{% macro late_origin_months_delete() -%}
    {#- The mart's pre-hook (incremental builds): the months it rebuilds found once (a temporary table the body
        reads) and taken out — all of them when it has no build on record. -#}
    {% if is_incremental() %}
    {{ step_prepare_log() }};
    {{ dossier_log_prepare(ref('fct_dossier')) }};
    create temporary table {{ late_origin_months_table() }} on commit drop as
    select {{ late_origin_months() }} as months;
    delete from {{ this }} as mart using {{ late_origin_months_table() }} as rebuilt
    where rebuilt.months is null or mart.month = any(rebuilt.months)
    {% endif %}
{%- endmacro %}


{% macro late_origin_months_missing() -%}
    {#- In an incremental build, the filter of fct_dossier's late rows on the months the pre-hook took out
        (through fct_dossier's index on the late dossiers' resolution month); every month when the mart has no
        build on record. -#}
    resolved_month = any(coalesce(
        (select months from {{ late_origin_months_table() }}),
        array(select distinct resolved_month from {{ ref('fct_dossier') }} where timeliness = 'late')))
{%- endmacro %}


{% macro late_origin_record_build() -%}
    {#- The mart's post-hook: both logs read up to their newest rows, in the build's transaction. -#}
    {{ log_record_read(dossier_log(), dossier_log_builds()) }};
    {{ step_prepare_log() }};
    {{ log_record_read(step_log(), step_builds()) }}
{%- endmacro %}
