"""Land API records in ``raw``: dossier windows (incremental) and reference lists (full refresh).

The bulk path is COPY: new versions straight into ``raw.dossier_versions``, then set-based SQL for the
current-state pointers (``raw.dossier_current``), the reconciliation row (``audit.ingest_runs``) and the
watermark — all in one transaction per window, so a run killed midway leaves no partial window and the
rerun starts where the last committed window ended.

What a window does when the source misbehaves (the night always goes on):

- a record that cannot be landed (not an object, no key, no ``NgayCapNhat``, outside the window, or
  something ``jsonb`` cannot store: ``ingestion.records``) goes to ``raw.quarantine`` with the reason and
  its bytes, and the rest of the window commits. Anything PostgreSQL still refuses in the COPY (found by
  nothing in ``ingestion.records``) rolls the window back once and makes it load again *carefully*: page
  by page under savepoints, bisecting a refused page down to its refused records, which are quarantined
  with the database's own reason. A clean window never pays for this;
- a page the client gives up on (``PageUnavailable``) or a listing that breaks the contract
  (``ProtocolError``): what was read before it commits, the page's request and bytes go to
  ``raw.quarantined_pages``, the window is recorded ``incomplete`` and opened in ``audit.window_issues``,
  which every later night (and ``python -m ingestion repull``) pulls again first until it completes;
- a count that does not reconcile: the window commits, recorded ``mismatch`` and opened the same way; the
  critical check BAT04 keeps the marts from being rebuilt on it.

Reconciliation, per window: ``fetched = landed + duplicates + quarantined`` (landed counts distinct
keys; duplicates are repeats of a key within the window; quarantined counts every bad record, identical
texts included) and ``landed + distinct bad texts ≤ reported ≤ landed + quarantined``, where ``reported``
is the API's total at the first page: identical bad texts may be several records or one record repeated
across pages, which the client cannot tell apart. A record updated while paging can legitimately move out
of the window; then a fresh count (``recount``) must reconcile instead.
"""

from __future__ import annotations

import logging
import queue
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import psycopg

from ingestion.client import ApiError, PageUnavailable, ProcedureApiClient, ProtocolError, Stats, format_ts
from ingestion.records import (
    MAX_KEY_BYTES,
    Landable,
    RecordReader,
    Rejected,
    copy_json,
    copy_text,
    reject,
    same_content,
)

log = logging.getLogger(__name__)

DOSSIERS = "dossiers"
REFERENCE_KEYS = {"units": "MaDonVi", "procedures": "MaTTHC", "delegations": "MaUyQuyen"}
ALL_PARTITIONS = "*"
DOSSIER_READER = RecordReader("MaHoSo", "NgayCapNhat")
MIN_SPLIT = timedelta(minutes=10)  # windows are not split finer than this
COMPLETE, INCOMPLETE, MISMATCH, REFUSED = "complete", "incomplete", "mismatch", "refused"
# SQLSTATE classes of a record the database refuses (22 data exception, 54 program limit exceeded — e.g. an
# index row too large or nesting too deep): the window is loaded again carefully to find the record.
REFUSED_RECORD_CLASSES = ("22", "54")


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
    quarantined_distinct: int = 0
    retries: int = 0
    seconds: float = 0.0
    status: str = COMPLETE
    detail: str | None = None
    careful: bool = False  # loaded page by page after the database refused a record in the bulk COPY

    def to_dict(self) -> dict:
        d = asdict(self)
        d["window_start"], d["window_end"] = self.window_start.isoformat(), self.window_end.isoformat()
        return d


def reconciles(reported: int | None, landed: int, quarantined: int, distinct: int) -> bool:
    """Whether the API's count agrees with what was landed and quarantined (see the module docstring)."""
    return reported is not None and landed + distinct <= reported <= landed + quarantined


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
                                 window_start, window_end, raw_bytes, record_key, updated_at, disposition,
                                 times_seen, times_seen_last_run)
VALUES (%(source)s, %(reason)s, %(raw_text)s, %(raw_hash)s, %(run_id)s, %(run_id)s, %(start)s, %(end)s,
        %(raw_bytes)s, %(key)s, %(updated_at)s, %(disposition)s, %(times)s, %(times)s)
ON CONFLICT (source, raw_hash) DO UPDATE
SET last_run_id = excluded.last_run_id, last_seen_at = now(), times_seen = q.times_seen + excluded.times_seen,
    times_seen_last_run = excluded.times_seen
        + CASE WHEN q.last_run_id = excluded.last_run_id THEN q.times_seen_last_run ELSE 0 END,
    reason = excluded.reason, disposition = excluded.disposition
"""

INSERT_AUDIT = """
INSERT INTO audit.ingest_runs (run_id, source, partition, window_start, window_end, pages, reported, recount,
    fetched, landed, new_versions, duplicates, quarantined, quarantined_distinct, retries, seconds, started_at,
    finished_at, status, detail)
VALUES (%(run_id)s, %(source)s, %(partition)s, %(window_start)s, %(window_end)s, %(pages)s, %(reported)s,
    %(recount)s, %(fetched)s, %(landed)s, %(new_versions)s, %(duplicates)s, %(quarantined)s,
    %(quarantined_distinct)s, %(retries)s, %(seconds)s, %(started_at)s, now(), %(status)s, %(detail)s)
ON CONFLICT (run_id, source, partition, window_start) DO UPDATE
SET window_end = excluded.window_end, pages = excluded.pages, reported = excluded.reported,
    recount = excluded.recount, fetched = excluded.fetched, landed = excluded.landed,
    new_versions = excluded.new_versions, duplicates = excluded.duplicates, quarantined = excluded.quarantined,
    quarantined_distinct = excluded.quarantined_distinct, retries = excluded.retries, seconds = excluded.seconds,
    started_at = excluded.started_at, finished_at = excluded.finished_at, status = excluded.status,
    detail = excluded.detail
"""

INSERT_PAGE = """
INSERT INTO raw.quarantined_pages (run_id, source, partition, window_start, window_end, request, page_number,
                                   http_status, attempts, reason, body, body_bytes)
VALUES (%(run_id)s, %(source)s, %(partition)s, %(start)s, %(end)s, %(request)s, %(page_number)s, %(status)s,
        %(attempts)s, %(reason)s, %(body)s, %(body_bytes)s)
RETURNING page_id
"""

OPEN_ISSUE = """
INSERT INTO audit.window_issues AS w (source, partition, window_start, window_end, kind, reason, request,
                                      page_id, first_run_id, last_run_id)
VALUES (%(source)s, %(partition)s, %(start)s, %(end)s, %(kind)s, %(reason)s, %(request)s, %(page_id)s,
        %(run_id)s, %(run_id)s)
ON CONFLICT (source, partition, window_start, window_end) WHERE resolved_at IS NULL DO UPDATE
SET kind = excluded.kind, reason = excluded.reason, request = excluded.request,
    page_id = coalesce(excluded.page_id, w.page_id), last_run_id = excluded.last_run_id,
    attempts = w.attempts + 1, last_attempt_at = now()
"""

# The watermark moves over the chain of this run's committed windows that starts at a window's end:
# windows may commit out of order (they load in parallel), and the watermark must never pass a window
# that is not committed. The first window of a pull may create the watermark; a later one only moves it
# when the watermark has reached the window's start (all earlier windows are in). A window that did not
# complete still moves it: what it missed is in audit.window_issues, pulled again by the next nights.
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


# Binary COPY (PostgreSQL's own format): nothing to escape on either side, and the server does not scan each
# ~2.4 KB payload for delimiters and escapes — a sixth less of the backend's time a row, most of which is
# parsing the payload into jsonb. The payload goes as the jsonb type's binary form: version 1, then the text.
COPY_VERSIONS = ("COPY raw.dossier_versions (dossier_id, updated_at, content_hash, is_deleted, payload, run_id)"
                 " FROM STDIN (FORMAT BINARY)")
COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, length of the header extension
COPY_TRAILER = b"\xff\xff"
PG_EPOCH = datetime(2000, 1, 1)  # timestamps travel as microseconds since then
_MICROSECOND = timedelta(microseconds=1)
_ROW_START = struct.Struct("!hi")  # field count, length of the key
_ROW_MIDDLE = struct.Struct("!iqi")  # length 8, updated_at, length of the hash
_ROW_FLAG = struct.Struct("!i?i")  # length 1, is_deleted, length of the payload (+1 for the jsonb version)


def copy_field(value: bytes) -> bytes:
    """A field of binary COPY: its length, then its bytes."""
    return struct.pack("!i", len(value)) + value


def _versions_row(rec: Landable, run_field: bytes) -> bytes:
    """One row of the binary COPY into ``raw.dossier_versions`` (``run_field``: ``copy_field(run_id)``)."""
    key = rec.key.encode()
    return b"".join((_ROW_START.pack(6, len(key)), key,
                     _ROW_MIDDLE.pack(8, (rec.updated_at - PG_EPOCH) // _MICROSECOND, len(rec.content_hash)),
                     rec.content_hash, _ROW_FLAG.pack(1, rec.is_deleted, len(rec.payload) + 1), b"\x01",
                     rec.payload, run_field))


class _CopyWriter:
    """Writes one COPY's data from a thread of its own, so the window's thread classifies the next page while
    the server parses this one (the writing thread waits on the socket without holding the GIL). At most
    ``depth`` pages wait in between, so memory stays flat. Used only while the COPY is open: nothing else is
    sent on the connection meanwhile."""

    def __init__(self, copy: psycopg.Copy, depth: int = 2):
        self._copy = copy
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="copy-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while (data := self._queue.get()) is not None:
                self._copy.write(data)
        except BaseException as exc:  # handed to the window's thread at its next write or at close
            self._error = exc
            while self._queue.get() is not None:  # keep taking, so the producer never blocks
                pass

    def write(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(data)

    def close(self, quiet: bool = False) -> None:
        """Wait until everything queued is written; raise what writing raised (unless ``quiet``: the window is
        failing already)."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None and not quiet:
            raise self._error


def database_reason(exc: psycopg.Error) -> str:
    """PostgreSQL's own reason for refusing something: its primary message, without the CONTEXT lines
    (which quote the record)."""
    diag = getattr(exc, "diag", None)
    message = getattr(diag, "message_primary", None) or str(exc).splitlines()[0]
    return f"{message} (SQLSTATE {exc.sqlstate})" if getattr(exc, "sqlstate", None) else message


def _refused_record(exc: BaseException) -> bool:
    return isinstance(exc, psycopg.Error) and (exc.sqlstate or "")[:2] in REFUSED_RECORD_CLASSES


class _Quarantine:
    """The bad records of one window or list: each distinct text once, with how often it came."""

    def __init__(self) -> None:
        self.items: dict[bytes, Rejected] = {}
        self.times: Counter[bytes] = Counter()
        self.dispositions: dict[bytes, str] = {}

    def add(self, item: Rejected, disposition: str = "rejected") -> None:
        self.items.setdefault(item.raw_hash, item)
        self.times[item.raw_hash] += 1
        self.dispositions[item.raw_hash] = disposition

    def rejected_count(self) -> tuple[int, int]:
        """(occurrences, distinct texts) of the records that were not landed."""
        hashes = [h for h, d in self.dispositions.items() if d == "rejected"]
        return sum(self.times[h] for h in hashes), len(hashes)

    def store(self, cur: psycopg.Cursor, source: str, run_id: str, start: datetime | None,
              end: datetime | None) -> None:
        for raw_hash, item in self.items.items():
            cur.execute(INSERT_QUARANTINE, {
                "source": source, "reason": item.reason, "raw_text": item.raw_text, "raw_hash": raw_hash,
                "run_id": run_id, "start": start, "end": end, "raw_bytes": item.raw_bytes, "key": item.key,
                "updated_at": item.updated_at, "disposition": self.dispositions[raw_hash],
                "times": self.times[raw_hash]})


def quarantine_page(cur: psycopg.Cursor, exc: PageUnavailable | ProtocolError, run_id: str, source: str,
                    partition: str, start: datetime | None, end: datetime | None, page_number: int) -> int:
    """Keep the request and bytes of a page the client could not use; returns its ``page_id``."""
    body = getattr(exc, "body", None)
    return cur.execute(INSERT_PAGE, {
        "run_id": run_id, "source": source, "partition": partition, "start": start, "end": end,
        "request": exc.request, "page_number": page_number, "status": getattr(exc, "status", None),
        "attempts": getattr(exc, "attempts", 1), "reason": str(exc)[:2000], "body": body,
        "body_bytes": None if body is None else len(body)}).fetchone()[0]


class _WindowLoad:
    """The bookkeeping of one window's load: what is held, seen, landed, quarantined."""

    def __init__(self, cur: psycopg.Cursor, start: datetime, end: datetime, run_id: str,
                 reader: RecordReader = DOSSIER_READER):
        self.cur, self.start, self.end, self.reader = cur, start, end, reader
        self.run = copy_field(run_id.encode())
        self.held: dict[tuple[str, datetime], set[bytes]] = {}
        for updated, key, content_hash in cur.execute(
                "SELECT updated_at, dossier_id, content_hash FROM raw.dossier_versions "
                "WHERE updated_at >= %s AND updated_at < %s", (start, end)):
            self.held.setdefault((key, updated), set()).add(content_hash)
        self.seen: set[bytes] = set()  # content hash + key of each version taken (bytes: no work for the GC)
        self.keys: Counter[str] = Counter()  # versions landed (or held) per key
        self.conflicts: list[Landable] = []
        self.undated: list[Landable] = []  # tombstones without a readable NgayCapNhat, dated after the COPY
        self.quarantine = _Quarantine()
        self.new_versions = 0
        self.fetched = 0

    def take(self, raw, suspect: bool) -> Landable | None:
        """Classify one received record; returns it when it is a new version."""
        self.fetched += 1
        item = self.reader.classify(raw, suspect)
        if isinstance(item, Rejected):
            self.quarantine.add(item)
            return None
        if item.original is not None:
            self.quarantine.add(item.original, "landed as a tombstone")
        if item.updated_at is None:
            # Dated once the COPY is done: that needs a look at the dossier's current state, and no query can
            # run on the connection while the COPY streams.
            self.undated.append(item)
            return None
        if not self.start <= item.updated_at < self.end:
            self.quarantine.add(reject(item.payload, f"outside the requested window: NgayCapNhat {item.updated_at} "
                                                     f"not in [{self.start}, {self.end})", item.key, item.updated_at))
            return None
        return self._admit(item)

    def _admit(self, item: Landable) -> Landable | None:
        """De-duplicate a landable record against the window's records and the versions already held."""
        identity = item.content_hash + item.key.encode()
        if identity in self.seen:
            return None  # the same version twice in one window: a duplicate across pages
        self.seen.add(identity)
        self.keys[item.key] += 1
        stored = self.held.get((item.key, item.updated_at))
        if stored is None:
            self.new_versions += 1
            return item
        if item.content_hash not in stored:
            self.conflicts.append(item)  # same NgayCapNhat, other bytes: compared after the COPY
        return None

    def date_tombstones(self) -> list[Landable]:
        """The window's tombstones whose NgayCapNhat cannot be read, dated one second before the window's end
        (the server put them in this window); one whose dossier is already deleted adds nothing. Returns the
        new versions among them, to be copied."""
        if not self.undated:
            return []
        deleted = {key for (key,) in self.cur.execute(
            "SELECT dossier_id FROM raw.dossier_current WHERE dossier_id = ANY(%s) AND is_deleted",
            (list({item.key for item in self.undated}),))}
        when = self.end - timedelta(seconds=1)
        new = []
        for item in self.undated:
            if item.key in deleted:
                self.keys[item.key] += 1
                continue
            dated = Landable(item.key, when, f"{when:%Y%m%dT%H%M%S}", True, item.content_hash, item.payload)
            if self._admit(dated) is not None:
                new.append(dated)
        return new

    def refused(self, item: Landable, reason: str) -> None:
        """The database refused a new version: undo its bookkeeping and quarantine it."""
        self.new_versions -= 1
        self.seen.discard(item.content_hash + item.key.encode())
        self.keys[item.key] -= 1
        if self.keys[item.key] <= 0:
            del self.keys[item.key]
        self.quarantine.add(reject(item.payload, f"PostgreSQL refused it: {reason}", item.key, item.updated_at))

    def rows(self, items: list[Landable]) -> bytes:
        """The binary COPY rows of new versions."""
        run = self.run
        return b"".join([_versions_row(item, run) for item in items])

    def copy(self, items: list[Landable]) -> None:
        """COPY new versions in one statement (the few found after the window's COPY)."""
        if items:
            with self.cur.copy(COPY_VERSIONS) as copy:
                copy.write(COPY_SIGNATURE + self.rows(items) + COPY_TRAILER)

    def copy_carefully(self, items: list[Landable]) -> None:
        """COPY one page's new versions under a savepoint; on a refusal, bisect to the refused records."""
        if not items:
            return
        try:
            with self.cur.connection.transaction():
                self.copy(items)
        except psycopg.Error as exc:
            if not _refused_record(exc):
                raise
            if len(items) == 1:
                self.refused(items[0], database_reason(exc))
                return
            middle = len(items) // 2
            self.copy_carefully(items[:middle])
            self.copy_carefully(items[middle:])

    def resolve_conflicts(self, run_id: str) -> None:
        """Records whose (MaHoSo, NgayCapNhat) is already held with other bytes: the same version if the JSON
        is the same (a server that reorders keys), else a new version, inserted here."""
        for item in self.conflicts:
            payloads = [p for (p,) in self.cur.execute(
                "SELECT payload::text FROM raw.dossier_versions WHERE updated_at = %s AND dossier_id = %s",
                (item.updated_at, item.key))]
            if any(same_content(item.payload, p.encode()) for p in payloads):
                continue
            try:
                with self.cur.connection.transaction():
                    self.cur.execute("INSERT INTO raw.dossier_versions (dossier_id, updated_at, content_hash, "
                                     "is_deleted, payload, run_id) VALUES (%s, %s, %s, %s, %s::jsonb, %s)",
                                     (item.key, item.updated_at, item.content_hash, item.is_deleted,
                                      item.payload.decode(), run_id))
                self.new_versions += 1
            except psycopg.Error as exc:
                if not _refused_record(exc):
                    raise
                self.new_versions += 1  # refused() takes it back
                self.refused(item, database_reason(exc))


def land_dossier_window(conn: psycopg.Connection, client: ProcedureApiClient, run_id: str, partition: str,
                        start: datetime, end: datetime, *, moves_watermark: bool = True, first: bool = True,
                        careful: bool = False, reader: RecordReader = DOSSIER_READER) -> WindowResult:
    """Pull ``GET /dossiers`` for ``[start, end)`` (and ``don_vi=partition``) and land it in one transaction.

    New versions are streamed with COPY straight into ``raw.dossier_versions`` (each payload written and
    parsed once); versions already held are recognised from the window's existing keys and hashes. The
    new versions then update ``raw.dossier_current`` set-based. Memory grows with the window's record
    count (keys and hashes), which ``land_dossiers`` bounds by splitting windows.

    The bulk load leaves it to the database to refuse what ``jsonb`` cannot store (pages are not scanned for
    it: the scan would cost a third of the client's time a record, and PostgreSQL checks every byte anyway).
    A refusal rolls the window back and loads it again ``careful``-ly: every page scanned
    (``records.page_hazards``), suspect records examined and quarantined with the reason found, each page
    copied under a savepoint and bisected down to anything the database still refuses.
    """
    try:
        return _land_window(conn, client, run_id, partition, start, end, moves_watermark, first, careful, reader)
    except psycopg.Error as exc:
        if careful or not _refused_record(exc):
            raise
        log.warning("dossiers %s [%s, %s): the database refused a record in the bulk COPY (%s); loading the "
                    "window again page by page to find it", partition, start, end, database_reason(exc))
        return _land_window(conn, client, run_id, partition, start, end, moves_watermark, first, True, reader)


def _land_window(conn: psycopg.Connection, client: ProcedureApiClient, run_id: str, partition: str,
                 start: datetime, end: datetime, moves_watermark: bool, first: bool, careful: bool,
                 reader: RecordReader) -> WindowResult:
    t0 = time.perf_counter()
    started_at = datetime.now().astimezone()
    result = WindowResult(DOSSIERS, partition, start, end, careful=careful)
    params = {"updated_from": format_ts(start), "updated_to": format_ts(end)}
    if partition != ALL_PARTITIONS:
        params["don_vi"] = partition
    stats = Stats()
    reported = None
    failure: PageUnavailable | ProtocolError | None = None
    with conn.transaction(), conn.cursor() as cur:
        load = _WindowLoad(cur, start, end, run_id, reader)

        def pages():
            nonlocal reported, failure
            try:
                for page in client.pages(DOSSIERS, params, stats, inspect=careful):
                    if reported is None:
                        reported = page.total
                    yield page
            except (PageUnavailable, ProtocolError) as exc:
                failure = exc

        if careful:
            for page in pages():
                load.copy_carefully([new for raw in page.records
                                     if (new := load.take(raw, page.suspect)) is not None])
            load.copy_carefully(load.date_tombstones())
        else:
            take, row, run = load.take, _versions_row, load.run
            with cur.copy(COPY_VERSIONS) as copy:
                writer = _CopyWriter(copy)
                try:
                    writer.write(COPY_SIGNATURE)
                    for page in pages():
                        suspect = page.suspect
                        # Each record becomes its COPY row at once: nothing but bytes outlives the page.
                        data = b"".join([row(new, run) for raw in page.records
                                         if (new := take(raw, suspect)) is not None])
                        if data:
                            writer.write(data)
                    writer.write(COPY_TRAILER)
                except BaseException:
                    writer.close(quiet=True)
                    raise
                writer.close()
            load.copy(load.date_tombstones())
        load.resolve_conflicts(run_id)
        result.pages, result.retries, result.reported = stats.pages, stats.retries, reported or 0
        result.fetched, result.new_versions = load.fetched, load.new_versions
        result.landed = len(load.keys)
        result.quarantined, result.quarantined_distinct = load.quarantine.rejected_count()
        result.duplicates = result.fetched - result.landed - result.quarantined
        issue: dict | None = None
        if failure is not None:
            page_id = quarantine_page(cur, failure, run_id, DOSSIERS, partition, start, end, stats.pages + 1)
            result.status, result.detail = INCOMPLETE, str(failure)[:2000]
            issue = {"kind": INCOMPLETE, "reason": result.detail, "request": failure.request, "page_id": page_id}
        elif not reconciles(reported, result.landed, result.quarantined, result.quarantined_distinct):
            try:
                result.recount = client.count(DOSSIERS, params)
            except (PageUnavailable, ProtocolError) as exc:
                result.detail = f"the recount failed: {exc}"[:2000]
            if not reconciles(result.recount, result.landed, result.quarantined, result.quarantined_distinct):
                result.status = MISMATCH
                result.detail = (f"dossiers {partition} [{start}, {end}): the API reported {result.reported}"
                                 f" (now {result.recount}) but {result.landed} landed + {result.quarantined} "
                                 f"quarantined ({result.quarantined_distinct} distinct)"
                                 + (f"; {result.detail}" if result.detail else ""))
                issue = {"kind": MISMATCH, "reason": result.detail, "request": None, "page_id": None}
        cur.execute(UPSERT_CURRENT, {"run_id": run_id, "start": start, "end": end})
        load.quarantine.store(cur, DOSSIERS, run_id, start, end)
        if issue is not None:
            cur.execute(OPEN_ISSUE, {"source": DOSSIERS, "partition": partition, "start": start, "end": end,
                                     "run_id": run_id, **issue})
            log.warning("dossiers %s [%s, %s) %s: %s", partition, start, end, result.status, result.detail)
        result.seconds = round(time.perf_counter() - t0, 3)
        cur.execute(INSERT_AUDIT, {**result.to_dict(), "window_start": start, "window_end": end, "run_id": run_id,
                                   "started_at": started_at})
        if moves_watermark:
            advance_watermark(cur, DOSSIERS, partition, run_id, start, end, first)
    return result


def split_window(client: ProcedureApiClient, partition: str, start: datetime, end: datetime,
                 max_records: int) -> Iterator[tuple[datetime, datetime]]:
    """``[start, end)`` in time order, halved while the API reports more than ``max_records`` in a part (not
    below ``MIN_SPLIT``), so memory per window stays bounded whatever the volume. Lazy: a part is counted
    when the one before it has been taken. When even the count cannot be had, the part is taken whole (and
    recorded incomplete if its pages cannot be had either)."""
    params = {"updated_from": format_ts(start), "updated_to": format_ts(end)}
    if partition != ALL_PARTITIONS:
        params["don_vi"] = partition
    try:
        too_big = end - start > MIN_SPLIT and client.count(DOSSIERS, params) > max_records
    except (PageUnavailable, ProtocolError) as exc:
        log.warning("dossiers %s [%s, %s): the count failed (%s); pulling the window whole", partition, start,
                    end, exc)
        too_big = False
    if too_big:
        middle = (start + (end - start) / 2).replace(microsecond=0)
        yield from split_window(client, partition, start, middle, max_records)
        yield from split_window(client, partition, middle, end, max_records)
    else:
        yield start, end


def land_dossiers(conn: psycopg.Connection, client: ProcedureApiClient, run_id: str, partition: str,
                  start: datetime, end: datetime, max_records: int, *, moves_watermark: bool = True,
                  first: bool = True, reader: RecordReader = DOSSIER_READER) -> list[WindowResult]:
    """Land ``[start, end)`` one window after the other, in time order (``split_window``)."""
    return [land_dossier_window(conn, client, run_id, partition, part_start, part_end,
                                moves_watermark=moves_watermark, first=first and i == 0, reader=reader)
            for i, (part_start, part_end) in enumerate(split_window(client, partition, start, end, max_records))]


def open_issues(conn: psycopg.Connection, source: str, partition: str) -> list[tuple[int, datetime, datetime]]:
    """The open window issues of ``source``/``partition``: (issue id, start, end), oldest first."""
    return conn.execute("SELECT issue_id, window_start, window_end FROM audit.window_issues WHERE source = %s "
                        "AND partition = %s AND resolved_at IS NULL ORDER BY window_start, issue_id",
                        (source, partition)).fetchall()


def resolve_issue(conn: psycopg.Connection, issue_id: int, run_id: str) -> None:
    """Close a window issue: a pull of its whole range completed and reconciled."""
    conn.execute("UPDATE audit.window_issues SET resolved_at = now(), resolved_run_id = %s, last_run_id = %s, "
                 "last_attempt_at = now() WHERE issue_id = %s AND resolved_at IS NULL", (run_id, run_id, issue_id))


# --- reference lists -------------------------------------------------------------------------------------

# The database's verdict on each landed text before it is cast (a list is a few hundred records, so a
# per-record check costs nothing and a record PostgreSQL refuses is quarantined instead of failing the list).
JSONB_PROBLEM = """
CREATE OR REPLACE FUNCTION pg_temp.jsonb_problem(value text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM value::jsonb;
    RETURN NULL;
EXCEPTION WHEN others THEN
    RETURN SQLERRM || ' (SQLSTATE ' || SQLSTATE || ')';
END
$$
"""


@dataclass(frozen=True)
class ReferencePolicy:
    """When a reference list is refused (yesterday's versions then stay current): it came back empty while
    records are current, or more than ``max_missing_share`` of the current records are missing from it —
    unless the source is in ``accept`` (a deliberate large change, ``REFERENCE_ACCEPT_CHANGES``)."""

    max_missing_share: float = 0.2
    accept: frozenset[str] = frozenset()


def refresh_reference_source(conn: psycopg.Connection, client: ProcedureApiClient, run_id: str, source: str,
                             as_of: datetime, policy: ReferencePolicy | None = None,
                             max_key_bytes: int = MAX_KEY_BYTES) -> dict:
    """Full refresh of one reference list: a changed record closes its previous version and opens a new
    one; a record no longer served is closed. One transaction; reconciled like a dossier window.

    A list that cannot be had (``PageUnavailable``, ``ProtocolError``) or is refused by ``policy`` changes
    nothing current: the night goes on with yesterday's versions, and ``audit.ingest_runs`` says why
    (status ``incomplete`` or ``refused``; a refused list is kept whole in ``raw.quarantine``)."""
    policy = policy or ReferencePolicy()
    t0 = time.perf_counter()
    started_at = datetime.now().astimezone()
    reader = RecordReader(REFERENCE_KEYS[source], canonical=True, max_key_bytes=max_key_bytes)
    stats = Stats()
    quarantine = _Quarantine()
    fetched, reported, status, detail = 0, None, COMPLETE, None
    received: list[bytes] = []
    new_versions = closed = landed = 0
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE IF NOT EXISTS reference_batch (seq bigint, record_key text, content_hash bytea,"
                    " payload text, raw_bytes bytea) ON COMMIT DELETE ROWS")
        cur.execute("TRUNCATE reference_batch")
        try:
            with cur.copy("COPY reference_batch FROM STDIN") as copy:
                seq = 0
                for page in client.pages(source, {}, stats):
                    reported = page.total if reported is None else reported
                    for record in page.records:
                        fetched += 1
                        data = bytes(record)
                        received.append(data)
                        item = reader.classify(data, page.suspect)
                        if isinstance(item, Rejected):
                            quarantine.add(item)
                            continue
                        seq += 1
                        copy.write(b"%d\t%s\t\\\\x%s\t%s\t\\\\x%s\n" % (
                            seq, copy_text(item.key).encode(), item.content_hash.hex().encode(),
                            copy_json(item.payload), data.hex().encode()))
        except (PageUnavailable, ProtocolError) as exc:
            quarantine_page(cur, exc, run_id, source, ALL_PARTITIONS, None, None, stats.pages + 1)
            status = INCOMPLETE
            detail = f"{source}: the list could not be read, yesterday's versions stay current: {exc}"
        except psycopg.Error as exc:
            if not _refused_record(exc):
                raise
            raise ApiError(f"{source}: the database refused the list's text ({database_reason(exc)})") from exc
        if status == COMPLETE:
            cur.execute(JSONB_PROBLEM)
            for key, data, problem in cur.execute(
                    "SELECT record_key, raw_bytes, pg_temp.jsonb_problem(payload) AS problem FROM reference_batch"
                    ).fetchall():
                if problem is not None:
                    quarantine.add(reject(bytes(data), f"PostgreSQL refused it: {problem}", key))
            cur.execute("DELETE FROM reference_batch WHERE pg_temp.jsonb_problem(payload) IS NOT NULL")
            landed = cur.execute("SELECT count(DISTINCT record_key) FROM reference_batch").fetchone()[0]
            rejected, distinct = quarantine.rejected_count()
            if not reconciles(reported or 0, landed, rejected, distinct):
                status = MISMATCH
                detail = (f"{source}: the API reported {reported} but {landed} landed + {rejected} quarantined; "
                          "yesterday's versions stay current")
        if status == COMPLETE:
            current, missing = cur.execute(
                "SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM reference_batch b "
                "WHERE b.record_key = rv.record_key)) FROM raw.reference_versions rv "
                "WHERE rv.source = %s AND rv.valid_to IS NULL", (source,)).fetchone()
            refusal = None
            if current and landed == 0:
                refusal = f"{source}: the API returned an empty list while {current} records are current"
            elif current and missing / current > policy.max_missing_share:
                refusal = (f"{source}: {missing} of the {current} current records ({missing / current:.0%}) are "
                           f"missing from the list, more than the {policy.max_missing_share:.0%} allowed")
            if refusal and source in policy.accept:
                log.warning("%s; accepted (REFERENCE_ACCEPT_CHANGES)", refusal)
                detail = f"{refusal}; accepted as a deliberate change"
            elif refusal:
                status = REFUSED
                detail = (f"{refusal}; refused: yesterday's versions stay current (set REFERENCE_ACCEPT_CHANGES="
                          f"{source} for a deliberate change)")
                whole = b"[" + b",".join(received) + b"]"
                quarantine.add(reject(whole, detail), "list refused")
        if status == COMPLETE:
            # The last occurrence of a key in the list is its current content.
            cur.execute("CREATE TEMP TABLE IF NOT EXISTS reference_latest ON COMMIT DROP AS "
                        "SELECT DISTINCT ON (record_key) record_key, content_hash, payload FROM reference_batch "
                        "ORDER BY record_key, seq DESC")
            closed = cur.execute(
                "UPDATE raw.reference_versions rv SET valid_to = now() WHERE rv.source = %s AND rv.valid_to IS NULL "
                "AND NOT EXISTS (SELECT 1 FROM reference_latest l WHERE l.record_key = rv.record_key "
                "AND l.content_hash = rv.content_hash)", (source,)).rowcount
            new_versions = cur.execute(
                "INSERT INTO raw.reference_versions (source, record_key, content_hash, payload, first_run_id, "
                "valid_from) SELECT %s, l.record_key, l.content_hash, l.payload::jsonb, %s, now() "
                "FROM reference_latest l WHERE NOT EXISTS (SELECT 1 FROM raw.reference_versions rv "
                "WHERE rv.source = %s AND rv.record_key = l.record_key AND rv.valid_to IS NULL)",
                (source, run_id, source)).rowcount
        quarantine.store(cur, source, run_id, None, None)
        rejected, distinct = quarantine.rejected_count()
        seconds = round(time.perf_counter() - t0, 3)
        cur.execute(INSERT_AUDIT, {
            "run_id": run_id, "source": source, "partition": ALL_PARTITIONS, "window_start": as_of,
            "window_end": as_of, "pages": stats.pages, "reported": reported or 0, "recount": None,
            "fetched": fetched, "landed": landed, "new_versions": new_versions,
            "duplicates": max(0, fetched - landed - rejected), "quarantined": rejected,
            "quarantined_distinct": distinct, "retries": stats.retries, "seconds": seconds,
            "started_at": started_at, "status": status, "detail": detail})
    if status != COMPLETE:
        log.warning("%s", detail)
    return {"fetched": fetched, "landed": landed, "new_versions": new_versions, "closed": closed,
            "quarantined": rejected, "retries": stats.retries, "seconds": seconds, "status": status,
            "detail": detail}
