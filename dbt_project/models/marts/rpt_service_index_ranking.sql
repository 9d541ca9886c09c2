-- The service index ranking (service-index.md): per month and level, each unit's score — the points of its
-- criteria with a rate, out of those criteria's maxima (points_max) — on a 100-point scale, ranked by
-- score_100 descending, then unit_code. As in rpt_monthly_ranking, only ranked units have a row: units in
-- force in the month (a unit closed on day d is in force in d's month, a unit opened on day d from d's
-- month on), known to dim_unit, with points_max above 0. Ranked on score_100 rounded to 10 decimals, so
-- that equal scores reached through different sums tie exactly and fall to unit_code.
with per_unit as (
    select
        month,
        unit_code,
        sum(points) as score,
        sum(max_points) filter (where rate is not null) as points_max,
        max(max_points - points) filter (where criterion_id = '2.1') as points_lost_2_1,
        max(max_points - points) filter (where criterion_id = '3.3') as points_lost_3_3,
        max(max_points - points) filter (where criterion_id = '3.6') as points_lost_3_6,
        max(max_points - points) filter (where criterion_id = '4.1') as points_lost_4_1,
        max(max_points - points) filter (where criterion_id = '4.2') as points_lost_4_2,
        max(max_points - points) filter (where criterion_id = '4.3') as points_lost_4_3
    from {{ ref('fct_service_index_monthly') }}
    group by 1, 2
),

eligible as (
    select
        per_unit.month,
        units.level,
        per_unit.unit_code,
        units.unit_name,
        per_unit.score,
        per_unit.points_max,
        per_unit.score / per_unit.points_max * 100 as score_100,
        per_unit.points_lost_2_1,
        per_unit.points_lost_3_3,
        per_unit.points_lost_3_6,
        per_unit.points_lost_4_1,
        per_unit.points_lost_4_2,
        per_unit.points_lost_4_3
    from per_unit
    {{ join_units_in_force('per_unit') }}
    where per_unit.points_max > 0
        and units.level is not null
)

select
    month,
    level,
    unit_code,
    unit_name,
    score,
    points_max,
    score_100,
    row_number() over (partition by month, level order by round(score_100, 10) desc, unit_code)::integer as rank,
    points_lost_2_1,
    points_lost_3_3,
    points_lost_3_6,
    points_lost_4_1,
    points_lost_4_2,
    points_lost_4_3
from eligible
