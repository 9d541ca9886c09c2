"""The Celery broker of ``make airflow-celery``: a private Redis server run from the machine's own
``redis-server`` (Debian's package ``redis-server``), the way ``warehouse/cluster.py`` runs PostgreSQL.

- It listens on 127.0.0.1:``REDIS_PORT`` only and requires a password: ``REDIS_PASSWORD``, else one generated
  once into ``<REDIS_DATA_DIR>/password`` (mode 0600).
- Its configuration, the password included, is written at every start to ``<REDIS_DATA_DIR>/redis.conf``
  (mode 0600, owned by the user running the server) and given to ``redis-server`` as that file: the password
  is never on a command line, which ``ps`` shows to every user of the machine.
- It runs in the foreground under the stack's supervisor (``ops.stack``, ``ops.supervisor``): a broker that
  dies stops the whole stack loudly like any other component, and it stops with the stack.
- As root it runs as the unprivileged system user ``REDIS_OS_USER`` (``redis``, the Debian package's user;
  created if missing), through ``runuser``, in ``<REDIS_DATA_DIR>/data`` (owned by that user).
- It keeps nothing on disk (``save ""``, ``appendonly no``): it only carries task messages from the scheduler
  to the workers. Task states live in Airflow's metadata database; a message lost with the broker leaves its
  task queued until ``[scheduler] task_queued_timeout``, after which the scheduler queues it again.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from pipeline.settings import CelerySettings

PASSWORD_FILE = "password"
CONFIG_FILE = "redis.conf"
FALLBACK_BINARY = Path("/usr/bin/redis-server")
INSTALL_HINT = ("Install Debian's package: `apt-get install redis-server` (as root; its own service need not run, "
                "the project starts a private server), or set REDIS_SERVER to a redis-server binary")


class BrokerUnavailable(RuntimeError):
    """No ``redis-server`` to run, or the broker cannot be set up; the message says what to do."""


def _write_private(path: Path, text: str, owner: pwd.struct_passwd | None = None) -> None:
    """Write ``text`` to ``path`` with mode 0600 from the start, owned by ``owner`` when given."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    if owner is not None:
        os.chown(tmp, owner.pw_uid, owner.pw_gid)
    os.replace(tmp, path)


@dataclass(frozen=True)
class RedisBroker:
    """The private Redis broker described by ``settings`` (``CelerySettings``)."""

    settings: CelerySettings

    @property
    def data_dir(self) -> Path:
        return self.settings.redis_data_dir

    @property
    def config_file(self) -> Path:
        return self.data_dir / CONFIG_FILE

    def binary(self) -> str:
        """The ``redis-server`` to run: ``REDIS_SERVER``, else the one on PATH, else Debian's; raises
        ``BrokerUnavailable`` with the way to install it."""
        given = self.settings.redis_server
        if given:
            found = shutil.which(given)
            if not found:
                raise BrokerUnavailable(f"REDIS_SERVER={given} is not an executable. {INSTALL_HINT}")
            return found
        found = shutil.which("redis-server") or (str(FALLBACK_BINARY) if os.access(FALLBACK_BINARY, os.X_OK) else None)
        if found is None:
            raise BrokerUnavailable(f"make airflow-celery needs Redis as its broker and found no redis-server. "
                                    f"{INSTALL_HINT}")
        return found

    def password(self) -> str:
        """``REDIS_PASSWORD``, else the generated one kept in ``<REDIS_DATA_DIR>/password`` (made once)."""
        if self.settings.redis_password:
            return self.settings.redis_password
        path = self.data_dir / PASSWORD_FILE
        if path.exists():
            path.chmod(0o600)
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        password = secrets.token_urlsafe(24)
        _write_private(path, password + "\n")
        return password

    def url(self) -> str:
        """The broker's ``redis://`` URL, password included (database 0)."""
        return (f"redis://:{quote(self.password(), safe='')}@{self.settings.redis_host}:{self.settings.redis_port}"
                "/0")

    def config(self, workdir: Path) -> str:
        """``redis.conf``: loopback only, the password, nothing kept on disk, logs to standard output."""
        password = self.password().replace("\\", "\\\\").replace('"', '\\"')
        return "\n".join([
            "# Written by ops/broker.py at every start of make airflow-celery; edits are overwritten.",
            f"bind {self.settings.redis_host}",
            f"port {self.settings.redis_port}",
            "protected-mode yes",
            f'requirepass "{password}"',
            f'dir "{workdir}"',
            "daemonize no",
            'logfile ""',
            'save ""',
            "appendonly no",
            "",
        ])

    @property
    def workdir(self) -> Path:
        """The server's working folder (``dir``), owned by the user running it."""
        return self.data_dir / "data"

    def command(self) -> list[str]:
        """The command line running the server in the foreground on its configuration file — through
        ``runuser -u REDIS_OS_USER`` when this process is root (``prepare`` writes the file first)."""
        from warehouse.osuser import as_user

        user = self.settings.redis_os_user if os.geteuid() == 0 else None
        return as_user([self.binary(), str(self.config_file)], user)

    def prepare(self) -> None:
        """Make the password (once), the working folder and the configuration file, owned by the user the
        server runs as (created if missing when root)."""
        from warehouse.errors import WarehouseError
        from warehouse.osuser import ensure_system_user, make_traversable

        self.password()
        user = None
        if os.geteuid() == 0:
            try:
                user = ensure_system_user(self.settings.redis_os_user)
            except WarehouseError as exc:
                raise BrokerUnavailable(str(exc).replace("WAREHOUSE_OS_USER", "REDIS_OS_USER")) from None
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o700)
        if user is not None:
            os.chown(self.workdir, user.pw_uid, user.pw_gid)
            make_traversable(self.data_dir, user)
        _write_private(self.config_file, self.config(self.workdir), user)

    def ping(self) -> bool:
        """True when the server answers ``PING`` with the password (a readiness check: never raises)."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # no retries: redis-py's default retries a refused connection with backoff for seconds
        client = redis.Redis(host=self.settings.redis_host, port=self.settings.redis_port, password=self.password(),
                             socket_connect_timeout=1, socket_timeout=1, retry=Retry(NoBackoff(), 0))
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()
