"""A real headless browser for tests: Chromium, found on PATH or installed from Debian's package.

``chromium()`` returns the browser's executable. When none of ``chromium``, ``chromium-browser`` or
``google-chrome`` is on PATH it installs Debian's ``chromium`` package (``apt-get install -y
--no-install-recommends chromium``, after ``apt-get update`` when the package lists do not know it) —
which needs root. When it cannot, it raises ``BrowserUnavailable`` with what to do: a test that needs
the browser fails with that message rather than silently skipping.

``render(html_file, png)`` loads a local file the way a reader opens it from disk (``file://``), takes a
screenshot and returns the DOM after scripts ran (``--dump-dom``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from tests.support.apt import install_debian_package

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
DEBIAN_PACKAGE = "chromium"
INSTALL_TIMEOUT = 900
RENDER_TIMEOUT = 120
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
         "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--metrics-recording-only", "--mute-audio")

_lock = threading.Lock()


class BrowserUnavailable(RuntimeError):
    """No Chromium on PATH and it could not be installed."""


@dataclass(frozen=True)
class Rendered:
    dom: str
    screenshot: Path


def find_chromium() -> str | None:
    """The first browser of ``CANDIDATES`` on PATH (``CHROMIUM`` overrides), else None."""
    if os.environ.get("CHROMIUM"):
        return shutil.which(os.environ["CHROMIUM"]) or os.environ["CHROMIUM"]
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def install_chromium() -> str:
    """Install Debian's ``chromium`` package; returns the executable or raises ``BrowserUnavailable``."""
    return install_debian_package(DEBIAN_PACKAGE, find_chromium, BrowserUnavailable, missing="no Chromium on PATH",
                                  manual="install Chromium or Google Chrome (or set CHROMIUM to its executable)",
                                  instead="(or set CHROMIUM to a browser's executable)", timeout=INSTALL_TIMEOUT)


def chromium() -> str:
    """The browser's executable, installing it when missing (see the module's docstring)."""
    with _lock:
        return find_chromium() or install_chromium()


def _run(args: list[str]) -> subprocess.CompletedProcess:
    # A private profile: no state leaks between runs, and nothing of a developer's browser is touched.
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args], text=True,
                              capture_output=True, timeout=RENDER_TIMEOUT, check=False)


def render(html_file: Path, screenshot: Path, window_size: tuple[int, int] = (1400, 4000)) -> Rendered:
    """Open ``html_file`` from disk in headless Chromium: screenshot it to ``screenshot`` (PNG) and return the
    DOM as the browser built it. Raises ``RuntimeError`` with the browser's output when it fails."""
    url = Path(html_file).resolve().as_uri()
    screenshot = Path(screenshot).resolve()
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.unlink(missing_ok=True)
    size = f"--window-size={window_size[0]},{window_size[1]}"
    shot = _run([f"--screenshot={screenshot}", size, url])
    if shot.returncode != 0 or not screenshot.exists():
        raise RuntimeError(f"Chromium could not screenshot {url} (exit {shot.returncode}):\n{shot.stderr[-3000:]}")
    dom = _run(["--dump-dom", size, url])
    if dom.returncode != 0 or not dom.stdout.strip():
        raise RuntimeError(f"Chromium could not dump the DOM of {url} (exit {dom.returncode}):\n{dom.stderr[-3000:]}")
    return Rendered(dom.stdout, screenshot)
