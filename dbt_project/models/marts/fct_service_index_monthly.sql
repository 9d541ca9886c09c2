{{
    config(
        post_hook=["{{ service_index_record_build(with_fingerprint=true) }}"]
    )
}}
-- The service index of Decision 766 (service-index.md) per month × handling unit × criterion: numerator,
-- denominator, rate, and the points the rate earns, min(1, rate / threshold) × max, null when the
-- denominator is 0; thresholds and maxima are the vars service_index_thresholds and service_index_max_points,
-- the procedure catalogue is tonight's. The running month is counted up to 00:00 of the run's as-of date.
--
-- Built from what changed (macros/service_index.sql): a small table rebuilt every night from itself, not from
-- the history. The running months — from the month of the previous build's as-of date to tonight's — are
-- counted again from int_service_index__contributions (the dossiers received or resolved in them and those
-- that can be pending overdue); every earlier month is taken as built and corrected by the change log's rows
-- written since (a replaced row counts -1, its new version +1). Everything is counted from the dossiers when
-- the table has no previous build, the contributions were rebuilt, or the catalogue or the criteria changed.
{%- set criteria = service_index_criteria() %}
{%- set existing = load_relation(this) if execute else none %}

with plan as (
    {{ service_index_plan(with_fingerprint=true, existing=existing is not none) }}
),

contributions as not materialized (
    -- Not materialized, though read more than once: each reader's filter reaches the table's indexes (a
    -- materialized CTE would copy all of the history first, and scan the copy without them).
    select 1 as sign, contributions.*
    from {{ ref('int_service_index__contributions') }} as contributions
),

-- The dossiers the running months need (all of them for a whole build), read through the month indexes.
running_contributions as (
    select * from contributions
    where (select rebuild_all from plan)
    union all
    select * from contributions
    where not (select rebuild_all from plan)
        and (
            received_month >= (select rmin from plan)
            or resolved_month >= (select rmin from plan)
            or pending_until >= (select rmin from plan)
        )
),

counts as (
    {{ service_index_unit_counts(service_index_expand(
        'running_contributions',
        "(select case when rebuild_all then '-infinity'::date else rmin end from plan)",
        '(select r from plan)'
    )) }}
    {%- if existing is not none %}
    union all
    -- The earlier months as built...
    select
        month,
        unit_code,
        max(numerator) filter (where criterion_id = '2.1'),
        max(denominator) filter (where criterion_id = '2.1'),
        max(numerator) filter (where criterion_id = '3.3'),
        max(denominator) filter (where criterion_id = '3.3'),
        max(numerator) filter (where criterion_id = '3.6'),
        max(denominator) filter (where criterion_id = '3.6'),
        max(numerator) filter (where criterion_id = '4.1'),
        max(denominator) filter (where criterion_id = '4.1'),
        max(numerator) filter (where criterion_id = '4.2'),
        max(denominator) filter (where criterion_id = '4.2'),
        max(numerator) filter (where criterion_id = '4.3'),
        max(denominator) filter (where criterion_id = '4.3')
    from {{ this }}
    where not (select rebuild_all from plan) and month < (select rmin from plan)
    group by 1, 2
    union all
    -- ...and what changed in them since.
    {{ service_index_unit_counts(service_index_expand(
        service_index_changes_read('plan'),
        "'-infinity'::date",
        "(select (rmin - interval '1 month')::date from plan)"
    )) }}
    {%- endif %}
),

-- Every (month, unit) with a dossier in R_m or D_m or pending overdue at the end of m; nulls group together.
per_unit as (
    select
        month,
        unit_code,
        coalesce(sum(n_2_1), 0) as n_2_1, coalesce(sum(d_2_1), 0) as d_2_1,
        coalesce(sum(n_3_3), 0) as n_3_3, coalesce(sum(d_3_3), 0) as d_3_3,
        coalesce(sum(n_3_6), 0) as n_3_6, coalesce(sum(d_3_6), 0) as d_3_6,
        coalesce(sum(n_4_1), 0) as n_4_1, coalesce(sum(d_4_1), 0) as d_4_1,
        coalesce(sum(n_4_2), 0) as n_4_2, coalesce(sum(d_4_2), 0) as d_4_2,
        coalesce(sum(n_4_3), 0) as n_4_3, coalesce(sum(d_4_3), 0) as d_4_3
    from counts
    group by 1, 2
    having coalesce(sum(d_2_1), 0) <> 0 or coalesce(sum(d_4_2), 0) <> 0
),

criteria (criterion_id, threshold, max_points) as (
    values
    {%- for c in criteria %}
        ('{{ c.id }}', '{{ c.threshold }}'::numeric, '{{ c.max_points }}'::numeric){{ "," if not loop.last }}
    {%- endfor %}
),

per_criterion as (
    select
        per_unit.month,
        per_unit.unit_code,
        measures.criterion_id,
        measures.numerator::integer as numerator,
        measures.denominator::integer as denominator
    from per_unit
    cross join lateral (
        values
            ('2.1', n_2_1, d_2_1),
            ('3.3', n_3_3, d_3_3),
            ('3.6', n_3_6, d_3_6),
            ('4.1', n_4_1, d_4_1),
            ('4.2', n_4_2, d_4_2),
            ('4.3', n_4_3, d_4_3)
    ) as measures (criterion_id, numerator, denominator)
),

rated as (
    select
        per_criterion.month,
        per_criterion.unit_code,
        per_criterion.criterion_id,
        per_criterion.numerator,
        per_criterion.denominator,
        per_criterion.numerator::numeric / nullif(per_criterion.denominator, 0) as rate,
        criteria.threshold,
        criteria.max_points
    from per_criterion
    join criteria on criteria.criterion_id = per_criterion.criterion_id
)

select
    month,
    unit_code,
    criterion_id,
    numerator,
    denominator,
    rate,
    threshold,
    max_points,
    -- (least() ignores nulls: a null rate must give null points, not the maximum)
    case when rate is not null then least(1, rate / threshold) * max_points end as points
from rated
