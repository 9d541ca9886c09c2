"""The warehouse tables the nightly DAG publishes, as Airflow Assets.

``cchc_nightly`` lists them as the outlets of its ``marts_published`` task, which runs once every mart
has been rebuilt (and only then: a run stopped by a critical data-quality failure publishes nothing).
Downstream work is scheduled on these assets rather than on the clock: the monthly publication DAG
(``dags/monthly.py``), and any BI cache refresh (Superset / Metabase) one may add.

The URIs name the warehouse logically (``postgres://warehouse:5432/warehouse/marts/<table>``): an asset
is an identifier, not a connection; the connection comes from the pipeline's settings.
"""

from __future__ import annotations

from airflow.sdk import Asset

MART_TABLES = (
    "dim_unit", "dim_procedure", "fct_dossier", "fct_timeliness_monthly", "fct_online_monthly",
    "fct_digitisation_monthly", "fct_pending_overdue", "fct_delegation_progress", "fct_delegation_usage",
    "fct_disbursement", "rpt_disbursement_by_investor", "rpt_monthly_ranking", "fct_dq_issue", "fct_dq_daily",
)


def mart_asset(table: str) -> Asset:
    return Asset(name=f"marts.{table}", uri=f"postgres://warehouse:5432/warehouse/marts/{table}", group="marts")


MARTS = [mart_asset(t) for t in MART_TABLES]
MONTHLY_RANKING = mart_asset("rpt_monthly_ranking")
