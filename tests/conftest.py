"""The suite runs on two workers (``make test``: pytest-xdist, one test file per worker at a time). Each
worker gets its own dbt target and log folders: two dbt processes writing one ``target/`` (its partial-parse
file, its manifest) would corrupt each other's."""

from __future__ import annotations

import os

from tests.support.paths import PROJECT_ROOT


def pytest_configure(config) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        local = PROJECT_ROOT / ".local" / "dbt"
        os.environ.setdefault("DBT_TARGET_PATH", str(local / f"target-{worker}"))
        os.environ.setdefault("DBT_LOG_PATH", str(local / f"logs-{worker}"))
