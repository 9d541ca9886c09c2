"""The dossiers' data-quality issues as intervals: a night costs what changed, not the backlog.

An issue is a dossier failing a rule from one validation until a later one no longer finds it (or the
dossier is deleted): one row of ``dq.issue_intervals`` written when it opens, one update when it closes.
Every validation "sees" all the open intervals it does not touch, which holds because a rule's outcome only
changes when

- the dossier changed (a new version landed: ``dq.dq_dossiers.source_changed_at``), or was deleted;
- the as-of time crossed one of its times: INC05 (no activity for more than 30 days) and VAL01 (a time
  later than the as-of time) — the dossiers whose ``last_activity_at`` or ``latest_recorded_at`` lies in
  the band the as-of time moved over since the previous validation;
- the reference data the rules join changed (DIG02's catalogue, VAL03's units and catalogue, VAL07's units'
  last days): then every dossier is evaluated (the lists change seldom).

So a night evaluates the rules on that **change set** (``dq.dq_batch``) only, and the intervals of those
dossiers are brought up to date from what it finds. The first validation, and one after a change of the
reference data, evaluates every dossier (``full``). A validation whose as-of time is earlier than the latest
one's (a backfilled night) evaluates every dossier too, but leaves the intervals as they are (``out of
order``): its findings are kept in ``dq.findings`` for that night's figures, the issues' history is that of
the nights in order. A validation run again (a retried task) first undoes what its earlier attempt did to
the intervals, when nothing came after it.

Decisions: the change set re-reads the landings of ``DBT_INCREMENTAL_LOOKBACK_MINUTES`` before the previous
validation's newest one (as the incremental models do); an interval keeps the unit and observed value of
the last validation that found it failing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

from expectations.rules import DOSSIER_TABLE, PROCEDURES, STALE_DAYS, UNITS

log = logging.getLogger(__name__)

FULL, CHANGES, OUT_OF_ORDER = "full", "changes", "out of order"
INTERVALS = "dq.issue_intervals"
BATCH_TABLE = ("dq", "dq_batch")


@dataclass(frozen=True)
class Previous:
    """The latest validation in order before this one."""

    validation_id: str
    seq: int
    as_of: datetime
    changed_through: datetime | None
    reference_hash: str | None


@dataclass
class Plan:
    """What a dossier validation evaluates and does to the intervals."""

    kind: str
    table: tuple[str, str]  # what Great Expectations validates: dq.dq_dossiers, or the change set dq.dq_batch
    previous: Previous | None
    last_seen: datetime | None  # the as-of time of the validation before (what a closing issue was last seen at)
    reference_hash: str
    changed_through: datetime | None
    lookback_minutes: float

    @property
    def keeps_intervals(self) -> bool:
        return self.kind != OUT_OF_ORDER


def reference_hash(conn: psycopg.Connection) -> str:
    """A digest of the reference data the rules join (the staged units and catalogue, whole rows)."""
    return conn.execute(
        f"select md5(coalesce((select string_agg(p::text, '|' order by p::text) from {PROCEDURES} p), '') "
        f"|| '#' || coalesce((select string_agg(u::text, '|' order by u::text) from {UNITS} u), ''))").fetchone()[0]


def _in_order(conn: psycopg.Connection) -> list[tuple]:
    """The two latest dossier validations that kept the intervals, newest first."""
    return conn.execute(
        "select validation_id, seq, as_of, changed_through, reference_hash from dq.validation_runs "
        "where suite = 'dossiers' and status in ('passed', 'warnings') and batch_kind in (%s, %s) "
        "order by seq desc limit 2", (FULL, CHANGES)).fetchall()


def undo(conn: psycopg.Connection, validation_id: str) -> bool:
    """Undo what an earlier attempt of ``validation_id`` did to the intervals, when it is the latest
    validation in order (nothing built on it since). True when there was such an attempt."""
    latest = _in_order(conn)
    if not latest or latest[0][0] != validation_id:
        return False
    seq = latest[0][1]
    # Rows are never deleted: what the attempt opened is voided, what it closed is open again, each marked
    # changed (a fresh number of the validations' sequence) for the issue marts to read again.
    stamp = conn.execute("select nextval('dq.validation_seq')").fetchone()[0]
    conn.execute("update dq.issue_intervals set voided = true, changed_seq = %s where opened_seq = %s and not voided",
                 (stamp, seq))
    conn.execute("update dq.issue_intervals set closed_seq = null, closed_validation = null, closed_at = null, "
                 "last_seen_at = null, changed_seq = %s where closed_seq = %s and not voided", (stamp, seq))
    log.info("data quality: undid the intervals of %s's earlier attempt", validation_id)
    return True


def plan(conn: psycopg.Connection, validation_id: str, as_of: datetime, lookback_minutes: float) -> Plan:
    """Decide what the validation ``validation_id`` at ``as_of`` evaluates; builds ``dq.dq_batch`` for a
    change set. Call in the transaction that stores the validation, after ``undo``."""
    rows = [r for r in _in_order(conn) if r[0] != validation_id]
    previous = Previous(*rows[0]) if rows else None
    ref = reference_hash(conn)
    # Before the first validation in order, the history may come from a warehouse that kept it elsewhere.
    last_seen = previous.as_of if previous else conn.execute(
        "select max(as_of) from dq.validation_runs where suite = 'dossiers' and status in ('passed', 'warnings') "
        "and validation_id <> %s", (validation_id,)).fetchone()[0]
    changed_through = conn.execute(f"select max(source_changed_at) from {'.'.join(DOSSIER_TABLE)}").fetchone()[0]
    again = conn.execute("select 1 from dq.validation_runs where validation_id = %s", (validation_id,)).fetchone()
    if previous is not None and (as_of < previous.as_of or (again and not _latest_is(conn, validation_id))):
        kind = OUT_OF_ORDER
    elif previous is None or previous.reference_hash != ref or previous.changed_through is None:
        kind = FULL
    else:
        kind = CHANGES
    conn.execute("drop table if exists dq.dq_batch")
    if kind != CHANGES:
        return Plan(kind, DOSSIER_TABLE, previous, last_seen, ref, changed_through, lookback_minutes)
    conn.execute(
        f"""
        create unlogged table dq.dq_batch as
        select d.* from {'.'.join(DOSSIER_TABLE)} as d
        where d.source_changed_at > %(since)s - %(lookback)s * interval '1 minute'
           or (d.last_activity_at >= %(prev)s - interval '{STALE_DAYS} days'
               and d.last_activity_at < %(as_of)s - interval '{STALE_DAYS} days' and d.status in (2, 4))
           or (d.latest_recorded_at > %(prev)s and d.latest_recorded_at <= %(as_of)s)
        """, {"since": previous.changed_through, "lookback": lookback_minutes, "prev": previous.as_of,
              "as_of": as_of})
    conn.execute("create unique index on dq.dq_batch (dossier_id)")
    return Plan(kind, BATCH_TABLE, previous, last_seen, ref, changed_through, lookback_minutes)


def _latest_is(conn: psycopg.Connection, validation_id: str) -> bool:
    latest = _in_order(conn)
    return bool(latest) and latest[0][0] == validation_id


def apply(conn: psycopg.Connection, plan: Plan, validation_id: str, seq: int, as_of: datetime,
          found: str) -> dict[str, int]:
    """Bring the intervals up to date with the failing (dossier, rule) rows of the temporary table ``found``
    (``dossier_id, rule_id, unit_code, observed_value``) of the validation ``seq`` at ``as_of``: close the
    open intervals of the evaluated (or deleted) dossiers no longer failing, refresh the still failing ones,
    open the new ones. Returns the counts. A dossier a rule found twice raises ``UniqueViolation`` (``found``'s
    key, added here, or the open intervals' unique index)."""
    if not plan.keeps_intervals:
        return {"opened": 0, "closed": 0}
    params = {"seq": seq, "vid": validation_id, "as_of": as_of, "last_seen": plan.last_seen}
    insert = (
        f"insert into {INTERVALS} (dossier_id, rule_id, unit_code, observed_value, opened_seq, "
        "opened_validation, opened_at, changed_seq) "
        f"select f.dossier_id, f.rule_id, f.unit_code, f.observed_value, %(seq)s, %(vid)s, %(as_of)s, %(seq)s "
        f"from {found} f")
    if plan.kind == FULL and _first_fill(conn):
        # Every issue opens: nothing to close or refresh, no order needed (no index is kept row by row), and
        # no key on ``found`` (1.8 s for 1.9M issues): the open intervals' unique index, built after the
        # insert, refuses a dossier found twice by a rule. (The open intervals' anti-join below must not be
        # written here: without its sort, it would scan the table as it fills.)
        with _indexes_set_aside(conn, INTERVALS):
            return {"opened": conn.execute(insert, params).rowcount, "closed": 0}
    # Its key is added once it is filled: kept row by row while every dossier's findings arrive (1.9M rows
    # in dossier order within each rule, random order for the key), it doubled the stage's writing.
    conn.execute(f"alter table {found} add primary key (dossier_id, rule_id)")
    if plan.kind == FULL:
        scope = "true"  # every dossier evaluated; an open interval of a dossier no longer current closes too
    else:
        params.update(since=plan.previous.changed_through, lookback=plan.lookback_minutes)
        # one list (a semi-join through the open intervals' index), not two IN lists joined by OR (a scan of
        # every interval)
        scope = ("i.dossier_id in (select b.dossier_id from dq.dq_batch as b union all "
                 "select c.dossier_id from raw.dossier_current as c where c.is_deleted "
                 "and c.changed_at > %(since)s - %(lookback)s * interval '1 minute')")
    closed = conn.execute(
        f"update dq.issue_intervals as i set closed_seq = %(seq)s, closed_validation = %(vid)s, "
        f"closed_at = %(as_of)s, last_seen_at = %(last_seen)s, changed_seq = %(seq)s "
        f"where i.closed_seq is null and not i.voided and {scope} "
        f"and not exists (select 1 from {found} as f where f.dossier_id = i.dossier_id and f.rule_id = i.rule_id)",
        params).rowcount
    conn.execute(
        f"update dq.issue_intervals as i set unit_code = f.unit_code, observed_value = f.observed_value, "
        f"changed_seq = %(seq)s from {found} as f where i.closed_seq is null and not i.voided "
        "and i.dossier_id = f.dossier_id and i.rule_id = f.rule_id "
        "and (i.unit_code is distinct from f.unit_code or i.observed_value is distinct from f.observed_value)",
        params)
    opened = conn.execute(
        f"{insert} where not exists (select 1 from dq.issue_intervals as i where i.closed_seq is null "
        "and not i.voided and i.dossier_id = f.dossier_id and i.rule_id = f.rule_id) "
        # in the keys' order: the intervals' key and open index then grow at their right edge instead of
        # everywhere (15.3 s against 20.1 s for a first validation's 1.9M issues)
        "order by f.dossier_id, f.rule_id", params).rowcount
    return {"opened": opened, "closed": closed}


def _first_fill(conn: psycopg.Connection) -> bool:
    """Whether the intervals are empty (a new warehouse's first validation, a rebuild), locked so until the
    validation commits, and this role may rebuild their indexes (it owns the table) — then the first
    validation's issues are written without the indexes and the indexes built after them (``apply``)."""
    owned = conn.execute("select pg_has_role(relowner, 'USAGE') from pg_class where oid = %s::regclass",
                         (INTERVALS,)).fetchone()[0]
    if not owned:
        return False
    conn.execute(f"lock table {INTERVALS} in share row exclusive mode")
    return conn.execute(f"select not exists (select 1 from {INTERVALS})").fetchone()[0]


@contextmanager
def _indexes_set_aside(conn: psycopg.Connection, table: str) -> Iterator[None]:
    """Drop ``table``'s indexes (its primary key and unique constraints too) for the block, then create them
    again as they were, in the caller's transaction: a validation that fills an empty table (1.9M issues in a
    rebuild of 3M dossiers) writes its rows, then builds each index in one sort, instead of inserting into six
    B-trees row by row (10.8 s against 6.9 s on that rebuild's issues). A table another one's foreign key
    references keeps its indexes."""
    if conn.execute("select 1 from pg_constraint where confrelid = %s::regclass", (table,)).fetchone():
        yield
        return
    constraints = conn.execute(
        "select conname, pg_get_constraintdef(oid) from pg_constraint "
        "where conrelid = %s::regclass and contype in ('p', 'u', 'x') order by conname", (table,)).fetchall()
    indexes = conn.execute(
        "select i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) from pg_index as i "
        "where i.indrelid = %s::regclass and not exists (select 1 from pg_constraint as c "
        "where c.conrelid = i.indrelid and c.conindid = i.indexrelid) order by 1", (table,)).fetchall()
    for name, _ in constraints:
        conn.execute(sql.SQL("alter table {} drop constraint {}").format(_table(table), sql.Identifier(name)))
    for name, _ in indexes:
        conn.execute(sql.SQL("drop index {}").format(sql.SQL(name)))  # regclass text: qualified and quoted
    yield
    for _, definition in indexes:
        conn.execute(definition)
    for name, definition in constraints:
        conn.execute(sql.SQL("alter table {} add constraint {} ").format(_table(table), sql.Identifier(name))
                     + sql.SQL(definition))


def _table(qualified: str) -> sql.Composable:
    return sql.Identifier(*qualified.split("."))
