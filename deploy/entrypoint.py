"""Entrypoint of the project image: run a command with the project's Airflow and dbt environment.

    python deploy/entrypoint.py airflow scheduler
    python deploy/entrypoint.py python -m warehouse bootstrap

The command runs with ``ops.airflow.airflow_env()`` on top of the container's environment, which wins
(docker-compose.yml sets the executor, the metadata database and the secrets): the DAGs folder, the project
on ``PYTHONPATH``, no telemetry and, when ``WAREHOUSE_WRITER_URL`` is set, the ``DBT_*`` variables the dbt
profile reads, derived from that URL — the environment ``make run`` gives Airflow on one machine.

It refuses to start while a variable still holds the env example's placeholder (``change-me``), so a stack
started from an unedited copy of ``deploy/.env.example`` never runs with published passwords.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

PLACEHOLDER = "change-me"
EXIT_CONFIG = 78  # EX_CONFIG: a configuration error, not a crash worth restarting into


def placeholders(env: Mapping[str, str]) -> list[str]:
    """Names of the variables whose value still contains the env example's placeholder."""
    return sorted(name for name, value in env.items() if PLACEHOLDER in value.lower())


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    unset = placeholders(os.environ)
    if unset:
        print(f"refusing to start: {', '.join(unset)} still hold the placeholder {PLACEHOLDER!r} of "
              "deploy/.env.example; set real values in the env file", file=sys.stderr)
        return EXIT_CONFIG
    from ops.airflow import airflow_env

    os.execvpe(argv[0], argv, airflow_env())
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
