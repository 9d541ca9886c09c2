"""Headless Chromium driven over the DevTools protocol, for pages that need a session (a logged-in web app).

``tests.support.browser.render`` opens a file with Chromium's command line; a web application behind a login
needs more: a page that keeps its cookies between requests, scripts run in it, its network traffic seen, and
a screenshot taken once it has drawn. ``DevToolsBrowser`` starts Debian's Chromium (the same executable, the
same flags) with ``--remote-debugging-port=0`` on a private profile and talks to its page over the
protocol's WebSocket (the ``websockets`` client)::

    with DevToolsBrowser(width=1600, height=2400) as page:
        page.navigate("http://127.0.0.1:8088/login/")
        page.evaluate("1 + 1")
        page.wait_for("document.readyState === 'complete'", timeout=30)
        page.screenshot(Path("shot.png"))

Every protocol event is kept (``events``), so a test can tell which requests the page sent and how they
ended (``responses``). The debugging port listens on 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import json
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from tests.support.browser import FLAGS, chromium

START_TIMEOUT = 30.0


class DevToolsError(RuntimeError):
    """The browser failed to start, or a protocol command failed."""


@dataclass
class Response:
    """A response the page received: its URL, status and request id (``body`` fetches the body)."""

    request_id: str
    url: str
    status: int
    method: str = "GET"
    finished: bool = False
    failed: str | None = None
    post_data: str | None = None


@dataclass
class DevToolsBrowser:
    """One headless Chromium with one page, driven over the DevTools protocol (see the module docstring)."""

    width: int = 1600
    height: int = 2400
    events: list[dict] = field(default_factory=list)
    _next_id: int = 0

    def __enter__(self) -> DevToolsBrowser:
        # Chromium's helper processes may still write into the profile while it exits: ignore what they leave.
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-devtools-", ignore_cleanup_errors=True)
        profile = Path(self._profile.name)
        self._proc = subprocess.Popen(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-address=127.0.0.1",
             "--remote-debugging-port=0", f"--window-size={self.width},{self.height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            self._ws = self._connect(profile)
            self.send("Page.enable")
            self.send("Network.enable")
            self.send("Runtime.enable")
            self.send("Emulation.setDeviceMetricsOverride",
                      width=self.width, height=self.height, deviceScaleFactor=1, mobile=False)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        ws = getattr(self, "_ws", None)
        if ws is not None:
            ws.close()
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._profile.cleanup()

    def _connect(self, profile: Path) -> ClientConnection:
        # Chromium writes the port it chose, then the browser's WebSocket path, into DevToolsActivePort.
        deadline = time.monotonic() + START_TIMEOUT
        port_file = profile / "DevToolsActivePort"
        while not port_file.exists() or len(port_file.read_text().split()) < 2:
            if self._proc.poll() is not None:
                raise DevToolsError(f"Chromium exited ({self._proc.returncode}): {self._proc.stderr.read()[-3000:]}")
            if time.monotonic() > deadline:
                raise DevToolsError(f"Chromium wrote no DevToolsActivePort within {START_TIMEOUT:.0f}s")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as answer:
                pages = [t for t in json.load(answer) if t.get("type") == "page"]
            if pages:
                return connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=START_TIMEOUT)
            if time.monotonic() > deadline:
                raise DevToolsError("Chromium opened no page")
            time.sleep(0.05)

    # ----------------------------------------------------------------------------------------- protocol

    def send(self, method: str, timeout: float = 60.0, **params: Any) -> dict:
        """Run one protocol command and return its result; events that arrive meanwhile are kept."""
        self._next_id += 1
        call_id = self._next_id
        self._ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self._ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            if message.get("id") == call_id:
                if "error" in message:
                    raise DevToolsError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def pump(self, seconds: float) -> None:
        """Collect the events that arrive within ``seconds``."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = json.loads(self._ws.recv(timeout=left))
            except TimeoutError:
                return
            if "method" in message:
                self.events.append(message)

    def evaluate(self, expression: str, timeout: float = 60.0) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.send("Runtime.evaluate", timeout=timeout, expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise DevToolsError(f"{expression[:200]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def navigate(self, url: str, timeout: float = 60.0) -> None:
        """Open ``url`` and wait until its document has loaded."""
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'", timeout)

    def wait_for(self, expression: str, timeout: float, interval: float = 0.2) -> Any:
        """Poll a JavaScript expression until it is truthy; returns its value, raises after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise DevToolsError(f"not true after {timeout:.0f}s: {expression}")
            self.pump(interval)

    # ----------------------------------------------------------------------------------------- network

    def responses(self, url_part: str = "") -> list[Response]:
        """The page's requests whose URL contains ``url_part``, with their status and whether they ended."""
        by_id: dict[str, Response] = {}
        for event in self.events:
            params = event.get("params", {})
            request_id = params.get("requestId")
            if event["method"] == "Network.requestWillBeSent" and url_part in params["request"]["url"]:
                by_id[request_id] = Response(request_id, params["request"]["url"], 0, params["request"]["method"],
                                             post_data=params["request"].get("postData"))
            elif request_id in by_id:
                if event["method"] == "Network.responseReceived":
                    by_id[request_id].status = params["response"]["status"]
                elif event["method"] == "Network.loadingFinished":
                    by_id[request_id].finished = True
                elif event["method"] == "Network.loadingFailed":
                    by_id[request_id].failed = params.get("errorText", "failed")
        return list(by_id.values())

    def body(self, response: Response) -> str:
        """The body of a finished response."""
        result = self.send("Network.getResponseBody", requestId=response.request_id)
        return base64.b64decode(result["body"]).decode() if result.get("base64Encoded") else result["body"]

    # ----------------------------------------------------------------------------------------- pictures

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        """A PNG of the page (the whole scrollable height when ``full_page``)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            height = self.evaluate("Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)")
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": self.width, "height": max(self.height, int(height)),
                                "scale": 1})
        data = self.send("Page.captureScreenshot", **params)["data"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path
