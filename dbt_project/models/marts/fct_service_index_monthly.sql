-- The service index of Decision 766 (service-index.md) per month × handling unit × criterion: numerator,
-- denominator, rate, and the points the rate earns, min(1, rate / threshold) × max, null when the
-- denominator is 0. A grouped scan of the per-dossier tables (fct_dossier, int_dossiers__service_index)
-- with the procedure catalogue as it is tonight; thresholds and maxima are the vars service_index_thresholds
-- and service_index_max_points. The running month is counted up to 00:00 of the run's as-of date.
{%- set criteria = service_index_criteria() %}

with procedures as (
    select procedure_code, online_level, has_fees, returns_paper_result
    from {{ ref('stg_api__procedures') }}
),

dossiers as (
    select
        dossiers.unit_code,
        dossiers.is_received,
        dossiers.is_resolved,
        dossiers.received_at,
        dossiers.finished_at,
        dossiers.received_month,
        dossiers.resolved_month,
        dossiers.is_online,
        dossiers.intake_digitised,
        index_attributes.is_paid_online,
        index_attributes.has_reused_component,
        index_attributes.has_electronic_result,
        -- A dossier whose procedure is not in the catalogue has none of its flags.
        coalesce(procedures.online_level in (3, 4), false) as is_offered_online,
        coalesce(procedures.has_fees, false) as has_fees,
        coalesce(procedures.returns_paper_result, false) as returns_paper_result
    from {{ ref('fct_dossier') }} as dossiers
    join {{ ref('int_dossiers__service_index') }} as index_attributes
        on index_attributes.dossier_id = dossiers.dossier_id
    left join procedures on procedures.procedure_code = dossiers.procedure_code
),

-- R_m: 3.3 online dossiers, 3.6 online payment, 4.2 digitised dossiers, 4.3 reuse of digitised data.
received as (
    select
        received_month as month,
        unit_code,
        count(*) filter (where is_offered_online and is_online) as n_3_3,
        count(*) filter (where is_offered_online) as d_3_3,
        count(*) filter (where has_fees and is_paid_online) as n_3_6,
        count(*) filter (where has_fees) as d_3_6,
        count(*) filter (
            where intake_digitised and not (is_resolved and returns_paper_result and not has_electronic_result)
        ) as n_4_2,
        count(*) filter (where has_reused_component) as n_4_3,
        count(*) as received
    from dossiers
    where is_received and received_at < {{ service_index_cut_off() }}
    group by 1, 2
),

-- D_m: 4.1 electronic results of paper-result procedures.
resolved as (
    select
        resolved_month as month,
        unit_code,
        count(*) filter (where returns_paper_result and has_electronic_result) as n_4_1,
        count(*) filter (where returns_paper_result) as d_4_1
    from dossiers
    where is_resolved and finished_at < {{ service_index_cut_off() }}
    group by 1, 2
),

-- 2.1 on-time processing: D_m and the dossiers pending overdue at the end of m.
on_time as (
    select
        month,
        unit_code,
        count(*) filter (where reason is null) as n_2_1,
        count(*) as d_2_1
    from {{ ref('int_service_index__on_time') }}
    group by 1, 2
),

-- Every (month, unit) with a dossier in R_m or D_m or pending overdue at the end of m; nulls group together.
counts as (
    select
        month, unit_code, 0 as n_2_1, 0 as d_2_1, n_3_3, d_3_3, n_3_6, d_3_6, 0 as n_4_1, 0 as d_4_1,
        n_4_2, received as d_4_2, n_4_3, received as d_4_3
    from received
    union all
    select month, unit_code, 0, 0, 0, 0, 0, 0, n_4_1, d_4_1, 0, 0, 0, 0
    from resolved
    union all
    select month, unit_code, n_2_1, d_2_1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
    from on_time
),

per_unit as (
    select
        month,
        unit_code,
        sum(n_2_1) as n_2_1, sum(d_2_1) as d_2_1,
        sum(n_3_3) as n_3_3, sum(d_3_3) as d_3_3,
        sum(n_3_6) as n_3_6, sum(d_3_6) as d_3_6,
        sum(n_4_1) as n_4_1, sum(d_4_1) as d_4_1,
        sum(n_4_2) as n_4_2, sum(d_4_2) as d_4_2,
        sum(n_4_3) as n_4_3, sum(d_4_3) as d_4_3
    from counts
    group by 1, 2
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
