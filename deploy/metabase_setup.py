"""Pre-wire Metabase to the warehouse: the first admin, then the warehouse as a database read as ``bi_reader``.

    python deploy/metabase_setup.py      # the compose service metabase-setup runs it after every `up`

Idempotent, through Metabase's HTTP API (the open-source edition has no configuration file):

1. wait until ``GET /api/health`` answers ``ok``;
2. on a fresh Metabase, create the first admin with ``POST /api/setup`` (the setup token comes from
   ``GET /api/session/properties``); otherwise log in as that admin (``POST /api/session``);
3. create the database connection, or update its details (a changed password): PostgreSQL, user and
   password from ``BI_READER_URL``, schemas filtered to ``marts`` only (the one schema ``bi_reader`` may
   read), then ask for a schema sync so tables the nightly run created since appear at once. Metabase
   reads the tables' and columns' database comments — the dbt documentation, persisted by dbt's
   ``persist_docs`` — as their descriptions when it syncs.

| variable | default | meaning |
|---|---|---|
| ``METABASE_URL`` | ``http://metabase:3000`` | Metabase's base URL |
| ``METABASE_ADMIN_EMAIL``, ``METABASE_ADMIN_PASSWORD`` | (required) | the first admin's login |
| ``METABASE_SITE_NAME`` | ``Cải cách hành chính Quảng Nam`` | the instance's name, at first setup |
| ``BI_READER_URL`` | (required) | ``postgresql://bi_reader:PASSWORD@host:port/warehouse`` |
| ``METABASE_DATABASE_NAME`` | ``Kho dữ liệu CCHC (marts)`` | the connection's name in Metabase |
| ``METABASE_SETUP_TIMEOUT`` | ``600`` | seconds to wait for Metabase |

Standard library only; passwords are never printed.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

DEFAULT_URL = "http://metabase:3000"
DEFAULT_SITE_NAME = "Cải cách hành chính Quảng Nam"
DEFAULT_DATABASE_NAME = "Kho dữ liệu CCHC (marts)"
MARTS_SCHEMA = "marts"


class MetabaseError(RuntimeError):
    """Metabase answered with an error status."""


class Metabase:
    """A minimal JSON client of Metabase's API."""

    def __init__(self, base_url: str, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session: str | None = None

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.session:
            request.add_header("X-Metabase-Session", self.session)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise MetabaseError(f"{method} {path}: HTTP {exc.code}: {detail}") from None
        return json.loads(text) if text.strip() else None

    def wait_healthy(self, timeout: float, interval: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if (self.call("GET", "/api/health") or {}).get("status") == "ok":
                    return
            except (MetabaseError, OSError, ValueError):
                pass
            if time.monotonic() >= deadline:
                raise MetabaseError(f"Metabase at {self.base_url} not healthy after {timeout:.0f}s")
            time.sleep(interval)


def connection_details(bi_reader_url: str) -> dict[str, Any]:
    """Metabase's PostgreSQL connection details for ``bi_reader_url``, limited to the ``marts`` schema."""
    parts = urlsplit(bi_reader_url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname or not parts.username:
        raise ValueError("BI_READER_URL must look like postgresql://bi_reader:PASSWORD@host:port/database")
    return {
        "host": parts.hostname,
        "port": parts.port or 5432,
        "dbname": unquote(parts.path.lstrip("/")) or "warehouse",
        "user": unquote(parts.username),
        "password": unquote(parts.password or ""),
        "ssl": False,
        "schema-filters-type": "inclusion",
        "schema-filters-patterns": MARTS_SCHEMA,
    }


def log_in(mb: Metabase, email: str, password: str, site_name: str) -> str:
    """Create the first admin on a fresh Metabase, else log in; returns what it did."""
    properties = mb.call("GET", "/api/session/properties") or {}
    if not properties.get("has-user-setup"):
        answer = mb.call("POST", "/api/setup", {
            "token": properties.get("setup-token"),
            "user": {"email": email, "password": password, "first_name": "Admin", "last_name": "CCHC"},
            "prefs": {"site_name": site_name, "allow_tracking": False},
        })
        mb.session = answer["id"]
        return f"created the first admin {email}"
    mb.session = mb.call("POST", "/api/session", {"username": email, "password": password})["id"]
    return f"logged in as {email}"


def ensure_database(mb: Metabase, name: str, details: Mapping[str, Any]) -> tuple[int, str]:
    """Create the warehouse connection named ``name`` or update its details; returns (id, what it did)."""
    listed = mb.call("GET", "/api/database")
    databases = listed.get("data", []) if isinstance(listed, dict) else (listed or [])
    existing = next((db for db in databases if db.get("name") == name), None)
    if existing is None:
        created = mb.call("POST", "/api/database", {"engine": "postgres", "name": name, "details": dict(details),
                                                     "is_full_sync": True})
        database_id, action = created["id"], "created"
    else:
        database_id, action = existing["id"], "updated"
        mb.call("PUT", f"/api/database/{database_id}", {"engine": "postgres", "name": name,
                                                        "details": dict(details)})
    mb.call("POST", f"/api/database/{database_id}/sync_schema")
    return database_id, action


def main(env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    missing = [k for k in ("METABASE_ADMIN_EMAIL", "METABASE_ADMIN_PASSWORD", "BI_READER_URL") if not env.get(k)]
    if missing:
        print(f"metabase-setup: set {', '.join(missing)}", file=sys.stderr)
        return 2
    mb = Metabase(env.get("METABASE_URL") or DEFAULT_URL)
    details = connection_details(env["BI_READER_URL"])
    name = env.get("METABASE_DATABASE_NAME") or DEFAULT_DATABASE_NAME
    try:
        mb.wait_healthy(float(env.get("METABASE_SETUP_TIMEOUT") or 600))
        print("metabase-setup: " + log_in(mb, env["METABASE_ADMIN_EMAIL"], env["METABASE_ADMIN_PASSWORD"],
                                          env.get("METABASE_SITE_NAME") or DEFAULT_SITE_NAME), flush=True)
        database_id, action = ensure_database(mb, name, details)
    except MetabaseError as exc:
        print(f"metabase-setup: {exc}", file=sys.stderr)
        return 1
    print(f"metabase-setup: {action} database {database_id} {name!r}: {details['user']}@{details['host']}:"
          f"{details['port']}/{details['dbname']}, schema {MARTS_SCHEMA}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
