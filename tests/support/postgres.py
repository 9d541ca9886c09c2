"""Throw-away warehouse clusters for tests.

``throwaway_warehouse(tmp_dir)`` initialises a private cluster under ``tmp_dir`` on a free port, bootstraps
it and yields its URLs; on exit it stops the server and deletes the cluster. It ignores WAREHOUSE_URL,
WAREHOUSE_PORT and the other per-warehouse variables, so tests never touch a developer's running warehouse
(only WAREHOUSE_OS_USER and WAREHOUSE_PG_BIN, which describe the machine, are honoured).

The clusters one test process starts take the ports it used before, the first one free: dbt hashes the
connection (host, port, user, database) into its parse state and parses the whole project again (some 5 s of
CPU) whenever it changes, so each test file would otherwise pay a full parse on its first dbt command. A
cluster started while the process' others are up (a session's warehouse beside a test's) gets the next of
its ports, or a new free one. Example session fixture::

    @pytest.fixture(scope="session")
    def warehouse(tmp_path_factory):
        with throwaway_warehouse(tmp_path_factory.mktemp("warehouse")) as wh:
            yield wh
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ops.stack import port_taken
from warehouse.bootstrap import bootstrap
from warehouse.cluster import PrivateCluster
from warehouse.config import Settings, resolve_urls
from warehouse.errors import WarehouseError

log = logging.getLogger(__name__)

# Durability is pointless for a cluster deleted after the run; these make it faster and
# lighter beside a developer's own warehouse.
TEST_SERVER_SETTINGS = {
    "shared_buffers": "32MB",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}
MACHINE_VARIABLES = ("WAREHOUSE_OS_USER", "WAREHOUSE_PG_BIN")
PORT_ATTEMPTS = 3


@dataclass(frozen=True)
class ThrowawayWarehouse:
    """A running, bootstrapped test warehouse."""

    settings: Settings
    cluster: PrivateCluster
    urls: dict[str, str]  # keys: admin, writer, bi_reader

    @property
    def port(self) -> int:
        """The TCP port the server listens on (127.0.0.1)."""
        return self.settings.port


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it for a port-0 bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


_ports: list[int] = []  # the ports this process' clusters have taken, in the order it found them


def _usual_port() -> int:
    """The first of this process' ports nothing listens on now, or a new free one (kept for the next)."""
    port = next((p for p in _ports if not port_taken("127.0.0.1", p)), None)
    if port is None:
        _ports.append(port := free_port())
    return port


def warehouse_settings(base_dir: Path, port: int, env: Mapping[str, str] | None = None) -> Settings:
    """Settings of a test warehouse in ``base_dir`` on ``port``; ``env`` adds variables."""
    environ = {name: os.environ[name] for name in MACHINE_VARIABLES if name in os.environ}
    environ.update(
        WAREHOUSE_DATA_DIR=str(base_dir / "pgdata"),
        WAREHOUSE_PORT=str(port),
        WAREHOUSE_START_TIMEOUT="30",
    )
    environ.update(env or {})
    return Settings.from_env(environ)


@contextmanager
def throwaway_warehouse(tmp_dir: Path, env: Mapping[str, str] | None = None,
                        server_settings: Mapping[str, str] | None = None) -> Iterator[ThrowawayWarehouse]:
    """Start and bootstrap a private cluster under ``tmp_dir``; stop and delete it on exit.

    ``env`` holds extra warehouse variables (e.g. role names) for this cluster only;
    ``server_settings`` replaces the fast, non-durable test settings (benchmarks pass ``{}`` to measure
    the production configuration).
    """
    base_dir = Path(tmp_dir).resolve() / "warehouse"
    cluster = None
    try:
        for attempt in range(1, PORT_ATTEMPTS + 1):
            port = _usual_port() if attempt == 1 else free_port()
            settings = warehouse_settings(base_dir, port, env)
            cluster = PrivateCluster.from_settings(
                settings, server_settings=TEST_SERVER_SETTINGS if server_settings is None else dict(server_settings))
            cluster.init()
            try:
                cluster.start()
                break
            except WarehouseError as exc:
                # Another process may grab the free port between probe and start: retry.
                if "already in use" not in str(exc) or attempt == PORT_ATTEMPTS:
                    raise
                log.warning("Test port %s taken meanwhile, retrying", settings.port)
        bootstrap(settings)
        yield ThrowawayWarehouse(settings, cluster, resolve_urls(settings))
    finally:
        try:
            if cluster is not None:
                cluster.stop()
        finally:
            shutil.rmtree(base_dir, ignore_errors=True)
