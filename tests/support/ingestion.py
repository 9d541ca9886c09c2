"""What the ingestion tests share: the settings of a pull from an API source into a warehouse, and a warehouse
emptied between tests."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from pipeline.settings import Settings


def api_settings(source, writer: str, **overrides: str) -> Settings:
    """The settings of a pull from ``source`` (anything with a ``url`` and a ``token``: the simulator, the
    contract server) into the warehouse ``writer``, history from 2023-01-01; ``overrides`` are more variables."""
    env = {"PROCEDURE_API_URL": source.url, "PROCEDURE_API_TOKEN": source.token, "HISTORY_START": "2023-01-01",
           **overrides}
    return Settings.from_env(env, warehouse_url=writer)


def emptied(writer: str, tables: Sequence[str]) -> str:
    """``writer`` (a warehouse URL), its ``tables`` truncated."""
    with psycopg.connect(writer, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(tables)}")
    return writer
