-- Online submission per receipt month × handling unit.
select
    received_month as month,
    unit_code,
    count(*)::integer as received,
    count(*) filter (where is_online)::integer as online,
    (count(*) filter (where is_online))::numeric / count(*) as online_rate
from {{ ref('fct_dossier') }}
where is_received
group by 1, 2
