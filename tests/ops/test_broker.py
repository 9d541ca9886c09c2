"""The private Redis broker of ``make airflow-celery`` (``ops.broker``) for real: started from the machine's
``redis-server`` as the supervisor starts it, it answers only with its password, which no process' command line
shows, and keeps its configuration and password in files only their owner reads."""

from __future__ import annotations

import os
import pwd
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ops.broker import RedisBroker
from pipeline.settings import CelerySettings
from tests.support.postgres import free_port
from tests.support.redis import redis_server


def command_lines(pgid: int) -> list[str]:
    """The command lines of the live processes of process group ``pgid``."""
    lines = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.getpgid(int(entry.name)) == pgid:
                lines.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, ProcessLookupError):
            continue
    return lines


def test_the_private_broker_answers_only_with_its_password_which_no_command_line_shows(tmp_path):
    redis_server()
    settings = CelerySettings.from_env({"REDIS_DATA_DIR": str(tmp_path / "redis"), "REDIS_PORT": str(free_port())})
    broker = RedisBroker(settings)
    broker.prepare()
    log = (tmp_path / "redis.log").open("w")
    server = subprocess.Popen(broker.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not broker.ping():
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "redis.log").read_text()
            time.sleep(0.1)
        password = broker.password()
        client = redis.Redis(port=settings.redis_port, password=password)
        client.lpush("q", b"message")
        assert client.rpop("q") == b"message"
        client.close()
        once = Retry(NoBackoff(), 0)  # redis-py retries a refused login, with backoff, by default
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=settings.redis_port, retry=once).ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=settings.redis_port, password="not-it", retry=once).ping()
        lines = command_lines(server.pid)
        assert any("redis-server" in line for line in lines)
        assert not any(password in line for line in lines), lines
        if os.geteuid() == 0:  # the server runs as the unprivileged user, which owns its configuration
            users = {pwd.getpwuid(Path(f"/proc/{pid}").stat().st_uid).pw_name
                     for pid in (int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit())
                     if _in_group(pid, server.pid) and _name(pid) == "redis-server"}
            assert users == {settings.redis_os_user}
            assert pwd.getpwuid(broker.config_file.stat().st_uid).pw_name == settings.redis_os_user
        for path in (broker.config_file, settings.redis_data_dir / "password"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
        log.close()
    assert not broker.ping()


def _in_group(pid: int, pgid: int) -> bool:
    try:
        return os.getpgid(pid) == pgid
    except ProcessLookupError:
        return False


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
