"""``make serve``: everything the pipeline writes, behind one local URL, read-only.

    python -m ops.serve                 # http://127.0.0.1:8090/ (SERVE_PORT)
    python -m ops.serve --port 9000

One index page (``/``) links what users open: the morning report (``/report/latest.html`` and the
earlier nights), the monthly publications (``/cong-khai/``, page and workbook per month), the
data-quality digests (``/dq-digest/``), the Great Expectations Data Docs (``/data-docs/``), the dbt docs
site (``/dbt-docs/``, written every night), the alert log; the last run's state (``pipeline.runs``, when the
warehouse answers); and the Airflow UI and the Superset dashboards, each marked running or not.

Decisions:
- **Read-only and local.** The server binds 127.0.0.1 only and answers ``GET`` and ``HEAD``; every other
  method is refused with 405. Sharing it beyond the machine is a reverse proxy's job (TLS, logins), not a
  development server's.
- **Only what is published.** Files are served from ``REPORTS_DIR`` and nowhere else: a path that leaves
  it (``..``, a symbolic link pointing out) is 404, and so is a hidden name (the ``.``-prefixed temporary
  files the writers rename into place), so a half-written file is never served. No directory listings
  beyond the index pages this module writes.
- **Nothing cached.** ``Cache-Control: no-cache``: the next morning's report replaces ``latest.html``
  under the same name. ``X-Content-Type-Options: nosniff`` so a digest is shown as the text it is.
- The standard library's threaded HTTP server: the readers are a handful of people on one machine.
"""

from __future__ import annotations

import argparse
import html
import mimetypes
import os
import socket
import sys
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bi import MORNING, dashboard_path
from pipeline.settings import FrontDoorSettings, Settings, SupersetSettings

HOST = "127.0.0.1"
TEXT_TYPES = {".txt": "text/plain; charset=utf-8", ".log": "text/plain; charset=utf-8",
              ".html": "text/html; charset=utf-8", ".json": "application/json",
              ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


@dataclass(frozen=True)
class Link:
    """A service the index links to: its title, URL, and whether something listens there."""

    title: str
    url: str
    note: str

    def up(self) -> bool:
        parts = urlsplit(self.url)
        try:
            with socket.create_connection((parts.hostname, parts.port or 80), timeout=0.3):
                return True
        except OSError:
            return False


def serve_port() -> int:
    """``SERVE_PORT`` (``FrontDoorSettings``)."""
    return FrontDoorSettings.from_env().serve_port


def services() -> list[Link]:
    """The Airflow UI (``make airflow``) and the morning dashboard (``make superset``; the data-quality one is
    linked from there)."""
    airflow_port = os.environ.get("AIRFLOW__API__PORT", "8080")  # Airflow's own setting (ops.stack)
    superset_port = SupersetSettings.from_env().port
    return [Link("Airflow", f"http://127.0.0.1:{airflow_port}/", "the nightly DAG's runs and logs (make airflow)"),
            Link("Superset", f"http://127.0.0.1:{superset_port}{dashboard_path(MORNING)}",
                 "the morning dashboard, and the data-quality one (make superset)")]


def _files(folder: Path, pattern: str) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.glob(pattern) if p.is_file() and not p.name.startswith(".")
                   and p.name != "latest.html" and p.name != "latest.txt"), reverse=True)


def _href(root: Path, path: Path) -> str:
    return "/" + "/".join(path.relative_to(root).parts)


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


def _list(root: Path, paths: list[Path], limit: int | None = None) -> str:
    shown = paths if limit is None else paths[:limit]
    items = "".join(f'<li><a href="{html.escape(_href(root, p))}">{html.escape(p.name)}</a></li>' for p in shown)
    more = f"<li>… and {len(paths) - len(shown)} more</li>" if len(shown) < len(paths) else ""
    return f"<ul>{items}{more}</ul>"


def _one(root: Path, path: Path, label: str, missing: str) -> str:
    if path.is_file():
        return f'<p><a href="{html.escape(_href(root, path))}">{html.escape(label)}</a></p>'
    return f'<p class="missing">{html.escape(missing)}</p>'


def serve_settings(env=None) -> Settings:
    """The settings the front door needs: the reports folder, and the warehouse when one is known — a fresh
    machine with no warehouse yet still gets its index (which says so)."""
    from warehouse.errors import WarehouseError

    try:
        return Settings.from_env(env)
    except WarehouseError:
        return Settings.from_env(env, warehouse_url="")


def _run_state(settings: Settings) -> str:
    if not settings.warehouse_url:
        return "<pre>no warehouse is configured or running yet: make run starts one</pre>"
    try:
        from pipeline.runs import status_lines

        lines = status_lines(settings)
    except Exception as exc:  # the index still opens when the warehouse is down
        lines = [f"the warehouse does not answer ({type(exc).__name__})"]
    return "<pre>" + html.escape("\n".join(lines)) + "</pre>"


def index_page(settings: Settings, with_state: bool = True) -> str:
    """The front page: every published thing under ``REPORTS_DIR``, the last run, the linked services."""
    root = settings.reports_dir
    never = "not written yet: the nightly run writes it (make run)"
    months = _files(root / "cong-khai", "cong-khai-*.*")
    parts = [
        _section("Báo cáo sáng — morning report",
                 _one(root, root / "report" / "latest.html", "the latest night's report", never)
                 + _list(root, _files(root / "report", "bao-cao-*.html"), limit=14)),
        _section("Công khai hằng tháng — monthly publications",
                 _list(root, months) if months else f'<p class="missing">{never}</p>'),
        _section("Chất lượng dữ liệu — data-quality digests",
                 _one(root, root / "dq-digest" / "latest.txt", "the latest digest", never)
                 + _list(root, _files(root / "dq-digest", "*.txt"), limit=14)
                 + _one(root, root / "data-docs" / "index.html", "Great Expectations Data Docs (every validation)",
                        never)
                 + _one(root, root / "alerts.log", "alerts.log (every alert sent, one JSON line each)",
                        "no alert yet")),
        _section("Mô hình dữ liệu — the warehouse's models",
                 _one(root, root / "dbt-docs" / "index.html",
                      "dbt docs: every model, column, test and the lineage from the API to the marts", never)),
    ]
    links = "".join(
        f'<li><a href="{html.escape(s.url)}">{html.escape(s.title)}</a> — {html.escape(s.note)}: '
        f'<span class="{"up" if s.up() else "down"}">{"running" if s.up() else "not running"}</span></li>'
        for s in services())
    parts.append(_section("Công cụ — tools", f"<ul>{links}</ul>"))
    if with_state:
        parts.insert(0, _section("Lần chạy gần nhất — the last run", _run_state(settings)))
    return ("<!doctype html><html lang=\"vi\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<title>CCHC — Quảng Nam: theo dõi cải cách hành chính</title><style>"
            "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1d2733}"
            "h1{font-size:1.5rem}h2{font-size:1.1rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem}"
            "pre{background:#f6f8fa;padding:.6rem;white-space:pre-wrap}.missing{color:#6a737d}"
            ".up{color:#1a7f37}.down{color:#9a6700}</style></head><body>"
            "<h1>Theo dõi cải cách hành chính — Quảng Nam</h1>"
            f"<p>Everything the nightly pipeline publishes, from <code>{html.escape(str(root))}</code>.</p>"
            + "".join(parts) + "</body></html>")


class Handler(BaseHTTPRequestHandler):
    """GET and HEAD of the index and of files under the reports folder; nothing else."""

    server_version = "cchc-serve"
    settings: Settings

    def log_message(self, format: str, *args) -> None:  # one line per request on stderr, as usual
        sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, head: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _refuse(self) -> None:
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"read-only: GET and HEAD only\n", "text/plain; charset=utf-8",
                   head=False)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse

    def do_HEAD(self) -> None:
        self._get(head=True)

    def do_GET(self) -> None:
        self._get(head=False)

    def _resolve(self, url_path: str) -> Path | None:
        """The file under the reports folder this path names, or ``None`` (outside, hidden, absent)."""
        root = self.settings.reports_dir.resolve()
        parts = [p for p in unquote(url_path).split("/") if p]
        if any(p.startswith(".") or "\\" in p or "\x00" in p for p in parts):
            return None
        target = root.joinpath(*parts) if parts else root
        if target.is_dir():
            target = target / "index.html"
        try:
            resolved = target.resolve()
        except (OSError, RuntimeError):
            return None
        if not resolved.is_relative_to(root) or not resolved.is_file():
            return None
        return resolved

    def _get(self, head: bool) -> None:
        path = urlsplit(self.path).path
        if path in ("/", "/index.html"):
            body = index_page(self.settings).encode("utf-8")
            self._send(HTTPStatus.OK, body, "text/html; charset=utf-8", head)
            return
        found = self._resolve(path)
        if found is None and path.rstrip("/") in ("/report", "/cong-khai", "/dq-digest"):
            self.send_response(HTTPStatus.FOUND)  # a folder without a page of its own: the index lists it
            self.send_header("Location", "/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if found is None:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8", head)
            return
        content_type = TEXT_TYPES.get(found.suffix) or mimetypes.guess_type(found.name)[0] or "application/octet-stream"
        self._send(HTTPStatus.OK, found.read_bytes(), content_type, head)


def make_server(settings: Settings, port: int) -> ThreadingHTTPServer:
    """The server on 127.0.0.1:``port`` (0: a free port), not yet serving."""
    handler = type("BoundHandler", (Handler,), {"settings": settings})
    server = ThreadingHTTPServer((HOST, port), handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.serve", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=None, help="default SERVE_PORT (8090)")
    args = parser.parse_args(argv)
    settings = serve_settings()
    port = serve_port() if args.port is None else args.port
    try:
        server = make_server(settings, port)
    except OSError as exc:
        print(f"cannot listen on {HOST}:{port}: {exc.strerror}; choose another with SERVE_PORT or --port",
              file=sys.stderr)
        return 2
    print(f"serving {settings.reports_dir} read-only at http://{HOST}:{server.server_address[1]}/ (Ctrl-C stops)",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
