"""The monthly publication DAG ``cchc_monthly_publication`` (công khai): data-aware, not clock-driven.

It is scheduled on the ``marts.rpt_monthly_ranking`` asset, so it runs after every nightly run that
rebuilt the marts. It publishes the latest complete month (the month before the run's as-of date) when
that month has not been published yet — in practice on the first night of each month — and does
nothing on the other nights. A run triggered with ``{"month": "2023-09", "force": true}`` (re)publishes
any month; ``python -m publication monthly --month 2023-09`` does the same from the command line.
Wiring only: the work is ``publication.monthly``.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from dags.assets import MONTHLY_RANKING
from dags.defaults import dag_defaults
from pipeline.settings import MONTHLY_DAG_ID


@dag(**dag_defaults(
    dag_id=MONTHLY_DAG_ID,
    schedule=[MONTHLY_RANKING],
    tags=["cchc", "publication", "monthly"],
    params={
        "month": Param(None, type=["null", "string"], description="YYYY-MM; default: the latest complete month"),
        "force": Param(False, type="boolean", description="publish again even if the month's files exist"),
    },
    doc_md=__doc__,
))
def cchc_monthly_publication():
    @task
    def publish_month(params: dict | None = None) -> dict:
        from ops.publish import publish_due_month

        params = params or {}
        return publish_due_month(params.get("month"), force=bool(params.get("force")))

    publish_month()


cchc_monthly_publication()
