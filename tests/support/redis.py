"""Redis for tests and benchmarks of the Celery stack: ``redis-server`` found where ``ops.broker`` looks for it,
or installed from Debian's package.

``redis_server()`` returns the server's executable. When there is none it installs Debian's ``redis-server``
package (``apt-get install -y --no-install-recommends redis-server``, after ``apt-get update`` when the
package lists do not know it), as ``tests/support/browser.py`` does for Chromium — which needs root. When it
cannot, it raises ``RedisUnavailable`` with what to do: what needs Redis fails with that message rather than
silently skipping. (The package's own service is not started where ``policy-rc.d`` forbids it, as in
containers; the project never uses it: it starts a private server.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading

from ops.broker import BrokerUnavailable, RedisBroker
from pipeline.settings import CelerySettings

DEBIAN_PACKAGE = "redis-server"
INSTALL_TIMEOUT = 600

_lock = threading.Lock()


class RedisUnavailable(RuntimeError):
    """No redis-server and it could not be installed."""


def find_redis_server() -> str | None:
    """The ``redis-server`` ``make airflow-celery`` would run (``REDIS_SERVER``, PATH, Debian's), else None."""
    try:
        return RedisBroker(CelerySettings.from_env()).binary()
    except BrokerUnavailable:
        return None


def _apt(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", *args], env=env, text=True, capture_output=True, timeout=INSTALL_TIMEOUT,
                          check=False)


def install_redis_server() -> str:
    """Install Debian's ``redis-server`` package; returns the executable or raises ``RedisUnavailable``."""
    if shutil.which("apt-get") is None:
        raise RedisUnavailable("no redis-server and no apt-get to install it: install Redis (or set REDIS_SERVER "
                               "to a redis-server binary)")
    if os.geteuid() != 0:
        raise RedisUnavailable("no redis-server and not root to install it: run `sudo apt-get install -y "
                               "--no-install-recommends redis-server` (or set REDIS_SERVER to a redis-server binary)")
    known = subprocess.run(["apt-cache", "policy", DEBIAN_PACKAGE], text=True, capture_output=True, check=False)
    if "Candidate:" not in known.stdout or "Candidate: (none)" in known.stdout:
        update = _apt("update")
        if update.returncode != 0:
            raise RedisUnavailable(f"no redis-server; `apt-get update` failed:\n{update.stderr[-2000:]}")
    install = _apt("install", "-y", "--no-install-recommends", DEBIAN_PACKAGE)
    if install.returncode != 0:
        _apt("update")  # stale package lists point at files the mirror no longer has
        install = _apt("install", "-y", "--no-install-recommends", DEBIAN_PACKAGE)
    found = find_redis_server()
    if install.returncode != 0 or found is None:
        raise RedisUnavailable(f"no redis-server and `apt-get install {DEBIAN_PACKAGE}` failed "
                               f"(exit {install.returncode}):\n{install.stderr[-2000:]}")
    return found


def redis_server() -> str:
    """The ``redis-server`` executable, installing it when missing (see the module's docstring)."""
    with _lock:
        return find_redis_server() or install_redis_server()
