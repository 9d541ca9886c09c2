"""Private cluster lifecycle: idempotent start/stop, stale pid file, port conflicts, binaries."""

from __future__ import annotations

import logging
import os
import pwd
import socket
import stat
import subprocess
import time
from dataclasses import replace

import pytest

from tests.support.postgres import throwaway_warehouse
from warehouse import pgbin
from warehouse.cluster import PrivateCluster
from warehouse.errors import WarehouseError
from warehouse.osuser import make_traversable


@pytest.fixture(scope="module")
def wh(tmp_path_factory):
    with throwaway_warehouse(tmp_path_factory.mktemp("cluster")) as warehouse:
        yield warehouse


@pytest.fixture
def cluster(wh):
    """The module's cluster, guaranteed running again after each test."""
    yield wh.cluster
    wh.cluster.start()


def test_start_and_stop_are_idempotent(cluster):
    pid = cluster.status().pid
    assert cluster.start() is False
    assert cluster.status().pid == pid

    assert cluster.stop() is True
    assert cluster.stop() is False
    assert not cluster.is_running()
    assert cluster.status().running is False

    assert cluster.start() is True
    assert cluster.is_running()


def test_stale_pid_file_is_removed_with_a_message(cluster, caplog):
    pid_file = cluster.data_dir / "postmaster.pid"
    lines = pid_file.read_text().splitlines()
    cluster.stop()
    # Simulate a crash: a pid file left behind by a process that no longer exists.
    gone = subprocess.Popen(["true"])
    gone.wait()
    pid_file.write_text("\n".join([str(gone.pid), *lines[1:]]) + "\n")
    assert not cluster.is_running()

    with caplog.at_level(logging.INFO, logger="warehouse"):
        assert cluster.start() is True
    assert "stale" in caplog.text
    assert cluster.is_running()


def test_port_in_use_is_a_clear_error(wh, cluster):
    cluster.stop()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        blocked = PrivateCluster.from_settings(replace(wh.settings, port=port))
        started = time.monotonic()
        with pytest.raises(WarehouseError, match=f"port {port} .* already in use"):
            blocked.start()
        assert time.monotonic() - started < 5
    assert not blocked.is_running()


def test_failed_start_reports_the_server_log(wh, cluster):
    cluster.stop()
    broken = PrivateCluster.from_settings(wh.settings, server_settings={"shared_buffers": "lots"})
    with pytest.raises(WarehouseError, match=r"(?s)failed to start.*last lines of .*shared_buffers"):
        broken.start()
    assert not broken.is_running()


def test_missing_binaries_say_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(pgbin, "PACKAGE_BIN_GLOB", str(tmp_path / "*" / "bin"))
    with pytest.raises(WarehouseError, match="apt-get install postgresql-15") as excinfo:
        PrivateCluster(tmp_path / "pgdata", 55999).init()
    assert "WAREHOUSE_URL" in str(excinfo.value)
    assert not (tmp_path / "pgdata").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root switches to the PostgreSQL user")
def test_root_makes_private_ancestors_traversable(wh, tmp_path):
    user = pwd.getpwnam(wh.settings.os_user)
    hidden = tmp_path / "hidden"
    target = hidden / "project" / "pgdata"
    target.mkdir(parents=True)
    hidden.chmod(0o700)

    make_traversable(target, user)

    assert stat.S_IMODE(hidden.stat().st_mode) == 0o701  # search bit only, no read/write
    # The cluster itself lives under pytest's 0700 temp root and runs as that user.
    assert pwd.getpwuid(wh.cluster.data_dir.stat().st_uid).pw_name == user.pw_name


def test_a_table_built_in_one_transaction_skips_the_wal(wh):
    """The project's server settings (warehouse/cluster.py: wal_level minimal, one server with no standby): a
    table created and filled in one transaction — a dbt full build — is synced at commit, not copied into the
    WAL, while the same rows inserted into an existing table are WAL-logged."""
    import psycopg

    rows = "SELECT g AS id, md5(g::text) AS payload FROM generate_series(1, 100000) AS g"
    with psycopg.connect(wh.urls["writer"], autocommit=True) as conn:
        assert conn.execute("SHOW wal_level").fetchone()[0] == "minimal"

        def wal_bytes(*statements: str) -> int:
            start = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
            with conn.transaction():
                for statement in statements:
                    conn.execute(statement)
            return conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s)", (start,)).fetchone()[0]

        conn.execute(f"CREATE TABLE raw.wal_existing AS {rows} LIMIT 0")
        logged = wal_bytes(f"INSERT INTO raw.wal_existing {rows}")
        built = wal_bytes(f"CREATE TABLE raw.wal_built AS {rows}", "CREATE INDEX ON raw.wal_built (id)")
        conn.execute("DROP TABLE raw.wal_existing, raw.wal_built")
    table_bytes = 100000 * 70  # the heap alone, about 7 MB
    assert logged > table_bytes, logged
    assert built < table_bytes / 20, built
