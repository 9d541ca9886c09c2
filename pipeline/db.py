"""The stages' connection to the warehouse: the settings' writer URL, autocommit (each statement, or an
explicit transaction, commits on its own), and an application name that says in ``pg_stat_activity`` who
is connected."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from pipeline.settings import Settings


@contextmanager
def connect(settings: Settings, application_name: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the warehouse of ``settings``, closed on exit."""
    with psycopg.connect(settings.warehouse_url, autocommit=True, application_name=application_name) as conn:
        yield conn
