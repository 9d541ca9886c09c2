"""HTTP server for the procedure-system API contract (``../shared/spec/procedure-api.md``).

Endpoints under the base path (default ``/api/v1``): ``/units``, ``/procedures``, ``/delegations``,
``/dossiers``; bearer-token auth; the list envelope with opaque cursors; the contract's error codes.
Outside the contract, ``/_sim/health`` (no auth) reports the scenario and clock, and
``POST /_sim/clock?to=yyyyMMddHHmmss`` (auth) moves the clock, so tests can advance the province day by
day without restarting it.

Faults on demand (``SIM_FAULT_*``, all off by default) make the server behave like a real one on a
bad day: 5xx answers, 429 with ``Retry-After``, slow answers, truncated bodies, records repeated
across pages, unknown extra fields.
"""

from __future__ import annotations

import base64
import random
import threading
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import orjson

from pipeline.settings import SimulatorSettings
from simulator.province import Province
from simulator.timefmt import DAY, to_secs, ts_str
from simulator.truth import parse_timestamp

DEFAULTS = SimulatorSettings()
MAX_WINDOW = 31 * DAY
DEFAULT_LIMIT, MAX_LIMIT = 500, 1000


@dataclass
class Faults:
    """Fault rates in [0, 1] per request (``extra_fields``, ``malformed``: per record); all zero by default
    (the declared defaults of ``SIM_FAULT_*``, ``pipeline.settings.SimulatorSettings``). ``malformed`` is not
    part of ``SIM_FAULTS=all:…``: it loses records on purpose (for quarantine tests)."""

    server_error: float = DEFAULTS.fault_5xx
    rate_limit: float = DEFAULTS.fault_429
    slow: float = DEFAULTS.fault_slow
    truncate: float = DEFAULTS.fault_truncate
    duplicate: float = DEFAULTS.fault_duplicate
    extra_fields: float = DEFAULTS.fault_extra_fields
    malformed: float = DEFAULTS.fault_malformed
    omit_fields: tuple[str, ...] = DEFAULTS.fault_omit_fields  # fields dropped from non-deleted dossiers
    omit_share: float = DEFAULTS.fault_omit_share  # ... from this share of them (deterministic per record)
    drop: float = DEFAULTS.fault_drop  # per record: left out of the page while still counted in ``total``
    retry_after: int = DEFAULTS.fault_retry_after
    slow_seconds: float = DEFAULTS.fault_slow_seconds
    seed: int = DEFAULTS.fault_seed

    @classmethod
    def from_settings(cls, settings: SimulatorSettings) -> Faults:
        """The faults the settings ask for (``SIM_FAULT_*``, ``SIM_FAULTS=all:<rate>``)."""
        return cls(server_error=settings.fault_5xx, rate_limit=settings.fault_429, slow=settings.fault_slow,
                   truncate=settings.fault_truncate, duplicate=settings.fault_duplicate,
                   extra_fields=settings.fault_extra_fields, malformed=settings.fault_malformed,
                   omit_fields=settings.fault_omit_fields, omit_share=settings.fault_omit_share,
                   drop=settings.fault_drop, retry_after=settings.fault_retry_after,
                   slow_seconds=settings.fault_slow_seconds, seed=settings.fault_seed)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Faults:
        """The faults of the settings in ``env`` (default: the process environment)."""
        return cls.from_settings(SimulatorSettings.from_env(env))


def _hits(record: bytes, rate: float, salt: int) -> bool:
    """Whether a record-level fault of ``rate`` hits this record (deterministic in its bytes)."""
    return (zlib.crc32(record, salt) % 10_000) < rate * 10_000


MALFORMED_KINDS = ("string", "no_key", "bad_timestamp", "array")


def _malformed(record: bytes) -> bytes:
    """A corrupt version of a record: not an object, no key, an unparseable NgayCapNhat, or an array."""
    kind = MALFORMED_KINDS[zlib.crc32(record, 3) % len(MALFORMED_KINDS)]
    try:
        obj = orjson.loads(record)
    except orjson.JSONDecodeError:
        return record
    if kind == "string":
        return orjson.dumps(f"ERROR: record {obj.get('MaHoSo')} could not be serialised")
    if kind == "no_key":
        obj.pop("MaHoSo", None)
    elif kind == "bad_timestamp":
        obj["NgayCapNhat"] = "2023-13-45 25:61"
    else:
        return orjson.dumps([obj.get("MaHoSo"), obj.get("NgayCapNhat")])
    return orjson.dumps(obj)


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def encode_cursor(state: dict) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(state)).decode().rstrip("=")


def decode_cursor(text: str) -> dict:
    try:
        state = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise ApiError(400, "cursor is not valid") from exc
    if not isinstance(state, dict):
        raise ApiError(400, "cursor is not valid")
    return state


class ProcedureApi:
    """The contract's logic, independent of HTTP plumbing: ``handle`` returns (status, headers, body)."""

    def __init__(self, province: Province, token: str, base_path: str = "/api/v1", faults: Faults | None = None):
        self.province = province
        self.token = token
        self.base = base_path.rstrip("/")
        self.faults = faults or Faults()
        self._rng = random.Random(self.faults.seed)
        self._rng_lock = threading.Lock()

    def _roll(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._rng_lock:
            return self._rng.random() < rate

    @staticmethod
    def _json(status: int, payload: dict, headers: dict | None = None) -> tuple[int, dict, bytes]:
        return status, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, orjson.dumps(payload)

    def _error(self, status: int, message: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
        return self._json(status, {"error_code": str(status), "message": message, "total": 0,
                                   "next_cursor": None, "data": []}, headers)

    def handle(self, method: str, target: str, headers: dict[str, str]) -> tuple[int, dict, bytes]:
        parts = urlsplit(target)
        path = parts.path.rstrip("/")
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if path == "/_sim/health":
            return self._json(200, {"status": "ok", "clock": ts_str(self.province.index.clock),
                                    "scenario": self.province.scenario.to_dict(),
                                    "dossiers": len(self.province.index.rows)})
        resource = path[len(self.base) + 1:] if path.startswith(self.base + "/") else None
        if path == "/_sim/clock":
            resource = "_clock"
        if resource not in ("units", "procedures", "delegations", "dossiers", "_clock"):
            return self._error(404, f"unknown path {parts.path}")
        if headers.get("authorization", "") != f"Bearer {self.token}":
            return self._error(401, "missing or invalid bearer token")
        try:
            if resource == "_clock":
                return self._set_clock(method, params)
            if method != "GET":
                raise ApiError(400, "only GET is supported")
            if self._roll(self.faults.rate_limit):
                return self._error(429, "rate limited", {"Retry-After": str(self.faults.retry_after)})
            if self._roll(self.faults.server_error):
                status = self._rng.choice([500, 502, 503, 504])
                if self._rng.random() < 0.5:
                    return status, {"Content-Type": "text/html"}, b"<html><body>Bad gateway</body></html>"
                return self._error(status, "transient server error")
            if self._roll(self.faults.slow):
                time.sleep(self.faults.slow_seconds)
            limit = self._limit(params)
            if resource == "dossiers":
                return self._dossiers(params, limit)
            return self._reference(resource, params, limit)
        except ApiError as exc:
            return self._error(exc.status, exc.message)

    def _set_clock(self, method: str, params: dict) -> tuple[int, dict, bytes]:
        if method != "POST":
            raise ApiError(400, "POST /_sim/clock?to=yyyyMMddHHmmss")
        when = parse_timestamp(params.get("to"))
        if when is None:
            raise ApiError(400, "to must be yyyyMMddHHmmss")
        self.province.set_clock(when)
        return self._json(200, {"error_code": "00", "message": "OK", "clock": ts_str(to_secs(when))})

    @staticmethod
    def _limit(params: dict) -> int:
        raw = params.get("limit")
        if raw is None:
            return DEFAULT_LIMIT
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
            raise ApiError(400, f"limit must be an integer in 1..{MAX_LIMIT}")
        return int(raw)

    def _envelope(self, total: int, cursor: str | None, data: list[bytes],
                  dossiers: bool = False) -> tuple[int, dict, bytes]:
        """The list envelope around records already serialised (spliced, not re-encoded)."""
        if dossiers and self.faults.drop > 0:
            data = [rec for rec in data if not _hits(rec, self.faults.drop, 4)]
        if dossiers and self.faults.omit_fields:
            data = [self._without_fields(rec) if _hits(rec, self.faults.omit_share, 5) else rec for rec in data]
        # Record-level faults hit the same records on every request (a schema change or a corrupt row
        # is a property of the record, not of the request), so retries and re-pulls see them again.
        if self.faults.extra_fields > 0:
            data = [self._with_extra_fields(rec) if _hits(rec, self.faults.extra_fields, 1) else rec for rec in data]
        if self.faults.malformed > 0:
            data = [_malformed(rec) if _hits(rec, self.faults.malformed, 2) else rec for rec in data]
        head = orjson.dumps({"error_code": "00", "message": "OK", "total": total, "next_cursor": cursor})
        body = head[:-1] + b',"data":[' + b",".join(data) + b"]}"
        return 200, {"Content-Type": "application/json; charset=utf-8"}, body

    def _without_fields(self, rec: bytes) -> bytes:
        try:
            obj = orjson.loads(rec)
        except orjson.JSONDecodeError:  # a record served as raw bytes (simulator.static.RawRecord)
            return rec
        if not isinstance(obj, dict) or obj.get("DaXoa"):
            return rec
        for name in self.faults.omit_fields:
            obj.pop(name, None)
        return orjson.dumps(obj)

    @staticmethod
    def _with_extra_fields(rec: bytes) -> bytes:
        try:
            obj = orjson.loads(rec)
        except orjson.JSONDecodeError:
            return rec
        obj["TruongMoi"] = {"PhienBan": 2, "GhiChu": "trường mới"}
        return orjson.dumps(obj)

    def _reference(self, resource: str, params: dict, limit: int) -> tuple[int, dict, bytes]:
        records = {"units": self.province.unit_records, "procedures": self.province.procedure_records,
                   "delegations": self.province.delegation_records}[resource]()
        offset, total = 0, len(records)
        if params.get("cursor"):
            state = decode_cursor(params["cursor"])
            if state.get("r") != resource or not isinstance(state.get("o"), int):
                raise ApiError(400, "cursor does not belong to this list")
            offset, total = state["o"], state.get("n", total)
        page = records[offset:offset + limit]
        nxt = encode_cursor({"r": resource, "o": offset + limit, "n": total}) if offset + limit < len(records) else None
        return self._envelope(total, nxt, [r.body if hasattr(r, "body") else orjson.dumps(r) for r in page])

    def _dossiers(self, params: dict, limit: int) -> tuple[int, dict, bytes]:
        frm_raw, to_raw = params.get("updated_from"), params.get("updated_to")
        if not frm_raw or not to_raw:
            raise ApiError(400, "updated_from and updated_to are required")
        frm_dt, to_dt = parse_timestamp(frm_raw), parse_timestamp(to_raw)
        if frm_dt is None or to_dt is None:
            raise ApiError(400, "updated_from and updated_to must be yyyyMMddHHmmss")
        frm, to = to_secs(frm_dt), to_secs(to_dt)
        if to < frm:
            raise ApiError(400, "updated_to is before updated_from")
        if to - frm > MAX_WINDOW:
            raise ApiError(400, "window longer than 31 days")
        don_vi = params.get("don_vi") or None
        mask = None
        if don_vi is not None:
            mask = self.province.subtree_mask(don_vi)
            if mask is None:
                raise ApiError(400, f"unknown don_vi {don_vi}")
        after, total = None, None
        if params.get("cursor"):
            state = decode_cursor(params["cursor"])
            if (state.get("f"), state.get("t"), state.get("d")) != (frm, to, don_vi):
                raise ApiError(400, "cursor does not belong to this query")
            after, total = (state["u"], state["k"]), state["n"]
        if total is None:
            total = self.province.count(frm, to, mask)
        records, nxt = self.province.page_json(frm, to, mask, after, limit)
        if nxt is not None and self._roll(self.faults.duplicate) and len(records) > 3:
            # A record "updated while paging": the next page starts a few records back.
            try:
                back = orjson.loads(records[-1 - self._rng.randint(1, 3)])
                nxt = self.province.position_of(back["MaHoSo"], back["NgayCapNhat"]) or nxt
            except (orjson.JSONDecodeError, KeyError, TypeError):
                pass  # a raw record (simulator.static.RawRecord): no step back
        cursor = encode_cursor({"f": frm, "t": to, "d": don_vi, "u": nxt[0], "k": nxt[1], "n": total}) if nxt else None
        return self._envelope(total, cursor, records, dossiers=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    api: ProcedureApi
    quiet = True

    def _serve(self, method: str) -> None:
        status, headers, body = self.api.handle(method, self.path, {k.lower(): v for k, v in self.headers.items()})
        truncate = status == 200 and self.api._roll(self.api.faults.truncate)
        cut = body[: max(1, len(body) // 2)] if truncate else body
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        # Half the truncations announce the full length and hang up early, half announce the short body.
        announced = len(body) if truncate and self.api._roll(0.5) else len(cut)
        self.send_header("Content-Length", str(announced))
        if announced != len(cut):
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(cut)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def log_message(self, fmt: str, *args) -> None:
        if not self.quiet:
            super().log_message(fmt, *args)


def make_server(api: ProcedureApi, host: str, port: int, quiet: bool = True) -> ThreadingHTTPServer:
    """A threading HTTP server bound to (host, port) serving ``api``; port 0 picks a free port."""
    handler = type("Handler", (_Handler,), {"api": api, "quiet": quiet})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server

