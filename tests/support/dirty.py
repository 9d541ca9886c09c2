"""A "dirty source": the contract server, with a hand on every answer, to misbehave the way real servers do.

``dirty_source(province)`` serves ``province`` (a ``Province`` or a ``StaticProvince``) exactly as the
simulator does, except for requests a test's *rules* take over. A rule is a function of the request
(``DirtyRequest``: path, params, and ``real()`` — the answer the simulator would give) returning a
``Reply`` to send instead, or None to let it through. A ``Reply`` can drip its body (or its status line
and headers too) one byte at a time, announce a length it does not send, or carry any bytes at all.
Every request is logged with its arrival time, so tests can count retries and measure waits.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import orjson

from simulator.server import Faults, ProcedureApi


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json; charset=utf-8"})
    drip_seconds: float | None = None  # send the body one byte per this many seconds
    drip_head: bool = False  # ... and the status line and headers too
    announce: int | None = None  # the Content-Length to announce (default: the body's)
    chunked: bool = False  # no Content-Length: Transfer-Encoding chunked, 4 KiB chunks


@dataclass
class DirtyRequest:
    method: str
    path: str  # without the base path, e.g. "/dossiers"
    params: dict[str, str]
    api: ProcedureApi
    target: str
    headers: dict[str, str]

    def real(self) -> Reply:
        """The answer the contract server gives to this request."""
        status, headers, body = self.api.handle(self.method, self.target, self.headers)
        return Reply(status, body, dict(headers))

    def real_json(self) -> dict:
        return orjson.loads(self.real().body)


Rule = Callable[[DirtyRequest], Reply | None]


@dataclass
class DirtySource:
    url: str
    token: str
    api: ProcedureApi
    rules: list[Rule] = field(default_factory=list)
    log: list[tuple[float, str, dict]] = field(default_factory=list)  # (monotonic time, path, params)

    @property
    def province(self):
        return self.api.province

    def requests_to(self, path: str) -> list[tuple[float, dict]]:
        return [(t, p) for t, q, p in self.log if q == path]


def envelope(data: list[bytes], total: int, cursor: str | None = None) -> bytes:
    """A list envelope around records already serialised."""
    head = orjson.dumps({"error_code": "00", "message": "OK", "total": total, "next_cursor": cursor})
    return head[:-1] + b',"data":[' + b",".join(data) + b"]}"


def _handler(source: DirtySource, base: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args) -> None:
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            path = parts.path[len(base):] if parts.path.startswith(base) else parts.path
            params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            headers = {k.lower(): v for k, v in self.headers.items()}
            source.log.append((time.monotonic(), path, params))
            request = DirtyRequest("GET", path, params, source.api, self.path, headers)
            reply = None
            for rule in source.rules:
                reply = rule(request)
                if reply is not None:
                    break
            if reply is None:
                reply = request.real()
            self._send(reply)

        def _send(self, reply: Reply) -> None:
            length = reply.announce if reply.announce is not None else len(reply.body)
            head = [f"HTTP/1.1 {reply.status} X\r\n".encode()]
            head += [f"{k}: {v}\r\n".encode() for k, v in reply.headers.items()]
            if reply.chunked:
                head.append(b"Transfer-Encoding: chunked\r\n")
                step = 4096
                reply.body = b"".join(b"%x\r\n%s\r\n" % (len(reply.body[i:i + step]), reply.body[i:i + step])
                                      for i in range(0, len(reply.body), step)) + b"0\r\n\r\n"
            else:
                head.append(f"Content-Length: {length}\r\n".encode())
                if length != len(reply.body):
                    head.append(b"Connection: close\r\n")
                    self.close_connection = True
            head.append(b"\r\n")
            try:
                for chunk in (b"".join(head), reply.body):
                    if reply.drip_seconds is None or (chunk is not reply.body and not reply.drip_head):
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        continue
                    for i in range(len(chunk)):
                        self.wfile.write(chunk[i:i + 1])
                        self.wfile.flush()
                        time.sleep(reply.drip_seconds)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    return Handler


@contextmanager
def dirty_source(province, faults: Faults | None = None, rules: list[Rule] | None = None) -> Iterator[DirtySource]:
    """Serve ``province`` on 127.0.0.1:<free port> in a thread, with ``rules`` taking over requests."""
    token = secrets.token_urlsafe(16)
    api = ProcedureApi(province, token, "/api/v1", faults or Faults())
    source = DirtySource("", token, api, list(rules or []))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(source, "/api/v1"))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    source.url = f"http://{host}:{port}/api/v1"
    try:
        yield source
    finally:
        server.shutdown()
        server.server_close()
