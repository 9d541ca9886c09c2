"""What the project's Airflow DAGs share: their ids (``pipeline.settings``, where ``ops`` reads them too),
timezone, start date, one run at a time and no catch-up, retries, timeouts and the failure alert
(``dag_defaults()``, ``default_args()``).

Read through ``pipeline.settings.DagSettings`` when a DAG file is parsed: ``PIPELINE_TASK_RETRIES``,
``PIPELINE_RETRY_DELAY_SECONDS``, ``PIPELINE_TASK_TIMEOUT_MINUTES`` (``execution_timeout`` of every task: killed,
then retried) and ``PIPELINE_RUN_TIMEOUT_MINUTES`` (``dagrun_timeout`` of every DAG: a stuck night cannot
block the next); their defaults are in the README's "Configuration".

The defaults fit the 10× scenario (3M dossiers) with room: its first load takes a few minutes, its
longest dbt model well under ten. A run that outlives ``dagrun_timeout`` is failed by the scheduler; its
lease on the warehouse (``pipeline.lease``, whose default TTL equals the run timeout) frees itself.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pendulum

from pipeline.settings import LOCAL_TZ, DagSettings

SETTINGS = DagSettings.from_env()
START_DATE = pendulum.datetime(2023, 1, 1, tz=LOCAL_TZ)

RETRIES = SETTINGS.retries
RETRY_DELAY = SETTINGS.retry_delay
TASK_TIMEOUT = SETTINGS.task_timeout
RUN_TIMEOUT = SETTINGS.run_timeout


def on_task_failure(context: Any, consequence: str | None = None) -> None:
    """Task-level failure callback (a DAG-level one may never fire on Airflow 3.x): the alert, with what
    the failure means for the night when the task says so."""
    from pipeline.alerts import notify_task_failure

    notify_task_failure(context, consequence=consequence)


def failure_callback(consequence: str):
    """A failure callback whose alert says what the failure means for the night."""
    return partial(on_task_failure, consequence=consequence)


def default_args(**overrides: Any) -> dict[str, Any]:
    """Every task: retries, timeout, failure alert."""
    return {"owner": "cchc-data", "retries": RETRIES, "retry_delay": RETRY_DELAY,
            "execution_timeout": TASK_TIMEOUT, "on_failure_callback": on_task_failure, **overrides}


def dag_defaults(**more: Any) -> dict[str, Any]:
    """What every ``@dag`` of the project is given: the start date, no catch-up (a missed night is caught up by
    the watermarks, not by extra runs), one run at a time, ``dagrun_timeout``, the tasks' ``default_args``."""
    return {"start_date": START_DATE, "catchup": False, "max_active_runs": 1, "dagrun_timeout": RUN_TIMEOUT,
            "default_args": default_args(), **more}
