"""Client of the procedure-system API contract (``../shared/spec/procedure-api.md``).

Works against any server that follows the contract: follows cursors to the end, retries what the
contract calls transient (429 honouring ``Retry-After``, 5xx, timeouts, connection errors, bodies that
are not valid JSON or are cut short) with exponential backoff and jitter within a time budget per
page, and fails fast with the server's message on 400, 401 and 404. Pages are yielded one at a time,
so memory stays flat however long the pull.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime

import msgspec
import requests

from ingestion.records import ENVELOPE, Envelope

log = logging.getLogger(__name__)

_END = object()  # end of the page stream
FATAL_STATUSES = {400: "bad parameter", 401: "bad or missing token", 403: "forbidden", 404: "unknown path"}


class ApiError(Exception):
    """The API refused the request (400/401/404) or a page could not be had within the retry budget."""


@dataclass
class Page:
    """One page of a list endpoint."""

    number: int  # 1-based
    total: int  # the envelope's total (as of the first page, per the contract)
    records: list[msgspec.Raw]  # the ``data`` items, undecoded (see ingestion.records)
    next_cursor: str | None
    retries: int  # retries this page needed


@dataclass
class Stats:
    """What a pull cost: pages, retries, and the reason of each retry."""

    pages: int = 0
    retries: int = 0
    retry_reasons: list[str] = field(default_factory=list)


def format_ts(value: datetime) -> str:
    """A naive local datetime as the contract's ``yyyyMMddHHmmss``."""
    return value.strftime("%Y%m%d%H%M%S")


class ProcedureApiClient:
    """A ``requests`` session bound to one API base URL and token."""

    def __init__(self, base_url: str, token: str, *, page_size: int = 1000, connect_timeout: float = 10.0,
                 read_timeout: float = 120.0, max_retry_seconds: float = 300.0, backoff_base: float = 0.5,
                 backoff_max: float = 30.0, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        if not base_url:
            raise ApiError("no API base URL: set PROCEDURE_API_URL (or the Airflow connection procedure_api)")
        if not token:
            raise ApiError("no API token: set PROCEDURE_API_TOKEN (or the Airflow connection procedure_api)")
        self.base_url = base_url.rstrip("/")
        self.page_size = page_size
        self.timeout = (connect_timeout, read_timeout)
        self.max_retry_seconds = max_retry_seconds
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self.session = session or requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json"})
        self._sleep = sleep
        self._jitter = random.Random()

    @classmethod
    def from_settings(cls, settings) -> ProcedureApiClient:
        return cls(settings.api_url, settings.api_token, page_size=settings.page_size,
                   connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout,
                   max_retry_seconds=settings.max_retry_seconds)

    def pages(self, resource: str, params: dict | None = None, stats: Stats | None = None) -> Iterator[Page]:
        """Every page of ``GET /<resource>`` with ``params``, following ``next_cursor`` to the end.

        The next page is fetched in a background thread while the caller works on the current one (the
        network wait overlaps the caller's work); at most three pages are in memory at any time."""
        stats = stats if stats is not None else Stats()
        pages: queue.Queue = queue.Queue(maxsize=1)
        stop = threading.Event()

        def produce() -> None:
            try:
                for page in self._sequential_pages(resource, params, stats):
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

    def _sequential_pages(self, resource: str, params: dict | None, stats: Stats) -> Iterator[Page]:
        params = {**(params or {}), "limit": self.page_size}
        number, total, cursor = 0, None, None
        while True:
            body, retries = self._get(resource, {**params, **({"cursor": cursor} if cursor else {})}, stats)
            number += 1
            stats.pages += 1
            total = body.total if total is None else total
            cursor = body.next_cursor or None
            yield Page(number, total, body.data, cursor, retries)
            if cursor is None:
                return

    def count(self, resource: str, params: dict | None = None) -> int:
        """The ``total`` the server reports now for a query (one small request)."""
        body, _ = self._get(resource, {**(params or {}), "limit": 1}, Stats())
        return body.total

    def _get(self, resource: str, params: dict, stats: Stats) -> tuple[Envelope, int]:
        url = f"{self.base_url}/{resource}"
        started = time.monotonic()
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                response = self.session.get(url, params=params, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if status == 200:
                    body, reason = _parse_envelope(response.content)
                    if body is not None:
                        return body, attempt
                elif status in FATAL_STATUSES:
                    raise ApiError(f"GET {url} failed with {status} ({FATAL_STATUSES[status]}): "
                                   f"{_server_message(response)}; not retried")
                elif status == 429:
                    retry_after = _retry_after(response.headers.get("Retry-After"))
                    reason = f"429 rate limited (Retry-After {response.headers.get('Retry-After')})"
                elif status >= 500:
                    reason = f"{status} server error"
                else:
                    raise ApiError(f"GET {url} answered {status}: {_server_message(response)}")
            attempt += 1
            delay = retry_after if retry_after is not None else self._backoff(attempt)
            elapsed = time.monotonic() - started
            if elapsed + delay > self.max_retry_seconds:
                raise ApiError(f"GET {url} {params}: gave up after {attempt} attempts in {elapsed:.0f}s "
                               f"(budget {self.max_retry_seconds:.0f}s); last error: {reason}")
            stats.retries += 1
            stats.retry_reasons.append(reason)
            log.warning("GET %s: %s; retry %d in %.1fs", resource, reason, attempt, delay)
            self._sleep(delay)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter: half the step plus a random half."""
        step = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return step / 2 + self._jitter.random() * step / 2


def _parse_envelope(content: bytes) -> tuple[Envelope | None, str]:
    try:
        body = ENVELOPE.decode(content)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return None, f"body is not a valid list envelope ({len(content)} bytes: {exc})"
    if str(body.error_code) != "00":
        return None, f"error_code {body.error_code}: {body.message}"
    return body, ""


def _server_message(response: requests.Response) -> str:
    try:
        body = response.json()
        return f"error_code {body.get('error_code')}: {body.get('message')}"
    except ValueError:
        return response.text[:200]


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds, from delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(tz=parsedate_to_datetime(value).tzinfo))
                   .total_seconds())
    except (TypeError, ValueError):
        return None
