"""Land API records in ``raw``: dossier windows (incremental) and reference lists (full refresh).

The bulk path is COPY: new versions straight into ``raw.dossier_versions``, the window's (key, time,
hash) rows into a temporary table, then set-based SQL for the current-state pointers
(``raw.dossier_current``), the reconciliation row (``audit.ingest_runs``) and the watermark — all in
one transaction per window, so a run killed midway leaves no partial window and the rerun starts where
the last committed window ended.

Reconciliation, per window: ``fetched = landed + duplicates + quarantined`` (landed counts distinct
keys; duplicates are repeats of a key within the window) and ``reported = landed + quarantined``, where
``reported`` is the API's total at the first page. A record updated while paging can legitimately move
out of the window; then a fresh count (``recount``) must match instead. Anything else fails the window.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import psycopg

from ingestion.client import ProcedureApiClient, Stats, format_ts
from ingestion.records import Landable, RecordReader, Rejected, copy_json, copy_text, reject, same_content

DOSSIERS = "dossiers"
REFERENCE_KEYS = {"units": "MaDonVi", "procedures": "MaTTHC", "delegations": "MaUyQuyen"}
ALL_PARTITIONS = "*"
DOSSIER_READER = RecordReader("MaHoSo", "NgayCapNhat")
MIN_SPLIT = timedelta(minutes=10)  # windows are not split finer than this


class ReconciliationError(Exception):
    """What the API reported does not match what was received: the window is not committed."""


@dataclass
class WindowResult:
    source: str
    partition: str
    window_start: datetime
    window_end: datetime
    pages: int = 0
    reported: int = 0
    recount: int | None = None
    fetched: int = 0
    landed: int = 0
    new_versions: int = 0
    duplicates: int = 0
    quarantined: int = 0
    retries: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["window_start"], d["window_end"] = self.window_start.isoformat(), self.window_end.isoformat()
        return d


# Versions this transaction added to the window (fetched_at is the transaction's start time) become
# current when newer than what is there; changed_at is stamped at the end of the load, close to its commit,
# for the incremental consumers (by NgayCapNhat; for the same NgayCapNhat with other content, the
# later load wins). Re-fetched versions already held change nothing, so only new ones are considered.
UPSERT_CURRENT = """
INSERT INTO raw.dossier_current AS c (dossier_id, updated_at, content_hash, is_deleted, run_id, changed_at)
SELECT DISTINCT ON (dossier_id) dossier_id, updated_at, content_hash, is_deleted, %(run_id)s, clock_timestamp()
FROM raw.dossier_versions
WHERE updated_at >= %(start)s AND updated_at < %(end)s AND fetched_at = now()
ORDER BY dossier_id, updated_at DESC
ON CONFLICT (dossier_id) DO UPDATE
SET updated_at = excluded.updated_at, content_hash = excluded.content_hash, is_deleted = excluded.is_deleted,
    run_id = excluded.run_id, changed_at = excluded.changed_at
WHERE excluded.updated_at > c.updated_at
   OR (excluded.updated_at = c.updated_at AND excluded.content_hash <> c.content_hash)
"""

INSERT_QUARANTINE = """
INSERT INTO raw.quarantine AS q (source, reason, raw_text, raw_hash, first_run_id, last_run_id,
                                 window_start, window_end)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (source, raw_hash) DO UPDATE
SET last_run_id = excluded.last_run_id, last_seen_at = now(), times_seen = q.times_seen + 1
"""

INSERT_AUDIT = """
INSERT INTO audit.ingest_runs (run_id, source, partition, window_start, window_end, pages, reported, recount,
    fetched, landed, new_versions, duplicates, quarantined, retries, seconds, started_at, finished_at)
VALUES (%(run_id)s, %(source)s, %(partition)s, %(window_start)s, %(window_end)s, %(pages)s, %(reported)s,
    %(recount)s, %(fetched)s, %(landed)s, %(new_versions)s, %(duplicates)s, %(quarantined)s, %(retries)s,
    %(seconds)s, %(started_at)s, now())
ON CONFLICT (run_id, source, partition, window_start) DO UPDATE
SET window_end = excluded.window_end, pages = excluded.pages, reported = excluded.reported,
    recount = excluded.recount, fetched = excluded.fetched, landed = excluded.landed,
    new_versions = excluded.new_versions, duplicates = excluded.duplicates, quarantined = excluded.quarantined,
    retries = excluded.retries, seconds = excluded.seconds, started_at = excluded.started_at,
    finished_at = excluded.finished_at
"""

# The watermark moves over the chain of this run's committed windows that starts at a window's end:
# windows may commit out of order (they load in parallel), and the watermark must never pass a window
# that is not committed. The first window of a pull may create the watermark; a later one only moves it
# when the watermark has reached the window's start (all earlier windows are in).
_CHAIN = """
WITH RECURSIVE chain(e) AS (
    SELECT %(end)s::timestamp
    UNION
    SELECT a.window_end FROM audit.ingest_runs a JOIN chain c ON a.window_start = c.e
    WHERE a.run_id = %(run_id)s AND a.source = %(source)s AND a.partition = %(partition)s
)
"""
ADVANCE_WATERMARK_FIRST = _CHAIN + """
INSERT INTO audit.watermarks AS w (source, partition, watermark, run_id)
SELECT %(source)s, %(partition)s, max(e), %(run_id)s FROM chain
ON CONFLICT (source, partition) DO UPDATE
SET watermark = excluded.watermark, run_id = excluded.run_id, committed_at = now()
WHERE excluded.watermark > w.watermark
"""
ADVANCE_WATERMARK_NEXT = _CHAIN + """
UPDATE audit.watermarks w SET watermark = (SELECT max(e) FROM chain), run_id = %(run_id)s, committed_at = now()
WHERE w.source = %(source)s AND w.partition = %(partition)s AND w.watermark >= %(start)s
  AND w.watermark < (SELECT max(e) FROM chain)
"""


def advance_watermark(cur: psycopg.Cursor, source: str, partition: str, run_id: str, start: datetime,
                      end: datetime, first: bool) -> None:
    """Move ``source``/``partition``'s watermark past the committed window ``[start, end)`` and any of this
    run's committed windows that follow it without a gap (see ``ADVANCE_WATERMARK_*``)."""
    params = {"source": source, "partition": partition, "run_id": run_id, "start": start, "end": end}
    cur.execute(ADVANCE_WATERMARK_FIRST if first else ADVANCE_WATERMARK_NEXT, params)


def catch_up_watermark(conn: psycopg.Connection, source: str, partition: str, run_id: str) -> None:
    """After parallel windows: windows that committed while an earlier one was still running are
    passed over now (their own transactions could not see the earlier window yet)."""
    row = conn.execute("SELECT watermark FROM audit.watermarks WHERE source = %s AND partition = %s",
                       (source, partition)).fetchone()
    if row is not None:
        with conn.transaction(), conn.cursor() as cur:
            advance_watermark(cur, source, partition, run_id, row[0], row[0], first=False)


def read_watermark(conn: psycopg.Connection, source: str, partition: str) -> datetime | None:
    """The committed watermark of ``partition``, else of the unpartitioned pull, else None."""
    rows = conn.execute("SELECT partition, watermark FROM audit.watermarks WHERE source = %s AND partition IN (%s, %s)",
                        (source, partition, ALL_PARTITIONS)).fetchall()
    marks = dict(rows)
    return marks.get(partition, marks.get(ALL_PARTITIONS))


def _versions_line(rec: Landable, run_id: bytes) -> bytes:
    key = rec.key if rec.key.isprintable() and "\\" not in rec.key else copy_text(rec.key)
    return b"%s\t%s\t\\\\x%s\t%s\t%s\t%s\n" % (
        key.encode(), rec.updated_text.encode(), rec.content_hash.hex().encode(), b"t" if rec.is_deleted else b"f",
        copy_json(rec.payload), run_id)


def _resolve_conflict(cur: psycopg.Cursor, item: Landable, run_id: str) -> bool:
    """A record whose (MaHoSo, NgayCapNhat) is already held with other bytes: the same version if the JSON
    is the same (a server that reorders keys), else a new version, inserted here. True if new."""
    for (payload,) in cur.execute("SELECT payload::text FROM raw.dossier_versions WHERE updated_at = %s "
                                  "AND dossier_id = %s", (item.updated_at, item.key)):
        if same_content(item.payload, payload.encode()):
            return False
    cur.execute("INSERT INTO raw.dossier_versions (dossier_id, updated_at, content_hash, is_deleted, payload, run_id)"
                " VALUES (%s, %s, %s, %s, %s::jsonb, %s)",
                (item.key, item.updated_at, item.content_hash, item.is_deleted, item.payload.decode(), run_id))
    return True


def land_dossier_window(conn: psycopg.Connection, client: ProcedureApiClient, run_id: str, partition: str,
                        start: datetime, end: datetime, *, moves_watermark: bool = True,
                        first: bool = True) -> WindowResult:
    """Pull ``GET /dossiers`` for ``[start, end)`` (and ``don_vi=partition``) and land it in one transaction.

    New versions are streamed with COPY straight into ``raw.dossier_versions`` (each payload written and
    parsed once); versions already held are recognised from the window's existing keys and hashes. The
    new versions then update ``raw.dossier_current`` set-based. Memory grows with the window's record
    count (keys and hashes), which ``land_dossiers`` bounds by splitting windows.
    """
    t0 = time.perf_counter()
    started_at = datetime.now().astimezone()
    result = WindowResult(DOSSIERS, partition, start, end)
    params = {"updated_from": format_ts(start), "updated_to": format_ts(end)}
    if partition != ALL_PARTITIONS:
        params["don_vi"] = partition
    stats = Stats()
    rejected: dict[bytes, Rejected] = {}
    reported = None
    run = copy_text(run_id).encode()
    with conn.transaction(), conn.cursor() as cur:
        held: dict[tuple[str, datetime], set[bytes]] = {}
        for updated, key, content_hash in cur.execute(
                "SELECT updated_at, dossier_id, content_hash FROM raw.dossier_versions "
                "WHERE updated_at >= %s AND updated_at < %s", (start, end)):
            held.setdefault((key, updated), set()).add(content_hash)
        seen: set[tuple[str, bytes]] = set()
        keys: set[str] = set()
        conflicts: list[Landable] = []
        with cur.copy("COPY raw.dossier_versions (dossier_id, updated_at, content_hash, is_deleted, payload, run_id)"
                      " FROM STDIN") as copy:
            for page in client.pages(DOSSIERS, params, stats):
                if reported is None:
                    reported = page.total
                lines = []
                for raw in page.records:
                    result.fetched += 1
                    item = DOSSIER_READER.classify(raw)
                    if isinstance(item, Landable) and not start <= item.updated_at < end:
                        item = reject(item.payload, f"NgayCapNhat {item.updated_at} outside the requested window "
                                                    f"[{start}, {end})")
                    if isinstance(item, Rejected):
                        rejected.setdefault(item.raw_hash, item)
                        continue
                    identity = (item.key, item.content_hash)
                    if identity in seen:
                        continue  # the same version twice in one window: a duplicate across pages
                    seen.add(identity)
                    keys.add(item.key)
                    stored = held.get((item.key, item.updated_at))
                    if stored is None:
                        result.new_versions += 1
                        lines.append(_versions_line(item, run))
                    elif item.content_hash not in stored:
                        conflicts.append(item)  # same NgayCapNhat, other bytes: compared after the COPY
                if lines:
                    copy.write(b"".join(lines))
        result.new_versions += sum(_resolve_conflict(cur, item, run_id) for item in conflicts)
        result.pages, result.retries, result.reported = stats.pages, stats.retries, reported or 0
        result.landed = len(keys)
        result.quarantined = len(rejected)
        result.duplicates = result.fetched - result.landed - result.quarantined
        if result.reported != result.landed + result.quarantined:
            result.recount = client.count(DOSSIERS, params)
            if result.recount != result.landed + result.quarantined:
                raise ReconciliationError(
                    f"dossiers {partition} [{start}, {end}): the API reported {result.reported} "
                    f"(now {result.recount}) but {result.landed} landed + {result.quarantined} quarantined")
        cur.execute(UPSERT_CURRENT, {"run_id": run_id, "start": start, "end": end})
        for item in rejected.values():
            cur.execute(INSERT_QUARANTINE, (DOSSIERS, item.reason, item.raw_text, item.raw_hash, run_id, run_id,
                                            start, end))
        result.seconds = round(time.perf_counter() - t0, 3)
        cur.execute(INSERT_AUDIT, {**result.to_dict(), "window_start": start, "window_end": end, "run_id": run_id,
                                   "started_at": started_at})
        if moves_watermark:
            advance_watermark(cur, DOSSIERS, partition, run_id, start, end, first)
    return result


def land_dossiers(conn: psycopg.Connection, client: ProcedureApiClient, run_id: str, partition: str,
                  start: datetime, end: datetime, max_records: int, *, moves_watermark: bool = True,
                  first: bool = True) -> list[WindowResult]:
    """Land ``[start, end)``, halving the window while the API reports more than ``max_records`` in it, so
    memory stays bounded whatever the volume; the halves commit in time order."""
    params = {"updated_from": format_ts(start), "updated_to": format_ts(end)}
    if partition != ALL_PARTITIONS:
        params["don_vi"] = partition
    if end - start > MIN_SPLIT and client.count(DOSSIERS, params) > max_records:
        middle = (start + (end - start) / 2).replace(microsecond=0)
        return (land_dossiers(conn, client, run_id, partition, start, middle, max_records,
                              moves_watermark=moves_watermark, first=first)
                + land_dossiers(conn, client, run_id, partition, middle, end, max_records,
                                moves_watermark=moves_watermark, first=False))
    return [land_dossier_window(conn, client, run_id, partition, start, end, moves_watermark=moves_watermark,
                                first=first)]


def refresh_reference_source(conn: psycopg.Connection, client: ProcedureApiClient, run_id: str, source: str,
                             as_of: datetime) -> dict:
    """Full refresh of one reference list: a changed record closes its previous version and opens a new
    one; a record no longer served is closed. One transaction; reconciled like a dossier window."""
    t0 = time.perf_counter()
    started_at = datetime.now().astimezone()
    reader = RecordReader(REFERENCE_KEYS[source], canonical=True)
    stats = Stats()
    rejected: dict[bytes, Rejected] = {}
    fetched, reported = 0, None
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE IF NOT EXISTS reference_batch (seq bigint, record_key text, content_hash bytea,"
                    " payload text) ON COMMIT DELETE ROWS")
        cur.execute("TRUNCATE reference_batch")
        with cur.copy("COPY reference_batch FROM STDIN") as copy:
            seq = 0
            for page in client.pages(source, {}, stats):
                reported = page.total if reported is None else reported
                for record in page.records:
                    fetched += 1
                    item = reader.classify(record)
                    if isinstance(item, Rejected):
                        rejected.setdefault(item.raw_hash, item)
                        continue
                    seq += 1
                    copy.write(b"%d\t%s\t\\\\x%s\t%s\n" % (seq, copy_text(item.key).encode(),
                                                            item.content_hash.hex().encode(), copy_json(item.payload)))
        landed = cur.execute("SELECT count(DISTINCT record_key) FROM reference_batch").fetchone()[0]
        if (reported or 0) != landed + len(rejected):
            raise ReconciliationError(f"{source}: the API reported {reported} but {landed} landed + "
                                      f"{len(rejected)} quarantined")
        # The last occurrence of a key in the list is its current content.
        cur.execute("CREATE TEMP TABLE IF NOT EXISTS reference_latest ON COMMIT DROP AS "
                    "SELECT DISTINCT ON (record_key) record_key, content_hash, payload FROM reference_batch "
                    "ORDER BY record_key, seq DESC")
        closed = cur.execute(
            "UPDATE raw.reference_versions rv SET valid_to = now() WHERE rv.source = %s AND rv.valid_to IS NULL "
            "AND NOT EXISTS (SELECT 1 FROM reference_latest l WHERE l.record_key = rv.record_key "
            "AND l.content_hash = rv.content_hash)", (source,)).rowcount
        new_versions = cur.execute(
            "INSERT INTO raw.reference_versions (source, record_key, content_hash, payload, first_run_id, valid_from) "
            "SELECT %s, l.record_key, l.content_hash, l.payload::jsonb, %s, now() FROM reference_latest l "
            "WHERE NOT EXISTS (SELECT 1 FROM raw.reference_versions rv WHERE rv.source = %s "
            "AND rv.record_key = l.record_key AND rv.valid_to IS NULL)", (source, run_id, source)).rowcount
        for item in rejected.values():
            cur.execute(INSERT_QUARANTINE, (source, item.reason, item.raw_text, item.raw_hash, run_id, run_id,
                                            None, None))
        seconds = round(time.perf_counter() - t0, 3)
        cur.execute(INSERT_AUDIT, {
            "run_id": run_id, "source": source, "partition": ALL_PARTITIONS, "window_start": as_of,
            "window_end": as_of, "pages": stats.pages, "reported": reported or 0, "recount": None,
            "fetched": fetched, "landed": landed, "new_versions": new_versions,
            "duplicates": fetched - landed - len(rejected), "quarantined": len(rejected), "retries": stats.retries,
            "seconds": seconds, "started_at": started_at})
    return {"fetched": fetched, "landed": landed, "new_versions": new_versions, "closed": closed,
            "quarantined": len(rejected), "retries": stats.retries, "seconds": seconds}
