"""Glue between Airflow and the pipeline: the run id, the data interval as naive local times, and the
``procedure_api`` connection. Imported by the DAG's tasks at run time (never when the DAG is parsed).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import pendulum

from pipeline.settings import LOCAL_TZ, Settings, interval_end_for

API_CONN_ID = "procedure_api"


def pipeline_run_id(airflow_run_id: str) -> str:
    """The Airflow run id, reduced to a safe character set, as the pipeline's run id."""
    return re.sub(r"[^A-Za-z0-9_.:+-]", "_", airflow_run_id)[:200]


def local_naive(value: datetime | None) -> datetime | None:
    """An aware datetime as a naive Asia/Ho_Chi_Minh wall-clock time."""
    if value is None:
        return None
    local = pendulum.instance(value).in_timezone(LOCAL_TZ)
    return datetime(local.year, local.month, local.day, local.hour, local.minute, local.second,
                    local.microsecond)


def run_descriptor(context: Any) -> dict[str, Any]:
    """Run id and data interval (naive local ISO strings) of the current DAG run."""
    start = local_naive(context.get("data_interval_start"))
    end = local_naive(context.get("data_interval_end"))
    if end is None:  # a manual run triggered without a logical date has no data interval
        after = local_naive(context["dag_run"].run_after)
        end = interval_end_for(after.date())
        if end > after:
            end = interval_end_for(after.date() - timedelta(days=1))
        start = None
    return {
        "run_id": pipeline_run_id(context["run_id"]),
        "airflow_run_id": context["run_id"],
        "interval_start": None if start is None else start.isoformat(),
        "interval_end": end.isoformat(),
    }


def api_from_connection() -> tuple[str | None, str | None]:
    """URL and token of the Airflow connection ``procedure_api``, or ``(None, None)`` if undefined.

    Accepts a host holding the whole base URL (``{"conn_type": "http", "host": "https://…/api/v1",
    "password": "…"}``) or a URI (``https://:TOKEN@host:port/api/v1``)."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = Connection.get(API_CONN_ID)
    except AirflowNotFoundException:
        return None, None
    host = conn.host or ""
    if "://" in host:
        url = host
    elif host:
        scheme = "https" if (conn.conn_type or "").lower() == "https" else "http"
        url = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
        if conn.schema:
            url += "/" + conn.schema.lstrip("/")
    else:
        url = None
    return url, conn.password or None


def settings_from_airflow() -> Settings:
    """Settings from the environment, with the API endpoint of the ``procedure_api`` connection."""
    url, token = api_from_connection()
    return Settings.from_env().with_api(url, token)
