"""Redis for tests and benchmarks of the Celery stack: ``redis-server`` found where ``ops.broker`` looks for it,
or installed from Debian's package.

``redis_server()`` returns the server's executable. When there is none it installs Debian's ``redis-server``
package (``apt-get install -y --no-install-recommends redis-server``, after ``apt-get update`` when the
package lists do not know it: ``tests/support/apt.py``), as for Chromium — which needs root. When it
cannot, it raises ``RedisUnavailable`` with what to do: what needs Redis fails with that message rather than
silently skipping. (The package's own service is not started where ``policy-rc.d`` forbids it, as in
containers; the project never uses it: it starts a private server.)
"""

from __future__ import annotations

import threading

from ops.broker import BrokerUnavailable, RedisBroker
from pipeline.settings import CelerySettings
from tests.support.apt import install_debian_package

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


def install_redis_server() -> str:
    """Install Debian's ``redis-server`` package; returns the executable or raises ``RedisUnavailable``."""
    return install_debian_package(DEBIAN_PACKAGE, find_redis_server, RedisUnavailable, missing="no redis-server",
                                  manual="install Redis (or set REDIS_SERVER to a redis-server binary)",
                                  instead="(or set REDIS_SERVER to a redis-server binary)", timeout=INSTALL_TIMEOUT)


def redis_server() -> str:
    """The ``redis-server`` executable, installing it when missing (see the module's docstring)."""
    with _lock:
        return find_redis_server() or install_redis_server()
