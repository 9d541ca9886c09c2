"""The API client's handling of failures (``ingestion.client.ProcedureApiClient``) against a fake session: no
network, no real sleep. The expectations come from the contract's error table (429: wait and retry, honouring
``Retry-After``; 5xx and unreadable 200 bodies: retry with backoff; 400/401/403/404: fail fast, no retry) and
the client's documented promises: the wait is never below the attempt's backoff (half its exponential step,
``backoff_base * 2**(attempt - 1)``, plus up to as much again in jitter), retries stop within the page's time
budget, and a broken listing (a cursor seen before, a page over ``limit``, a body over the size cap) fails at
once. The fake session returns objects shaped like ``requests.Response``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

import pytest
import requests

from ingestion.client import ApiError, PageUnavailable, ProcedureApiClient, ProtocolError, Stats

BASE = "http://api.test/api/v1"
WINDOW = {"updated_from": "20230101000000", "updated_to": "20230201000000"}
BUDGET = {"backoff_base": 10.0, "backoff_max": 1000.0, "max_retry_seconds": 50.0}


class FakeResponse:
    """What the client reads of a ``requests.Response``: status, headers, the streamed body, close()."""

    def __init__(self, status_code: int = 200, body: bytes = b"", headers: dict | None = None):
        self.status_code, self.body, self.headers = status_code, body, dict(headers or {})
        self.closed = False

    def iter_content(self, chunk_size: int = 1) -> Iterable[bytes]:
        for start in range(0, len(self.body), chunk_size):
            yield self.body[start:start + chunk_size]

    def close(self) -> None:
        self.closed = True


class FakeSession:
    """Answers each GET with the next of ``answers`` (a response, or an exception to raise), then with
    ``then()`` forever; records every request."""

    def __init__(self, *answers, then: Callable[[], FakeResponse] | None = None):
        self.answers, self.then = list(answers), then
        self.headers: dict[str, str] = {}
        self.requests: list[dict] = []
        self.responses: list[FakeResponse] = []

    def get(self, url, params=None, timeout=None, stream=False):
        self.requests.append({"url": url, "params": dict(params or {}), "stream": stream})
        if self.answers:
            answer = self.answers.pop(0)
        elif self.then is not None:
            answer = self.then()
        else:
            raise AssertionError(f"unexpected request {url} {params}")
        if isinstance(answer, BaseException):
            raise answer
        self.responses.append(answer)
        return answer


def envelope(records: list, cursor: str | None = None, total: int | None = None) -> FakeResponse:
    body = {"error_code": "00", "message": "OK", "total": len(records) if total is None else total,
            "next_cursor": cursor, "data": records}
    return FakeResponse(200, json.dumps(body).encode(), {"Content-Type": "application/json"})


def refusal(status: int, headers: dict | None = None) -> FakeResponse:
    return FakeResponse(status, json.dumps({"error_code": str(status), "message": "refused"}).encode(), headers)


def client(session: FakeSession, sleeps: list, **options) -> ProcedureApiClient:
    options = {"page_size": 2, "backoff_base": 0.2, "backoff_max": 10.0, "max_retry_seconds": 60.0} | options
    return ProcedureApiClient(BASE, "secret-token", session=session, sleep=sleeps.append, **options)


def pull(api: ProcedureApiClient, stats: Stats | None = None) -> list:
    return list(api.pages("dossiers", WINDOW, stats))


def assert_backoff(sleeps: list[float], base: float) -> None:
    """Each wait is at least the backoff of its attempt and at most its step (the jitter's top)."""
    for attempt, waited in enumerate(sleeps, start=1):
        step = base * 2 ** (attempt - 1)
        assert step / 2 <= waited <= step, (attempt, waited)


# --- the normal path ---------------------------------------------------------------------------------------


def test_pages_are_followed_by_cursor_with_the_token_and_the_limit():
    session, sleeps = FakeSession(envelope([{"MaHoSo": "A"}, {"MaHoSo": "B"}], "c1", total=3),
                                  envelope([{"MaHoSo": "C"}])), []
    pages = pull(client(session, sleeps))
    assert [len(p.records) for p in pages] == [2, 1] and [p.number for p in pages] == [1, 2]
    assert [json.loads(bytes(r)) for p in pages for r in p.records] == [{"MaHoSo": k} for k in "ABC"]
    assert pages[0].total == 3 and pages[1].next_cursor is None
    assert session.headers["Authorization"] == "Bearer secret-token"
    assert [r["params"] for r in session.requests] == [WINDOW | {"limit": 2}, WINDOW | {"limit": 2, "cursor": "c1"}]
    assert all(r["url"] == f"{BASE}/dossiers" for r in session.requests)
    assert sleeps == [] and all(r.closed for r in session.responses)


# --- 429 --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("retry_after", ["0", "-5", "-0.5", "soon", "", "nan",
                                         "Wed, 01 Jan 2020 00:00:00 GMT"])  # an HTTP date in the past
# (a fixed date: test ids built from the clock differ between test workers, which then refuse to start)
def test_a_429_whose_retry_after_is_zero_negative_or_garbage_never_waits_less_than_the_backoff(retry_after):
    session, sleeps = FakeSession(refusal(429, {"Retry-After": retry_after}), envelope([{"MaHoSo": "A"}])), []
    stats = Stats()
    pages = pull(client(session, sleeps, backoff_base=0.2), stats)
    assert len(pages) == 1 and pages[0].retries == 1
    assert len(sleeps) == 1 and 0.1 <= sleeps[0] <= 0.2
    assert stats.retries == 1 and "429" in stats.retry_reasons[0]


def test_repeated_429s_with_retry_after_zero_back_off_exponentially():
    zero = {"Retry-After": "0"}
    session, sleeps = FakeSession(refusal(429, zero), refusal(429, zero), refusal(429, zero), refusal(429, zero),
                                  envelope([])), []
    assert pull(client(session, sleeps, backoff_base=0.2))[0].retries == 4
    assert len(sleeps) == 4
    assert_backoff(sleeps, 0.2)


def test_a_429_retry_after_longer_than_the_backoff_is_honoured():
    session, sleeps = FakeSession(refusal(429, {"Retry-After": "3"}), envelope([])), []
    pull(client(session, sleeps, backoff_base=0.2))
    assert sleeps == [3.0]


def test_a_429_asking_to_wait_beyond_the_budget_gives_the_page_up_without_waiting():
    session, sleeps = FakeSession(refusal(429, {"Retry-After": "3600"})), []
    with pytest.raises(PageUnavailable) as caught:
        pull(client(session, sleeps, max_retry_seconds=60))
    assert sleeps == [] and caught.value.status == 429 and caught.value.attempts == 1


# --- 5xx and unreadable bodies -------------------------------------------------------------------------------


def test_server_errors_are_retried_until_the_page_comes():
    session, sleeps = FakeSession(refusal(500), FakeResponse(502, b"<html>Bad Gateway</html>"), refusal(503),
                                  refusal(504), envelope([{"MaHoSo": "A"}])), []
    stats = Stats()
    pages = pull(client(session, sleeps, backoff_base=0.2), stats)
    assert pages[0].retries == 4 and len(session.requests) == 5
    assert_backoff(sleeps, 0.2)
    assert [reason.split()[0] for reason in stats.retry_reasons] == ["500", "502", "503", "504"]


def test_server_errors_are_retried_within_the_budget_then_the_page_is_unavailable():
    # Steps of 10, 20, 40, 80 s: waits in [5, 10], [10, 20], [20, 40], [40, 80]. With a budget of 50 s (the
    # sleeps are not real, so only each wait counts against it) the first three waits always fit, a fourth
    # only when its jitter keeps it within 50 s, a fifth never does.
    session, sleeps = FakeSession(then=lambda: refusal(503)), []
    with pytest.raises(PageUnavailable) as caught:
        pull(client(session, sleeps, **BUDGET))
    assert len(sleeps) in (3, 4)
    assert_backoff(sleeps, 10.0)
    assert all(waited <= 50.0 for waited in sleeps)
    error = caught.value
    assert error.attempts == len(sleeps) + 1 == len(session.requests)
    assert error.status == 503 and "503" in error.reason
    assert error.request.startswith(f"GET {BASE}/dossiers?") and "updated_from=20230101000000" in error.request


@pytest.mark.parametrize("body", [b'{"error_code":"00","total":2,"data":[{"MaHoSo":"A"},', b"<html>oops</html>", b""])
def test_an_unreadable_200_body_is_retried_and_kept_when_the_page_is_given_up(body):
    session, sleeps = FakeSession(then=lambda: FakeResponse(200, body)), []
    with pytest.raises(PageUnavailable) as caught:
        pull(client(session, sleeps, **BUDGET))
    assert len(sleeps) in (3, 4)
    assert caught.value.body == body and caught.value.status == 200


def test_a_body_cut_short_once_is_retried():
    whole = envelope([{"MaHoSo": "A"}])
    session, sleeps = FakeSession(FakeResponse(200, whole.body[:-7]), whole), []
    assert [len(p.records) for p in pull(client(session, sleeps))] == [1]
    assert len(sleeps) == 1


def test_connection_errors_and_timeouts_are_retried():
    session, sleeps = FakeSession(requests.ConnectionError("connection refused"), requests.Timeout("read timed out"),
                                  envelope([{"MaHoSo": "A"}])), []
    stats = Stats()
    assert pull(client(session, sleeps, backoff_base=0.2), stats)[0].retries == 2
    assert_backoff(sleeps, 0.2)
    assert stats.retry_reasons[0].startswith("ConnectionError") and stats.retry_reasons[1].startswith("Timeout")


def test_an_error_code_other_than_00_in_a_200_is_retried():
    failing = FakeResponse(200, json.dumps({"error_code": "99", "message": "busy", "total": 0, "data": []}).encode())
    session, sleeps = FakeSession(failing, envelope([{"MaHoSo": "A"}])), []
    stats = Stats()
    pull(client(session, sleeps), stats)
    assert len(sleeps) == 1 and "error_code 99" in stats.retry_reasons[0]


# --- refusals --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_a_refusal_fails_at_once_without_retry(status):
    session, sleeps = FakeSession(refusal(status), then=lambda: envelope([])), []
    with pytest.raises(ApiError) as caught:
        pull(client(session, sleeps))
    assert not isinstance(caught.value, PageUnavailable | ProtocolError)
    assert str(status) in str(caught.value) and "refused" in str(caught.value)
    assert sleeps == [] and len(session.requests) == 1


# --- broken listings ---------------------------------------------------------------------------------------------


def test_a_cursor_seen_before_fails_the_listing_at_once():
    session, sleeps = FakeSession(envelope([{"MaHoSo": "A"}, {"MaHoSo": "B"}], "c1", total=6),
                                  envelope([{"MaHoSo": "C"}, {"MaHoSo": "D"}], "c2", total=6),
                                  envelope([{"MaHoSo": "E"}, {"MaHoSo": "F"}], "c1", total=6),
                                  then=lambda: envelope([])), []
    with pytest.raises(ProtocolError, match="already seen"):
        pull(client(session, sleeps))
    assert sleeps == [] and len(session.requests) == 3


def test_a_page_returning_its_own_cursor_fails_at_once():
    session, sleeps = FakeSession(envelope([{"MaHoSo": "A"}], "c1", total=10),
                                  envelope([{"MaHoSo": "B"}], "c1", total=10), then=lambda: envelope([])), []
    with pytest.raises(ProtocolError):
        pull(client(session, sleeps))
    assert sleeps == [] and len(session.requests) == 2


def test_a_page_over_the_limit_fails_at_once():
    session, sleeps = FakeSession(envelope([{"MaHoSo": k} for k in "ABC"]), then=lambda: envelope([])), []
    with pytest.raises(ProtocolError, match="more than the limit 2"):
        pull(client(session, sleeps, page_size=2))
    assert sleeps == [] and len(session.requests) == 1


def test_a_listing_that_never_ends_fails_without_retry():
    counter = iter(range(10**6))
    session, sleeps = FakeSession(then=lambda: envelope([{"MaHoSo": "A"}], f"c{next(counter)}", total=2)), []
    with pytest.raises(ProtocolError, match="does not end"):
        pull(client(session, sleeps))
    assert sleeps == [] and 1 < len(session.requests) < 20  # a total of 2 in pages of 2 is one page


def test_a_body_announced_over_the_cap_is_refused_unread():
    big = FakeResponse(200, b"", {"Content-Length": str(10_000)})
    session, sleeps = FakeSession(big, then=lambda: envelope([])), []
    with pytest.raises(ProtocolError, match="announces 10,000 bytes"):
        pull(client(session, sleeps, max_page_bytes=1000))
    assert sleeps == [] and len(session.requests) == 1 and big.closed


def test_a_streamed_body_over_the_cap_is_cut_off():
    big = envelope([{"MaHoSo": "A" * 600}, {"MaHoSo": "B" * 600}])
    session, sleeps = FakeSession(big, then=lambda: envelope([])), []
    with pytest.raises(ProtocolError, match="exceeds the cap of 1,000 bytes"):
        pull(client(session, sleeps, max_page_bytes=1000))
    assert sleeps == [] and len(session.requests) == 1 and big.closed


def test_without_a_url_or_token_the_client_says_which_setting_is_missing():
    with pytest.raises(ApiError, match="PROCEDURE_API_URL"):
        ProcedureApiClient("", "token", session=FakeSession())
    with pytest.raises(ApiError, match="PROCEDURE_API_TOKEN"):
        ProcedureApiClient(BASE, "", session=FakeSession())
