"""Client of the procedure-system API contract (``../shared/spec/procedure-api.md``).

Works against any server that follows the contract, and survives servers that do not:

- **Transient failures** (the contract's table: 429 honouring ``Retry-After``, 5xx, timeouts, connection
  errors, a body that no parser can read or is cut short) are retried with exponential backoff and jitter
  within a time budget per page (``max_retry_seconds``). A ``Retry-After`` of 0, a negative one or garbage
  never becomes a busy loop: the wait is at least the backoff of that attempt. When the budget is spent
  the page raises ``PageUnavailable`` holding the request and, when the server kept answering 200 with
  bytes no parser can read, those bytes (an error status has no body worth keeping), so the caller can
  keep them and go on (``ingestion.landing`` marks the window incomplete).
- **Refusals** (400, 401, 403, 404, other 4xx) raise ``ApiError`` at once with the server's message: a
  wrong token or URL is a configuration error, not bad data.
- **Broken listings** raise ``ProtocolError`` at once, naming the request, with no retry: a
  ``next_cursor`` already seen in the same listing, a page holding more records than ``limit``, a body
  larger than ``max_page_bytes``, or more pages than ``total`` allows (with a margin for records that move
  while paging).
- **Nothing hangs**: every page attempt has an overall deadline (``page_deadline``), not only a per-read
  timeout, so a server dripping one byte a minute is cut off. A watchdog shuts the attempt's socket down
  when the deadline passes, whether the server is slow to answer, to send its headers or its body.
- **Decoding**: a page is decoded with msgspec into undecoded record slices (fast). A page msgspec refuses
  — most often one record with a lone UTF-16 surrogate such as ``"…\\ud800"``, which .NET serialisers emit
  when they cut a string — is split again by a tolerant scanner (``ingestion.records.split_envelope``),
  so one bad record does not cost its page; only a page no parser can read is a transient error.

Pages are yielded one at a time and the next one is fetched in a background thread meanwhile, so memory
stays flat however long the pull.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime

import msgspec
import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ingestion.records import ENVELOPE, Envelope, page_hazards, split_envelope

log = logging.getLogger(__name__)

_END = object()  # end of the page stream
FATAL_STATUSES = {400: "bad parameter", 401: "bad or missing token", 403: "forbidden", 404: "unknown path"}
PAGE_MARGIN_MIN = 5  # pages a listing may run over what its total allows (records moving while paging)
PAGE_MARGIN_SHARE = 0.1
# What a page's request or its body's read can fail with on the way (retried within the budget).
TRANSPORT_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError)


class ApiError(Exception):
    """The API refused the request (4xx), or a page could not be had (see the subclasses)."""


class PageUnavailable(ApiError):
    """A page could not be had within the retry budget (the server kept failing, or kept sending bytes no
    parser can read). ``body`` is the last unreadable 200 body, kept for quarantine; ``None`` when the
    attempts ended in error statuses or connection failures (``status`` then holds the last status)."""

    def __init__(self, message: str, request: str, attempts: int, reason: str, body: bytes | None = None,
                 status: int | None = None):
        super().__init__(message)
        self.request, self.attempts, self.reason, self.body, self.status = request, attempts, reason, body, status


class ProtocolError(ApiError):
    """The server broke the listing contract (a cursor loop, an oversized page, a listing that never ends):
    retrying cannot help, so the window fails at once."""

    def __init__(self, message: str, request: str, body: bytes | None = None):
        super().__init__(message)
        self.request, self.body = request, body


@dataclass
class Page:
    """One page of a list endpoint."""

    number: int  # 1-based
    total: int  # the envelope's total (as of the first page, per the contract)
    records: list[msgspec.Raw | bytes]  # the ``data`` items, undecoded (see ingestion.records)
    next_cursor: str | None
    retries: int  # retries this page needed
    tolerant: bool = False  # the fast decoder refused the page; the tolerant scanner split it
    suspect: bool = False  # the page's bytes show something jsonb may not store: examine each record


@dataclass
class Stats:
    """What a pull cost: pages, retries, and the reason of each retry."""

    pages: int = 0
    retries: int = 0
    retry_reasons: list[str] = field(default_factory=list)
    tolerant_pages: int = 0


def format_ts(value: datetime) -> str:
    """A naive local datetime as the contract's ``yyyyMMddHHmmss``."""
    return value.strftime("%Y%m%d%H%M%S")


def describe_request(url: str, params: dict) -> str:
    """``GET <url>?<params>`` for messages (the token is a header, never in the URL)."""
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"GET {url}" + (f"?{query}" if query else "")


# --- the deadline watchdog -------------------------------------------------------------------------------

class _ConnectionRegistry:
    """Which connection each thread's request is using, so a watchdog can shut its socket down."""

    def __init__(self) -> None:
        self._active: dict[int, object] = {}
        self._lock = threading.Lock()

    def set(self, conn: object) -> None:
        with self._lock:
            self._active[threading.get_ident()] = conn

    def shutdown(self, thread_id: int) -> bool:
        """Shut the socket of ``thread_id``'s connection down (its blocked read then returns); True if done."""
        with self._lock:
            conn = self._active.get(thread_id)
        sock = getattr(conn, "sock", None)
        if sock is None:
            return False
        # The plain socket's shutdown, also under TLS: it only makes the pending read return.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        return True


def _watched(pool_class: type, registry: _ConnectionRegistry) -> type:
    class WatchedPool(pool_class):  # type: ignore[misc, valid-type]
        def _get_conn(self, timeout=None):
            conn = super()._get_conn(timeout)
            registry.set(conn)
            return conn

    return WatchedPool


class _DeadlineAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections a watchdog can cut."""

    def __init__(self, registry: _ConnectionRegistry, **kwargs):
        self.registry = registry
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _watched(HTTPConnectionPool, self.registry),
                                                   "https": _watched(HTTPSConnectionPool, self.registry)}


class _Watchdog:
    """Cuts the calling thread's request off ``seconds`` from now."""

    def __init__(self, registry: _ConnectionRegistry, seconds: float):
        self.registry, self.expired = registry, False
        self._thread_id = threading.get_ident()
        self._done = threading.Event()
        self._timer = threading.Thread(target=self._run, args=(seconds,), daemon=True, name="page-deadline")

    def _run(self, seconds: float) -> None:
        if self._done.wait(seconds):
            return
        self.expired = True
        while not self._done.is_set():  # a connection not yet connected has no socket: try again shortly
            if self.registry.shutdown(self._thread_id):
                return
            self._done.wait(0.2)

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()


# --- the client ------------------------------------------------------------------------------------------

class ProcedureApiClient:
    """A ``requests`` session bound to one API base URL and token."""

    def __init__(self, base_url: str, token: str, *, page_size: int = 1000, connect_timeout: float = 10.0,
                 read_timeout: float = 120.0, max_retry_seconds: float = 300.0, backoff_base: float = 0.5,
                 backoff_max: float = 30.0, page_deadline: float = 180.0, max_page_bytes: int = 64 * 2**20,
                 session: requests.Session | None = None, sleep: Callable[[float], None] = time.sleep):
        if not base_url:
            raise ApiError("no API base URL: set PROCEDURE_API_URL (or the Airflow connection procedure_api)")
        if not token:
            raise ApiError("no API token: set PROCEDURE_API_TOKEN (or the Airflow connection procedure_api)")
        self.base_url = base_url.rstrip("/")
        self.page_size = page_size
        self.timeout = (connect_timeout, read_timeout)
        self.max_retry_seconds = max_retry_seconds
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self.page_deadline = page_deadline
        self.max_page_bytes = max_page_bytes
        self._registry = _ConnectionRegistry()
        if session is None:
            session = requests.Session()
            adapter = _DeadlineAdapter(self._registry)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self.session = session
        self.session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json"})
        self._sleep = sleep
        self._jitter = random.Random()

    @classmethod
    def from_settings(cls, settings) -> ProcedureApiClient:
        return cls(settings.api_url, settings.api_token, page_size=settings.page_size,
                   connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout,
                   max_retry_seconds=settings.max_retry_seconds, page_deadline=settings.page_deadline,
                   max_page_bytes=settings.max_page_bytes)

    def pages(self, resource: str, params: dict | None = None, stats: Stats | None = None,
              inspect: bool = True) -> Iterator[Page]:
        """Every page of ``GET /<resource>`` with ``params``, following ``next_cursor`` to the end.

        The next page is fetched in a background thread while the caller works on the current one (the
        network wait overlaps the caller's work); at most three pages are in memory at any time.
        ``inspect``: scan each page for what ``jsonb`` may not store (``records.page_hazards``, which marks
        it ``suspect``); a caller whose database refuses such records anyway (and then looks again with
        ``inspect``) can skip the scan. A page only the tolerant scanner could split is suspect either way."""
        stats = stats if stats is not None else Stats()
        pages: queue.Queue = queue.Queue(maxsize=1)
        stop = threading.Event()

        def produce() -> None:
            try:
                for page in self._sequential_pages(resource, params, stats, inspect):
                    while not stop.is_set():
                        try:
                            pages.put(page, timeout=0.2)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                pages.put(_END)
            except BaseException as exc:  # handed to the consumer, which re-raises it
                pages.put(exc)

        worker = threading.Thread(target=produce, name=f"prefetch-{resource}", daemon=True)
        worker.start()
        try:
            while True:
                item = pages.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            worker.join(timeout=1)

    def _sequential_pages(self, resource: str, params: dict | None, stats: Stats,
                          inspect: bool = True) -> Iterator[Page]:
        params = {**(params or {}), "limit": self.page_size}
        url = f"{self.base_url}/{resource}"
        number, total, cursor, allowed = 0, None, None, None
        seen: set[str] = set()
        while True:
            request = {**params, **({"cursor": cursor} if cursor else {})}
            body, retries, tolerant, suspect = self._get(resource, request, stats, inspect)
            number += 1
            stats.pages += 1
            stats.tolerant_pages += tolerant
            where = describe_request(url, request)
            if total is None:
                total = body.total if isinstance(body.total, int) and body.total >= 0 else 0
                expected = math.ceil(total / self.page_size)
                allowed = max(1, expected + max(PAGE_MARGIN_MIN, math.ceil(expected * PAGE_MARGIN_SHARE)))
            if len(body.data) > self.page_size:
                raise ProtocolError(f"{where}: page {number} holds {len(body.data)} records, more than the "
                                    f"limit {self.page_size}; not retried", where)
            cursor = body.next_cursor if isinstance(body.next_cursor, str) and body.next_cursor else None
            if cursor is not None:
                if cursor in seen:
                    raise ProtocolError(f"{where}: page {number} returned a next_cursor already seen in this "
                                        "listing (the listing loops); not retried", where)
                seen.add(cursor)
                if number >= allowed:
                    raise ProtocolError(f"{where}: the listing does not end: {number} pages read, while a total "
                                        f"of {total} with limit {self.page_size} allows {allowed} with the margin;"
                                        " not retried", where)
            yield Page(number, total, body.data, cursor, retries, tolerant, suspect)
            if cursor is None:
                return

    def count(self, resource: str, params: dict | None = None) -> int:
        """The ``total`` the server reports now for a query (one small request)."""
        body, _, _, _ = self._get(resource, {**(params or {}), "limit": 1}, Stats())
        return body.total

    def _fetch(self, url: str, params: dict) -> tuple[requests.Response, bytes | None, str | None]:
        """One attempt, under the page deadline: the response, its body (None when the attempt failed) and
        why it failed. Raises ProtocolError for a body over the size cap."""
        where = describe_request(url, params)
        with _Watchdog(self._registry, self.page_deadline) as watchdog:
            try:
                response = self.session.get(url, params=params, timeout=self.timeout, stream=True)
            except TRANSPORT_ERRORS as exc:
                if watchdog.expired:
                    return None, None, f"page deadline of {self.page_deadline:.0f}s exceeded before the answer"
                return None, None, f"{type(exc).__name__}: {_first_line(exc)}"
            try:
                declared = response.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > self.max_page_bytes:
                    raise ProtocolError(f"{where}: the body announces {int(declared):,} bytes, over the cap of "
                                        f"{self.max_page_bytes:,} (PROCEDURE_API_MAX_PAGE_BYTES); not retried",
                                        where)
                chunks, size = [], 0
                for chunk in response.iter_content(chunk_size=256 * 1024):
                    size += len(chunk)
                    if size > self.max_page_bytes:
                        raise ProtocolError(f"{where}: the body exceeds the cap of {self.max_page_bytes:,} bytes "
                                            "(PROCEDURE_API_MAX_PAGE_BYTES); not retried", where)
                    chunks.append(chunk)
                return response, b"".join(chunks), None
            except TRANSPORT_ERRORS as exc:
                if watchdog.expired:
                    return response, None, f"page deadline of {self.page_deadline:.0f}s exceeded while reading"
                return response, None, f"{type(exc).__name__} while reading the body: {_first_line(exc)}"
            finally:
                response.close()

    def _get(self, resource: str, params: dict, stats: Stats,
             inspect: bool = True) -> tuple[Envelope, int, bool, bool]:
        """One page, retried within the budget: (envelope, retries, decoded tolerantly, suspect)."""
        url = f"{self.base_url}/{resource}"
        started = time.monotonic()
        attempt = 0
        last_body: bytes | None = None
        last_status: int | None = None
        while True:
            retry_after: float | None = None
            response, content, reason = self._fetch(url, params)
            if response is not None and content is not None:
                status = last_status = response.status_code
                if status == 200:
                    body, tolerant, reason = _parse_envelope(content)
                    if body is not None:
                        return body, attempt, tolerant, tolerant or (inspect and page_hazards(content))
                    last_body = content
                elif status in FATAL_STATUSES or (400 <= status < 500 and status != 429):
                    meaning = FATAL_STATUSES.get(status, "refused")
                    raise ApiError(f"{describe_request(url, params)} failed with {status} ({meaning}): "
                                   f"{_server_message(content)}; not retried")
                elif status == 429:
                    retry_after = _retry_after(response.headers.get("Retry-After"))
                    reason = f"429 rate limited (Retry-After {response.headers.get('Retry-After')!r})"
                elif status >= 500:
                    reason = f"{status} server error"
                else:
                    reason = f"unexpected status {status}"
            attempt += 1
            backoff = self._backoff(attempt)
            delay = backoff if retry_after is None else max(retry_after, backoff)
            elapsed = time.monotonic() - started
            if elapsed + delay > self.max_retry_seconds:
                where = describe_request(url, params)
                raise PageUnavailable(f"{where}: gave up after {attempt} attempts in {elapsed:.0f}s (budget "
                                      f"{self.max_retry_seconds:.0f}s); last error: {reason}", where, attempt,
                                      reason or "", last_body, last_status)
            stats.retries += 1
            stats.retry_reasons.append(reason or "")
            log.warning("GET %s: %s; retry %d in %.1fs", resource, reason, attempt, delay)
            self._sleep(delay)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter: half the step plus a random half."""
        step = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return step / 2 + self._jitter.random() * step / 2


def _parse_envelope(content: bytes) -> tuple[Envelope | None, bool, str]:
    """The list envelope of a body: (envelope, decoded by the tolerant scanner, why not decodable)."""
    tolerant = False
    try:
        body = ENVELOPE.decode(content)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        body = split_envelope(content)
        if body is None:
            return None, False, f"body is not a valid list envelope ({len(content):,} bytes: {_first_line(exc)})"
        tolerant = True
    if str(body.error_code) != "00":
        return None, tolerant, f"error_code {str(body.error_code)[:40]}: {str(body.message)[:200]}"
    if not isinstance(body.total, int) or isinstance(body.total, bool) or not isinstance(body.data, list):
        return None, tolerant, "body is not a valid list envelope (total or data missing or of the wrong type)"
    return body, tolerant, ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _server_message(content: bytes) -> str:
    try:
        body = msgspec.json.decode(content)
        return f"error_code {str(body.get('error_code'))[:40]}: {str(body.get('message'))[:200]}"
    except (msgspec.DecodeError, AttributeError, RecursionError):
        return content[:200].decode("utf-8", errors="replace")


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds, from delta-seconds or an HTTP date; None when absent or unreadable
    (the caller never waits less than its backoff anyway)."""
    if not value:
        return None
    try:
        seconds = float(value)
        return seconds if math.isfinite(seconds) else None
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
        return (when - datetime.now(tz=when.tzinfo)).total_seconds()
    except (TypeError, ValueError, IndexError):
        return None
