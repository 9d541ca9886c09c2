"""A small client of Superset's REST API (standard library only: it also runs in the compose Superset image).

``SupersetClient(url).login(username, password)`` gets a JWT access token (``POST /api/v1/security/login``)
and a CSRF token bound to the session cookie (``GET /api/v1/security/csrf_token/``); every later call
sends both. What the project uses:

- ``import_assets(zip_bytes, passwords)``: ``POST /api/v1/assets/import/``, the import that overwrites
  databases, datasets, charts and dashboards alike (the dashboard import keeps existing charts and datasets
  unchanged). The warehouse password travels in the request's ``passwords`` field, over loopback or the
  compose network: on no command line and in no file.
- ``export_dashboards(ids)``: ``GET /api/v1/dashboard/export/``, the zip the UI's export gives.
- ``dashboards()``, ``chart_data(chart_id)`` (the chart's saved query, run by Superset as its database
  connection: ``GET /api/v1/chart/<id>/data/``), ``get``.

Errors are ``SupersetAPIError`` with the status and the start of the answer (never the request's body).
"""

from __future__ import annotations

import http.cookiejar
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any


class SupersetAPIError(RuntimeError):
    """Superset answered with an error status, or not at all."""


class SupersetClient:
    """A logged-in session with one Superset (see the module docstring)."""

    def __init__(self, url: str, timeout: float = 120.0):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self._cookies))
        self._headers: dict[str, str] = {"Accept": "application/json", "Referer": self.url + "/"}

    def _request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None,
                 params: dict | None = None) -> tuple[bytes, str]:
        url = self.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        request = urllib.request.Request(url, data=body, method=method, headers=dict(self._headers))
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            with self._opener.open(request, timeout=self.timeout) as answer:
                return answer.read(), answer.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:1500]
            raise SupersetAPIError(f"{method} {path}: HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise SupersetAPIError(f"{method} {path}: {exc}") from None

    def call(self, method: str, path: str, payload: Any = None, params: dict | None = None) -> Any:
        """A JSON call; returns the decoded answer."""
        body = None if payload is None else json.dumps(payload).encode()
        data, _ = self._request(method, path, body, "application/json" if body is not None else None, params)
        return json.loads(data) if data.strip() else None

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params=params or None)

    def login(self, username: str, password: str) -> SupersetClient:
        """Log in as ``username`` (database authentication); returns self."""
        token = self.call("POST", "/api/v1/security/login",
                          {"username": username, "password": password, "provider": "db", "refresh": False})
        self._headers["Authorization"] = "Bearer " + token["access_token"]
        self._headers["X-CSRFToken"] = self.get("/api/v1/security/csrf_token/")["result"]
        return self

    def wait_healthy(self, timeout: float) -> None:
        """Wait until ``/health`` answers (the compose import starts beside the server)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                data, _ = self._request("GET", "/health")
                if data.strip() == b"OK":
                    return
            except SupersetAPIError:
                pass
            if time.monotonic() > deadline:
                raise SupersetAPIError(f"{self.url} not healthy after {timeout:.0f}s")
            time.sleep(1)

    def import_assets(self, bundle: bytes, passwords: dict[str, str]) -> None:
        """Import a zip of assets, overwriting what has the same uuid; ``passwords`` maps a database file of the
        bundle (``databases/x.yaml``) to its password."""
        boundary = uuid.uuid4().hex
        parts = [
            (f'--{boundary}\r\nContent-Disposition: form-data; name="bundle"; filename="bundle.zip"\r\n'
             "Content-Type: application/zip\r\n\r\n").encode() + bundle + b"\r\n",
            (f'--{boundary}\r\nContent-Disposition: form-data; name="passwords"\r\n\r\n'
             f"{json.dumps(passwords)}\r\n").encode(),
            f"--{boundary}--\r\n".encode(),
        ]
        data, _ = self._request("POST", "/api/v1/assets/import/", b"".join(parts),
                                f"multipart/form-data; boundary={boundary}")
        answer = json.loads(data)
        if answer.get("message") != "OK":
            raise SupersetAPIError(f"import: {answer}")

    def dashboards(self) -> list[dict]:
        """Every dashboard: id, slug, title."""
        query = "(columns:!(id,slug,dashboard_title),page_size:100)"
        return self.get("/api/v1/dashboard/", q=query)["result"]

    def export_dashboards(self, ids: list[int]) -> bytes:
        """The export zip of dashboards ``ids`` with their charts, datasets and database (no password)."""
        data, _ = self._request("GET", "/api/v1/dashboard/export/", params={"q": "!(" + ",".join(map(str, ids)) + ")"})
        return data

    def chart_data(self, chart_id: int) -> dict:
        """The result of chart ``chart_id``'s saved query (its query context), as the dashboard gets it."""
        return self.get(f"/api/v1/chart/{chart_id}/data/", format="json", type="full")
