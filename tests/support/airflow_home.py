"""A fresh ``AIRFLOW_HOME`` whose SQLite metadata database is already migrated.

``airflow db migrate`` costs some five seconds of CPU, and every test that runs ``python -m ops.airflow
test-dag`` in a home of its own would pay it. Instead it runs once per Airflow version on this machine, into a
template under ``<project>/.local/test-airflow/<version>`` (the pytest workers take turns on a file lock, the
first one builds it); ``premigrated_home(home)`` copies that database into ``home`` and writes the stamp
``ops.airflow.ensure_db`` looks for, so the test's first night starts at once. A copy is the database
``airflow db migrate`` would have written: a SQLite file holds no path of its own.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from importlib.metadata import version
from pathlib import Path

from ops.airflow import airflow_env, ensure_db, mark_migrated
from tests.support.paths import PROJECT_ROOT

TEMPLATES = PROJECT_ROOT / ".local" / "test-airflow"


def _env(home: Path) -> dict[str, str]:
    """The environment a test's ``test-dag`` sees for ``home``: the project's defaults (its SQLite database),
    none of the developer's ``AIRFLOW*`` settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    return airflow_env({"AIRFLOW_HOME": str(home)}, base=base)


def _template() -> Path:
    home = TEMPLATES / version("apache-airflow-core")
    home.mkdir(parents=True, exist_ok=True)
    with (TEMPLATES / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ensure_db(_env(home))
    return home / "airflow.db"


def premigrated_home(home: Path) -> Path:
    """``home`` with a migrated copy of the template's metadata database (for a test's own Airflow state)."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_template(), home / "airflow.db")
    mark_migrated(_env(home))
    return home
