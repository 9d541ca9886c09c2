-- Timeliness of resolved dossiers per resolution month × handling unit × field.
select
    resolved_month as month,
    unit_code,
    field_code,
    count(*)::integer as resolved,
    count(*) filter (where timeliness = 'early')::integer as early,
    count(*) filter (where timeliness = 'on_time')::integer as on_time,
    count(*) filter (where timeliness = 'late')::integer as late,
    (count(*) filter (where timeliness in ('early', 'on_time')))::numeric / count(*) as on_time_rate,
    (count(*) filter (where timeliness = 'late'))::numeric / count(*) as overdue_rate
from {{ ref('fct_dossier') }}
where is_resolved
group by 1, 2, 3
