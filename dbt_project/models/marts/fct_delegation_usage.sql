-- Use of delegated procedures: of the dossiers of a procedure received since its earliest decision among
-- done items, the share handled by one of those items' receiving units. Rebuilt whole each night: every
-- received dossier of a delegated procedure since its decision counts (metrics.md), and a change of the
-- delegation plan (reference data, replaced whole) moves the decision dates and the delegates back in time.
-- The dossiers of the delegated procedures only are read, through fct_dossier's partial index on the
-- received dossiers' procedure_code.
with done as (
    select procedure_code, receiving_unit_code, decision_date
    from {{ ref('int_delegations__status') }}
    where is_done
),

procedures as (
    select procedure_code, min(decision_date) as since_date
    from done
    group by 1
),

received as (
    select
        procedures.procedure_code,
        procedures.since_date,
        dossiers.dossier_id,
        exists (
            select 1 from done
            where done.procedure_code = dossiers.procedure_code and done.receiving_unit_code = dossiers.unit_code
        ) as by_delegate
    from procedures
    left join {{ ref('fct_dossier') }} as dossiers
        on dossiers.procedure_code = procedures.procedure_code
        and dossiers.is_received
        and dossiers.received_at::date >= procedures.since_date
)

select
    procedure_code,
    since_date,
    count(dossier_id)::integer as received,
    count(dossier_id) filter (where by_delegate)::integer as received_by_delegates,
    (count(dossier_id) filter (where by_delegate))::numeric / nullif(count(dossier_id), 0) as usage_rate
from received
group by 1, 2
