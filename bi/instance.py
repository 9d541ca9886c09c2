"""A local Superset instance: its home folder, configuration, admin and web server.

``LocalInstance(home)`` keeps everything under ``home`` (``.local/superset/`` for ``make superset``, a tmp
folder in tests), private to the user (0700, files 0600):

- ``superset_config.py``: the configuration Superset reads (``SUPERSET_CONFIG_PATH``), that is
  ``bi/superset_settings.py``, a SECRET_KEY generated at the first start and kept, the SQLite metadata;
- ``superset.db``: the metadata (users, the warehouse connection, datasets, charts, dashboards), copied
  from the environment's migrated template at the first start;
- ``admin.json``: the admin's login, generated at the first start (``SUPERSET_ADMIN_USERNAME`` and
  ``SUPERSET_ADMIN_PASSWORD``, read by ``pipeline.settings.SupersetSettings``, override it);
- ``superset.log``: the web server's log; ``state.json``: the running server's URL and process
  (``python -m bi import`` and ``export`` find it there).

``prepare()`` writes the configuration, copies the template when there is no metadata yet (or migrates the
existing metadata when the environment changed since: a new lock file), then creates or updates the admin
(``bi/superset_setup.py``, one Superset process, given the admin in its environment: it runs in Superset's
own Python, which reads no project setting). ``start()`` runs gunicorn on 127.0.0.1 only and waits for
``/health``; ``stop()`` ends it. Decisions:

- SQLite metadata: a local instance has one user at a time; the compose stack uses PostgreSQL.
- gunicorn, one worker with 8 threads (``gthread``): Superset's production server, light enough for a
  laptop; the Flask development server is not used.
- The SECRET_KEY encrypts the stored warehouse password: it is generated once (``secrets.token_urlsafe``)
  and never rewritten, or Superset could no longer read the connection it stored.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bi import BI_DIR
from bi.environment import SupersetEnvironment, lock_hash, render_config, superset_process_env
from pipeline.settings import LOCAL_DIR, SupersetSettings

DEFAULT_HOME = LOCAL_DIR / "superset"
FIRST_ADMIN = "admin"  # the admin's name until SUPERSET_ADMIN_USERNAME says another
HOST = "127.0.0.1"
START_TIMEOUT = 240.0
SETUP_TIMEOUT = 600.0
KEY_LINE = re.compile(r"^SECRET_KEY = (['\"])(?P<key>[^'\"]+)\1$", re.M)


class SupersetError(RuntimeError):
    """The local Superset could not be set up or started."""


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_taken(port: int, host: str = HOST) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600 from the start, then renamed into place)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)


@dataclass
class LocalInstance:
    """One local Superset (see the module docstring)."""

    environment: SupersetEnvironment
    home: Path = DEFAULT_HOME
    port: int = SupersetSettings.port
    log: Callable[[str], None] = print
    _server: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def config(self) -> Path:
        return self.home / "superset_config.py"

    @property
    def metadata(self) -> Path:
        return self.home / "superset.db"

    @property
    def log_file(self) -> Path:
        return self.home / "superset.log"

    def process_env(self) -> dict[str, str]:
        return superset_process_env(self.config, self.home)

    # --------------------------------------------------------------------------------------- setup

    def admin(self, settings: SupersetSettings | None = None) -> tuple[str, str]:
        """The admin's (username, password): from the settings (``SUPERSET_ADMIN_*``), else those kept in
        ``admin.json``, else ``FIRST_ADMIN`` and a password generated once into ``admin.json``."""
        settings = settings or SupersetSettings.from_env()
        stored = self.home / "admin.json"
        saved = json.loads(stored.read_text()) if stored.exists() else {}
        username = settings.admin_username or saved.get("username") or FIRST_ADMIN
        password = settings.admin_password or saved.get("password") or secrets.token_urlsafe(18)
        if saved != {"username": username, "password": password}:
            _write_private(stored, json.dumps({"username": username, "password": password}))
        return username, password

    @staticmethod
    def admin_from(home: Path) -> tuple[str, str]:
        """The (username, password) a local instance under ``home`` keeps in ``admin.json``."""
        stored = home / "admin.json"
        if not stored.exists():
            raise SupersetError(f"no {stored}: start the local Superset once with `make superset`")
        saved = json.loads(stored.read_text())
        return saved["username"], saved["password"]

    def _secret_key(self) -> str:
        if self.config.exists():
            found = KEY_LINE.search(self.config.read_text())
            if found:
                return found["key"]
        return secrets.token_urlsafe(48)

    def prepare(self) -> None:
        """Configuration, metadata and admin, ready for ``start()`` (idempotent)."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.home.chmod(0o700)
        _write_private(self.config, render_config(self._secret_key(), self.metadata))
        stamp = self.home / "environment.json"
        step = "admin"
        if not self.metadata.exists():
            shutil.copyfile(self.environment.template, self.metadata)
            self.metadata.chmod(0o600)
        elif not stamp.exists() or json.loads(stamp.read_text()).get("lock") != lock_hash():
            step = "setup"  # metadata of another Superset build: migrate it, then the admin
        env = {**self.process_env(), **setup_env(*self.admin())}
        started = time.monotonic()
        proc = subprocess.run([str(self.environment.python), str(BI_DIR / "superset_setup.py"), step], env=env,
                              capture_output=True, text=True, timeout=SETUP_TIMEOUT, check=False)
        if proc.returncode != 0:
            raise SupersetError(f"superset_setup.py {step} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
        _write_private(stamp, json.dumps({"lock": lock_hash()}))
        self.log(f"bi: Superset metadata and admin ready in {time.monotonic() - started:.0f}s ({self.home})")

    # --------------------------------------------------------------------------------------- server

    def start(self, wait: bool = True) -> None:
        """Run the web server on 127.0.0.1:``port`` in the background; with ``wait``, until it answers."""
        if port_taken(self.port):
            raise SupersetError(f"port {self.port} is taken: stop what listens there or set SUPERSET_PORT")
        log = os.fdopen(os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
        self._server = subprocess.Popen(
            [str(self.environment.gunicorn), "--workers", "1", "--worker-class", "gthread", "--threads", "8",
             "--timeout", "120", "--bind", f"{HOST}:{self.port}", "--limit-request-line", "0",
             "--limit-request-field_size", "0", "superset.app:create_app()"],
            env=self.process_env(), cwd=self.home, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        _write_private(self.home / "state.json", json.dumps({"url": self.url, "pid": self._server.pid}))
        if wait:
            self.wait_healthy()

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until ``/health`` answers OK; raises with the log's tail when the server dies or is too slow."""
        started = time.monotonic()
        deadline = started + timeout
        while True:
            if self._server is not None and self._server.poll() is not None:
                raise SupersetError(f"Superset exited ({self._server.returncode}):\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as answer:
                    if answer.status == 200:
                        self.log(f"bi: Superset answers on {self.url} after {time.monotonic() - started:.0f}s")
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise SupersetError(f"Superset did not answer on {self.url} within {timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.25)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_file.read_text(errors="replace")[-chars:] if self.log_file.exists() else ""

    def stop(self) -> None:
        """Stop the web server this object started (its whole process group: the gunicorn master and worker)."""
        server, self._server = self._server, None
        if server is None or server.poll() is not None:
            return
        os.killpg(server.pid, 15)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait(timeout=10)
        (self.home / "state.json").unlink(missing_ok=True)

    def wait(self) -> int:
        """Block until the server exits (``make superset`` in the foreground); returns its exit status."""
        return self._server.wait() if self._server else 0


def setup_env(username: str, password: str) -> dict[str, str]:
    """The admin as ``bi/superset_setup.py`` takes it (its environment, on no command line). The script runs
    in Superset's own Python and reads these from the environment its caller prepares: here, from the
    settings; in the compose stack, from the env file."""
    return {"SUPERSET_ADMIN_USERNAME": username, "SUPERSET_ADMIN_PASSWORD": password}


def running_url(home: Path = DEFAULT_HOME) -> str | None:
    """The URL of the local instance started from ``home``, when its server is still alive."""
    state = home / "state.json"
    if not state.exists():
        return None
    data = json.loads(state.read_text())
    try:
        os.kill(int(data["pid"]), 0)
    except (OSError, KeyError, ValueError):
        return None
    return data.get("url")
