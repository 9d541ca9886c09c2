"""The warehouse tables the nightly DAG publishes, as Airflow Assets.

``cchc_nightly`` lists them as the outlets of its ``marts_published`` task (the dossier marts) and its
``finance_published`` task (the disbursement marts), each of which runs once its marts have been rebuilt
(and only then: a run stopped by a critical data-quality failure publishes nothing).
Downstream work is scheduled on these assets rather than on the clock: the monthly publication DAG
(``dags/monthly.py``), and any refresh of Superset's cached charts one may add.

The URIs name the warehouse logically (``postgres://warehouse:5432/warehouse/marts/<table>``): an asset
is an identifier, not a connection; the connection comes from the pipeline's settings.
"""

from __future__ import annotations

from airflow.sdk import Asset

DOSSIER_MART_TABLES = (
    "dim_unit", "dim_procedure", "fct_dossier", "fct_timeliness_monthly", "fct_online_monthly",
    "fct_digitisation_monthly", "fct_pending_overdue", "fct_delegation_progress", "fct_delegation_usage",
    "rpt_monthly_ranking", "fct_dq_issue", "fct_dq_daily",
)
# Built from the finance department's workbooks, on a branch of the nightly DAG of their own.
FINANCE_MART_TABLES = ("fct_disbursement", "rpt_disbursement_by_investor")
MART_TABLES = DOSSIER_MART_TABLES + FINANCE_MART_TABLES


def mart_asset(table: str) -> Asset:
    return Asset(name=f"marts.{table}", uri=f"postgres://warehouse:5432/warehouse/marts/{table}", group="marts")


DOSSIER_MARTS = [mart_asset(t) for t in DOSSIER_MART_TABLES]
FINANCE_MARTS = [mart_asset(t) for t in FINANCE_MART_TABLES]
MARTS = DOSSIER_MARTS + FINANCE_MARTS
MONTHLY_RANKING = mart_asset("rpt_monthly_ranking")
