"""A private PostgreSQL cluster run from the machine's binaries, owned by this project.

The cluster listens on TCP only (no Unix socket), on one address, and requires SCRAM
passwords from every client. Its server settings live in ``warehouse.conf`` inside the
data directory, rewritten at every start so port and tuning changes take effect.
"""

from __future__ import annotations

import errno
import logging
import os
import pwd
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from warehouse.config import ADMIN_USER, Settings, build_url
from warehouse.credentials import CredentialStore
from warehouse.errors import WarehouseError
from warehouse.osuser import as_user, ensure_system_user, is_root, make_traversable
from warehouse.pgbin import find_pg_bin

log = logging.getLogger(__name__)

# Sized for a 2-core machine with a few GB of RAM shared with Airflow and dbt.
SERVER_SETTINGS: dict[str, str] = {
    "shared_buffers": "256MB",
    "effective_cache_size": "1GB",
    "work_mem": "16MB",
    "maintenance_work_mem": "128MB",
    "max_worker_processes": "4",
    "max_parallel_workers": "2",
    "max_parallel_workers_per_gather": "1",
    "max_parallel_maintenance_workers": "1",
    "max_wal_size": "2GB",
    # A single server with no standby and no WAL archive (backups are dumps): the WAL only has to survive a
    # crash, so a table built in one transaction — every full build of a dbt model, its indexes too — is
    # written once and synced at commit instead of being copied into the WAL as well (README "WAL: one
    # server, or a standby too"). A server with a standby or point-in-time recovery needs 'replica'.
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "random_page_cost": "1.1",
    # JIT compilation costs more than it saves on queries of this size.
    "jit": "off",
    "password_encryption": "scram-sha-256",
    "log_line_prefix": "%m [%p] %q%u@%d ",
}

PG_HBA = """\
# Written by warehouse/cluster.py: every client authenticates with a SCRAM password.
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 scram-sha-256
host    all       all   127.0.0.1/32  scram-sha-256
host    all       all   ::1/128       scram-sha-256
"""

SETTINGS_FILE = "warehouse.conf"
LOG_FILE = "server.log"
QUOTE = "'"


@dataclass(frozen=True)
class ClusterStatus:
    """A snapshot of the cluster's state, as reported by :meth:`PrivateCluster.status`."""

    data_dir: Path
    initialized: bool
    running: bool
    pid: int | None
    host: str
    port: int
    log_file: Path


class PrivateCluster:
    """Initialise, start and stop a PostgreSQL cluster in ``data_dir`` on ``host:port``.

    ``admin_password`` overrides the generated superuser password; generated passwords are
    kept in ``credentials`` (default: ``credentials.json`` beside the data directory).
    ``server_settings`` are merged over :data:`SERVER_SETTINGS`.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int,
        host: str = Settings.host,
        *,
        admin_password: str | None = None,
        credentials: CredentialStore | None = None,
        os_user: str = Settings.os_user,
        pg_bin: Path | None = None,
        start_timeout: int = Settings.start_timeout,
        server_settings: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.host = host
        self.os_user = os_user
        self.start_timeout = start_timeout
        self.credentials = credentials or CredentialStore(self.data_dir.parent / "credentials.json")
        self.server_settings = {**SERVER_SETTINGS, **(server_settings or {})}
        self._admin_password = admin_password
        self._pg_bin = pg_bin

    @classmethod
    def from_settings(cls, settings: Settings, **overrides) -> PrivateCluster:
        """Build the cluster described by ``settings`` (keyword ``overrides`` win)."""
        kwargs = dict(
            data_dir=settings.data_dir,
            port=settings.port,
            host=settings.host,
            admin_password=settings.admin_password,
            credentials=settings.credentials(),
            os_user=settings.os_user,
            pg_bin=settings.pg_bin,
            start_timeout=settings.start_timeout,
        )
        kwargs.update(overrides)
        return cls(**kwargs)

    @property
    def log_file(self) -> Path:
        """The server log (inside the data directory)."""
        return self.data_dir / LOG_FILE

    def is_initialized(self) -> bool:
        """True once initdb has populated the data directory."""
        return (self.data_dir / "PG_VERSION").is_file()

    def init(self) -> bool:
        """Run initdb unless already done; return True if a new cluster was created."""
        if self.is_initialized():
            log.info("Cluster already initialised in %s", self.data_dir)
            return False
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise WarehouseError(
                f"{self.data_dir} exists, is not empty and holds no PostgreSQL cluster; "
                "empty it or set WAREHOUSE_DATA_DIR to another directory"
            )
        initdb = self._bin("initdb")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)  # initdb rejects group/world access
        user = self._run_user()
        if user is not None:
            os.chown(self.data_dir, user.pw_uid, user.pw_gid)
        password = self._admin_password or self.credentials.get_or_create("admin")
        # initdb reads the superuser password from a file: keep it out of argv and the
        # environment, readable only by the user running initdb, and delete it right after.
        fd, pwfile = tempfile.mkstemp(prefix=".initdb-pw-", dir=self.data_dir.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(password + "\n")
            if user is not None:
                os.chown(pwfile, user.pw_uid, user.pw_gid)
            options = ["--username", ADMIN_USER, "--pwfile", pwfile, "--auth", "scram-sha-256"]
            options += ["--encoding", "UTF8", "--locale", "C", "--no-instructions"]
            result = self._run([initdb, "-D", str(self.data_dir), *options])
        finally:
            os.unlink(pwfile)
        if result.returncode != 0:
            raise WarehouseError(f"initdb failed:\n{result.stdout}{result.stderr}")
        self._write_owned(self.data_dir / "pg_hba.conf", PG_HBA)
        with open(self.data_dir / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(
                "\n# Project settings, rewritten by warehouse/cluster.py at every start.\n"
                f"include_if_exists = '{SETTINGS_FILE}'\n"
            )
        log.info("Initialised a PostgreSQL cluster in %s (superuser %s)", self.data_dir, ADMIN_USER)
        return True

    def start(self) -> bool:
        """Start the server unless it runs already; return True if it was started."""
        pid = self._live_pid()
        if pid is not None:
            log.info("PostgreSQL already running (pid %s, data dir %s)", pid, self.data_dir)
            return False
        if not self.is_initialized():
            raise WarehouseError(f"no cluster in {self.data_dir}; run `python -m warehouse up` to create one")
        self._remove_stale_pid_file()
        self._check_port_free()
        self._write_server_settings()
        result = self._pg_ctl("start", "-l", str(self.log_file))
        if result.returncode != 0:
            if self._live_pid() is not None:
                # Timed out while still starting: don't leave a half-started server behind.
                self._pg_ctl("stop", "-m", "immediate")
            raise WarehouseError(
                f"PostgreSQL failed to start on {self.host}:{self.port} (waited up to "
                f"{self.start_timeout}s).\n{result.stdout}{result.stderr}{self._log_tail()}"
            )
        log.info(
            "PostgreSQL started on %s:%s (pid %s, data dir %s)",
            self.host,
            self.port,
            self._live_pid(),
            self.data_dir,
        )
        return True

    def stop(self) -> bool:
        """Stop the server (fast shutdown) if it runs; return True if it was stopped."""
        if self._live_pid() is None:
            self._remove_stale_pid_file()
            log.info("PostgreSQL is not running (data dir %s)", self.data_dir)
            return False
        result = self._pg_ctl("stop", "-m", "fast")
        if result.returncode != 0:
            raise WarehouseError(
                f"PostgreSQL did not stop within {self.start_timeout}s.\n"
                f"{result.stdout}{result.stderr}{self._log_tail()}"
            )
        log.info("PostgreSQL stopped (data dir %s)", self.data_dir)
        return True

    def is_running(self) -> bool:
        """True when the cluster's postmaster process is alive."""
        return self._live_pid() is not None

    def status(self) -> ClusterStatus:
        """Report whether the cluster exists and runs, with its pid and actual port."""
        pid = self._live_pid()
        port = self.port
        if pid is not None:
            lines = self._pid_file_lines()
            # Line 4 of postmaster.pid is the port the server really listens on.
            if len(lines) > 3 and lines[3].strip().isdigit():
                port = int(lines[3])
        return ClusterStatus(
            data_dir=self.data_dir,
            initialized=self.is_initialized(),
            running=pid is not None,
            pid=pid,
            host=self.host,
            port=port,
            log_file=self.log_file,
        )

    def admin_url(self, dbname: str = "postgres") -> str:
        """``postgresql://`` URL of the superuser for database ``dbname``, password included."""
        password = self._admin_password or self.credentials.get("admin")
        if password is None:
            raise WarehouseError(
                f"admin password unknown: {self.credentials.path} has none; "
                "set WAREHOUSE_ADMIN_PASSWORD or re-create the cluster"
            )
        return build_url(ADMIN_USER, password, self.host, self.port, dbname)

    # -- helpers -------------------------------------------------------------------------

    def _bin(self, name: str) -> str:
        if self._pg_bin is None or not (self._pg_bin / name).exists():
            self._pg_bin = find_pg_bin(self._pg_bin)
        return str(self._pg_bin / name)

    def _run_user(self) -> pwd.struct_passwd | None:
        """The user to run PostgreSQL as: None when not root (run directly)."""
        if not is_root():
            return None
        if self.is_initialized():
            # PostgreSQL must run as the data directory's owner, whoever created it.
            owner = pwd.getpwuid(self.data_dir.stat().st_uid)
            if owner.pw_uid != 0:
                return owner
        return ensure_system_user(self.os_user)

    def _run(self, command: list[str]) -> subprocess.CompletedProcess[str]:
        user = self._run_user()
        if user is not None:
            # Checked before every command, not just at init: something (pytest fixing up its
            # temp root, a chmod) may have closed an ancestor directory since.
            make_traversable(self.data_dir.parent, user)
        return subprocess.run(
            as_user(command, user.pw_name if user else None),
            capture_output=True,
            text=True,
            # cwd "/" because the caller's cwd may be unreadable for the PostgreSQL user.
            cwd="/",
            timeout=self.start_timeout + 30,
        )

    def _pg_ctl(self, action: str, *options: str) -> subprocess.CompletedProcess[str]:
        """Run ``pg_ctl <action>`` on the data directory, waiting at most start_timeout seconds."""
        wait = ["-w", "-t", str(self.start_timeout)]
        return self._run([self._bin("pg_ctl"), action, "-D", str(self.data_dir), *wait, *options])

    def _pid_file_lines(self) -> list[str]:
        try:
            return (self.data_dir / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return []

    def _live_pid(self) -> int | None:
        lines = self._pid_file_lines()
        if not lines or not lines[0].strip().isdigit():
            return None
        pid = int(lines[0])
        return pid if _is_postgres_process(pid) else None

    def _remove_stale_pid_file(self) -> None:
        pid_file = self.data_dir / "postmaster.pid"
        if pid_file.exists() and self._live_pid() is None:
            pid_file.unlink()
            log.warning("Removed stale %s: its PostgreSQL process is gone (unclean shutdown?)", pid_file)

    def _check_port_free(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # SO_REUSEADDR as PostgreSQL itself sets it: TIME_WAIT leftovers of a previous
            # run are fine, a live listener is not (Linux refuses the bind then).
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((self.host, self.port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise WarehouseError(
                        f"port {self.port} on {self.host} is already in use by another "
                        "process; stop it or choose another port with WAREHOUSE_PORT"
                    ) from None
                raise WarehouseError(f"cannot listen on {self.host}:{self.port}: {exc.strerror}") from None

    def _write_server_settings(self) -> None:
        settings = {
            "listen_addresses": self.host,
            "port": str(self.port),
            # TCP only: no socket file whose path length or permissions could get in the way.
            "unix_socket_directories": "",
            **self.server_settings,
        }
        # Quote every value: PostgreSQL accepts quoted numbers, and '' escapes a quote.
        lines = [f"{name} = '{value.replace(QUOTE, QUOTE * 2)}'" for name, value in settings.items()]
        self._write_owned(
            self.data_dir / SETTINGS_FILE,
            "# Written by warehouse/cluster.py at every start; edits are overwritten.\n" + "\n".join(lines) + "\n",
        )

    def _write_owned(self, path: Path, text: str) -> None:
        """Write ``text`` to ``path`` in the data directory, owned like the directory."""
        path.write_text(text, encoding="utf-8")
        os.chmod(path, 0o600)
        if is_root():
            owner = self.data_dir.stat()
            os.chown(path, owner.st_uid, owner.st_gid)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            tail = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        except FileNotFoundError:
            return f"(no server log at {self.log_file})"
        return f"--- last lines of {self.log_file} ---\n" + "\n".join(tail)


def _is_postgres_process(pid: int) -> bool:
    """True if ``pid`` is a live (non-zombie) PostgreSQL process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by another user
    if not Path("/proc/self").exists():
        return True  # no /proc (not Linux): trust kill()
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False  # exited in the meantime
    # The pid may have been reused by another program since the pid file was written.
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    state = stat[stat.rindex(")") + 2]
    return name in ("postgres", "postmaster") and state != "Z"
