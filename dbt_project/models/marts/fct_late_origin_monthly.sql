-- Where late dossiers' delay began (metrics.md, "where dossiers are held up"), per resolution month ×
-- handling unit × office: the dossiers resolved late (fct_dossier.timeliness) by the office of their first
-- late step (int_dossiers__steps.is_first_late); '(không ghi nhận)' when no step of theirs is late — their
-- delay is recorded nowhere in the System.
with late_dossiers as (
    select dossier_id, unit_code, resolved_month
    from {{ ref('fct_dossier') }}
    where timeliness = 'late'
),

first_late_steps as (
    select dossier_id, office
    from {{ ref('int_dossiers__steps') }}
    where is_first_late
)

select
    late_dossiers.resolved_month as month,
    late_dossiers.unit_code,
    coalesce(first_late_steps.office, '(không ghi nhận)') as office,
    count(*)::integer as late_dossiers
from late_dossiers
left join first_late_steps on first_late_steps.dossier_id = late_dossiers.dossier_id
group by 1, 2, 3
