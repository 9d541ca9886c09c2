"""Installing a tool the tests need from Debian's package (``tests/support/browser.py``: Chromium,
``tests/support/redis.py``: redis-server): ``apt-get install -y --no-install-recommends <package>``, after
``apt-get update`` when the package lists do not know it, once more after an update when the install fails —
which needs root. When it cannot, it raises the caller's error with what to do."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable


def _apt(args: tuple[str, ...], timeout: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", *args], env=env, text=True, capture_output=True, timeout=timeout, check=False)


def install_debian_package(package: str, find: Callable[[], str | None], unavailable: type[Exception], *,
                           missing: str, manual: str, instead: str, timeout: int) -> str:
    """Install ``package`` and return ``find()``'s executable, or raise ``unavailable``. The messages start with
    ``missing`` (what is not there); ``manual`` is what to do without apt-get, ``instead`` the alternative to
    running apt-get as root."""
    if shutil.which("apt-get") is None:
        raise unavailable(f"{missing} and no apt-get to install it: {manual}")
    if os.geteuid() != 0:
        raise unavailable(f"{missing} and not root to install it: run `sudo apt-get install -y "
                          f"--no-install-recommends {package}` {instead}")
    known = subprocess.run(["apt-cache", "policy", package], text=True, capture_output=True, check=False)
    if "Candidate:" not in known.stdout or "Candidate: (none)" in known.stdout:
        update = _apt(("update",), timeout)
        if update.returncode != 0:
            raise unavailable(f"{missing}; `apt-get update` failed:\n{update.stderr[-2000:]}")
    install = _apt(("install", "-y", "--no-install-recommends", package), timeout)
    if install.returncode != 0:
        # Stale package lists point at files the mirror no longer has: refresh them and try once more.
        _apt(("update",), timeout)
        install = _apt(("install", "-y", "--no-install-recommends", package), timeout)
    found = find()
    if install.returncode != 0 or found is None:
        raise unavailable(f"{missing} and `apt-get install {package}` failed "
                          f"(exit {install.returncode}):\n{install.stderr[-2000:]}")
    return found
