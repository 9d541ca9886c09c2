"""Two pipeline runs never write the warehouse at the same time.

A nightly run's tasks are separate processes (under a scheduler) or one process (``airflow dags test``,
``make run``), so a PostgreSQL session lock cannot be held from the first load to the last publication. The
run holds a **lease** instead: one row in ``audit.run_lease``, taken by ``start_run``, checked (and
renewed) by every task that writes — the loads, and each dbt invocation through the ``on-run-start`` hook
``assert_run_lease`` — and released by ``finish_run``, which runs however the night ended. Every change
to the lease happens under a transaction-level advisory lock, so two runs starting at once cannot both
take it.

A second run waits ``PIPELINE_LOCK_WAIT_SECONDS`` for the lease, then fails with a message naming the
holder. A lease whose run was killed before releasing it (a ``dagrun_timeout``, a machine restart) frees
itself at ``expires_at`` (``PIPELINE_LOCK_TTL_SECONDS`` after its last renewal), or at once when its run
is recorded as finished in ``audit.pipeline_runs``; ``python -m pipeline lease --break`` frees it by hand.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass
from datetime import datetime

import psycopg

from pipeline.settings import Settings

log = logging.getLogger(__name__)

LEASE = "warehouse"
# Serialises changes to the lease (an arbitrary, fixed key).
ADVISORY_LOCK_KEY = 3_981_577_004
DEFAULT_WAIT_SECONDS = Settings.lock_wait_seconds  # PIPELINE_LOCK_WAIT_SECONDS' default
DEFAULT_TTL_SECONDS = Settings.lock_ttl_seconds  # PIPELINE_LOCK_TTL_SECONDS' default


class LeaseHeld(RuntimeError):
    """Another run holds the warehouse."""


class LeaseLost(RuntimeError):
    """This run no longer holds the warehouse (its lease expired and another run took it)."""


@dataclass(frozen=True)
class Lease:
    run_id: str
    holder: str
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime

    def describe(self) -> str:
        return (f"run {self.run_id} ({self.holder}), holding it since {self.acquired_at:%Y-%m-%d %H:%M:%S %Z}, "
                f"until {self.expires_at:%Y-%m-%d %H:%M:%S %Z} unless renewed")


def holder_description() -> str:
    """Who is taking the lease: user, host, pid and command."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    command = " ".join(os.path.basename(a) for a in sys.argv[:3])[:80]
    return f"{user}@{socket.gethostname()} pid {os.getpid()}: {command}"


def _current(conn: psycopg.Connection) -> tuple[Lease | None, bool]:
    """The lease, and whether it is stale (expired, or its run is recorded as finished)."""
    row = conn.execute(
        "SELECT l.run_id, l.holder, l.acquired_at, l.renewed_at, l.expires_at, "
        "l.expires_at < now() OR coalesce(p.status NOT IN ('running'), false) "
        "FROM audit.run_lease l LEFT JOIN audit.pipeline_runs p ON p.run_id = l.run_id "
        "WHERE l.name = %s FOR UPDATE OF l", (LEASE,)).fetchone()
    if row is None:
        return None, False
    return Lease(*row[:5]), bool(row[5])


def read(url: str) -> Lease | None:
    """The lease as it stands (None when free)."""
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        return _current(conn)[0]


def acquire(url: str, run_id: str, *, wait_seconds: float = DEFAULT_WAIT_SECONDS,
            ttl_seconds: float = DEFAULT_TTL_SECONDS, poll_seconds: float = 2.0) -> Lease:
    """Take the lease for ``run_id`` (again, if it already holds it), waiting up to ``wait_seconds`` for
    another run to release it; raises ``LeaseHeld`` naming the holder when it does not."""
    deadline = time.monotonic() + wait_seconds
    holder = holder_description()
    waited = False
    while True:
        with psycopg.connect(url, autocommit=True, application_name="cchc-lease") as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
            lease, stale = _current(conn)
            if lease is None or lease.run_id == run_id or stale:
                if lease is not None and lease.run_id != run_id:
                    log.warning("taking over the stale lease of %s", lease.describe())
                row = conn.execute(
                    "INSERT INTO audit.run_lease AS l (name, run_id, holder, acquired_at, renewed_at, expires_at) "
                    "VALUES (%s, %s, %s, now(), now(), now() + make_interval(secs => %s)) "
                    "ON CONFLICT (name) DO UPDATE SET run_id = excluded.run_id, holder = excluded.holder, "
                    "acquired_at = CASE WHEN l.run_id = excluded.run_id THEN l.acquired_at ELSE now() END, "
                    "renewed_at = now(), expires_at = excluded.expires_at "
                    "RETURNING run_id, holder, acquired_at, renewed_at, expires_at",
                    (LEASE, run_id, holder, ttl_seconds)).fetchone()
                return Lease(*row)
        if time.monotonic() >= deadline:
            raise LeaseHeld(f"run {run_id} cannot write the warehouse: it is held by {lease.describe()}; waited "
                            f"{wait_seconds:.0f}s (PIPELINE_LOCK_WAIT_SECONDS). If that run is dead, "
                            "`python -m pipeline lease --break` frees it.")
        if not waited:
            log.warning("run %s waits for the warehouse, held by %s", run_id, lease.describe())
            waited = True
        time.sleep(min(poll_seconds, max(0.0, deadline - time.monotonic())))


def check(url: str, run_id: str, *, ttl_seconds: float = DEFAULT_TTL_SECONDS) -> None:
    """Renew ``run_id``'s lease; raises ``LeaseLost`` when the run does not hold it (anymore)."""
    with psycopg.connect(url, autocommit=True, application_name="cchc-lease") as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
        lease, _ = _current(conn)
        if lease is None or lease.run_id != run_id:
            held = lease.describe() if lease else "nobody"
            raise LeaseLost(f"run {run_id} no longer holds the warehouse (now: {held}); it must not write")
        conn.execute("UPDATE audit.run_lease SET renewed_at = now(), expires_at = now() + make_interval(secs => %s) "
                     "WHERE name = %s", (ttl_seconds, LEASE))


def release(url: str, run_id: str) -> bool:
    """Release ``run_id``'s lease; False when it did not hold it."""
    with psycopg.connect(url, autocommit=True, application_name="cchc-lease") as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
        return conn.execute("DELETE FROM audit.run_lease WHERE name = %s AND run_id = %s",
                            (LEASE, run_id)).rowcount > 0


def break_lease(url: str) -> Lease | None:
    """Free the lease whoever holds it (for a run known to be dead); returns what was freed."""
    with psycopg.connect(url, autocommit=True, application_name="cchc-lease") as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
        lease, _ = _current(conn)
        conn.execute("DELETE FROM audit.run_lease WHERE name = %s", (LEASE,))
        return lease
