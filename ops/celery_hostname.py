"""Airflow's ``[core] hostname_callable`` on the Celery workers of ``make airflow-celery``.

A task instance records the host it ran on (``hostname``: the UI, the REST API, the metadata database). Several
workers on one machine would all record the machine's name, so each worker ``make airflow-celery`` starts gets
its name in ``CELERY_WORKER_NAME`` (``worker1``, ``worker2``…: its Celery node name is ``worker1@<host>``) and
records ``worker1.<host>``. Without it — a worker alone on its machine, the compose stack's — the machine's
name, as Airflow's default callable gives it.

Airflow also uses the hostname to fetch the log of a running task from its worker's log server; a name like
``worker1.<host>`` does not resolve, so on this one-machine stack the api-server shows running tasks' logs from
the log folder the workers share (finished tasks' logs always are).
"""

from __future__ import annotations

from functools import cache

from pipeline.settings import CelerySettings


@cache
def hostname() -> str:
    """``<CELERY_WORKER_NAME>.<the machine's name>``, or the machine's name when no worker name is set."""
    from airflow.utils.net import getfqdn

    name = CelerySettings.from_env().worker_name
    return f"{name}.{getfqdn()}" if name else getfqdn()
