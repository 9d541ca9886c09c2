"""Warehouse configuration from environment variables, and the connection URLs it implies.

Environment variables (all optional; an empty value counts as unset):

WAREHOUSE_URL (unset)
    ``postgresql://`` URL of an external server, with a user that can create roles and
    schemas. When set, no private cluster is started: ``up`` only bootstraps that server.
WAREHOUSE_DATA_DIR (``<project>/.local/warehouse/pgdata``)
    Data directory of the private cluster.
WAREHOUSE_CREDENTIALS_FILE (``credentials.json`` beside the data directory)
    0600 JSON file holding the generated passwords.
WAREHOUSE_PORT (``55432``)
    TCP port of the private cluster, which listens on 127.0.0.1 only.
WAREHOUSE_DB (``warehouse``)
    Database name; with WAREHOUSE_URL, used only when the URL names no database.
WAREHOUSE_ADMIN_PASSWORD (generated at init and stored)
    Password of the private cluster's superuser ``warehouse_admin``.
WAREHOUSE_OS_USER (``pgwarehouse``)
    Unprivileged system user that runs PostgreSQL when invoked as root; created if missing.
WAREHOUSE_PG_BIN (found on PATH, else newest ``/usr/lib/postgresql/*/bin``)
    Directory holding ``initdb``, ``pg_ctl`` and ``postgres`` (PostgreSQL >= 15).
WAREHOUSE_START_TIMEOUT (``60``)
    Seconds to wait for the server to start or stop.
WAREHOUSE_WRITER_ROLE (``pipeline``)
    LOGIN role of the pipeline; owns and creates in the six schemas.
WAREHOUSE_WRITER_PASSWORD (generated at bootstrap and stored)
    Password of the writer role.
BI_READER_ROLE (``bi_reader``)
    Read-only LOGIN role: SELECT on the tables of ``marts``, nothing else.
BI_READER_PASSWORD (generated at bootstrap and stored)
    Password of the read-only role.
BI_READER_STATEMENT_TIMEOUT (``60s``)
    Longest statement the read-only role may run (PostgreSQL ``statement_timeout``): a BI query
    running longer is cancelled. A number with a unit (``ms``, ``s``, ``min``, ``h``, ``d``);
    ``0`` turns the limit off.
BI_READER_IDLE_TIMEOUT (``5min``)
    ``idle_in_transaction_session_timeout`` of the read-only role: a session left idle inside an
    open transaction (holding its snapshot and locks, which block vacuum and DDL) is closed.
    Same syntax.
BI_READER_CONNECTION_LIMIT (``20``)
    Connections the read-only role may hold at once (``-1``: no limit). Room for a BI tool's
    pool (Metabase opens up to 15 per database) and a few analysts; the pipeline's connections
    never compete with these.
APPLICANT_HASH_KEY (generated at the first bootstrap and kept in the warehouse)
    Key of the HMAC-SHA256 behind ``staging.stg_api__dossiers.applicant_key`` (at least 16
    characters, e.g. ``openssl rand -hex 32``). The bootstrap stores its HMAC padded keys in
    ``raw.applicant_hash_key``, which only the writer reads; unset, a random 256-bit key is
    generated once and kept there. Changing it changes every applicant_key. It replaces the
    former ``APPLICANT_SALT``, which is ignored.

The three ``BI_READER_*`` limits are role settings re-applied at every bootstrap, so a changed
value takes effect for the sessions opened after the next ``up``/``bootstrap``. They guard the
warehouse against runaway or forgotten BI queries; as with every PostgreSQL role setting, a
client holding the password can still ``SET statement_timeout`` in its own session.

Passwords given through the environment take precedence and are never written to the
credentials file. Role names are fixed once a warehouse has been bootstrapped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pipeline.settings import PROJECT_ROOT, env_value
from warehouse.credentials import CredentialStore
from warehouse.errors import WarehouseError

DEFAULT_DATA_DIR = PROJECT_ROOT / ".local" / "warehouse" / "pgdata"
DEFAULT_PORT = 55432
DEFAULT_HOST = "127.0.0.1"
DEFAULT_DATABASE = "warehouse"
DEFAULT_OS_USER = "pgwarehouse"
DEFAULT_START_TIMEOUT = 60
DEFAULT_WRITER_ROLE = "pipeline"
DEFAULT_BI_READER_ROLE = "bi_reader"
DEFAULT_BI_READER_STATEMENT_TIMEOUT = "60s"
DEFAULT_BI_READER_IDLE_TIMEOUT = "5min"
DEFAULT_BI_READER_CONNECTION_LIMIT = 20
# HMAC keys shorter than this are guessable; the generated one has 32 bytes.
MIN_APPLICANT_HASH_KEY_LENGTH = 16
ADMIN_USER = "warehouse_admin"
ROLES = ("admin", "writer", "bi_reader")
SCHEMAS = ("raw", "staging", "intermediate", "marts", "dq", "audit")


@dataclass(frozen=True)
class Settings:
    """Everything needed to run and reach the warehouse; build it with :meth:`from_env`."""

    data_dir: Path = DEFAULT_DATA_DIR
    credentials_file: Path = DEFAULT_DATA_DIR.parent / "credentials.json"
    port: int = DEFAULT_PORT
    host: str = DEFAULT_HOST
    database: str = DEFAULT_DATABASE
    os_user: str = DEFAULT_OS_USER
    pg_bin: Path | None = None
    start_timeout: int = DEFAULT_START_TIMEOUT
    writer_role: str = DEFAULT_WRITER_ROLE
    bi_reader_role: str = DEFAULT_BI_READER_ROLE
    bi_reader_statement_timeout: str = DEFAULT_BI_READER_STATEMENT_TIMEOUT
    bi_reader_idle_timeout: str = DEFAULT_BI_READER_IDLE_TIMEOUT
    bi_reader_connection_limit: int = DEFAULT_BI_READER_CONNECTION_LIMIT
    # True when the retired APPLICANT_SALT is still set, so the bootstrap can say it is ignored.
    legacy_applicant_salt: bool = False
    # Secrets stay out of repr() so a logged Settings never leaks them.
    external_url: str | None = field(default=None, repr=False)
    admin_password: str | None = field(default=None, repr=False)
    writer_password: str | None = field(default=None, repr=False)
    bi_reader_password: str | None = field(default=None, repr=False)
    applicant_hash_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``environ`` (default: ``os.environ``); see the module docstring."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            # Through the project's one settings module; an empty variable means "unset".
            return env.get(name) or None if name == "APPLICANT_SALT" else env_value(name, env)

        data_dir = Path(get("WAREHOUSE_DATA_DIR") or DEFAULT_DATA_DIR).expanduser().resolve()
        credentials = get("WAREHOUSE_CREDENTIALS_FILE")
        external_url = get("WAREHOUSE_URL")
        if external_url and urlsplit(external_url).scheme not in ("postgresql", "postgres"):
            raise WarehouseError("WAREHOUSE_URL must be a postgresql:// URL")
        pg_bin = get("WAREHOUSE_PG_BIN")
        hash_key = get("APPLICANT_HASH_KEY")
        if hash_key is not None and len(hash_key.encode()) < MIN_APPLICANT_HASH_KEY_LENGTH:
            # The value itself stays out of the message.
            raise WarehouseError(
                f"APPLICANT_HASH_KEY must hold at least {MIN_APPLICANT_HASH_KEY_LENGTH} characters "
                "(e.g. `openssl rand -hex 32`), or be unset to keep the generated key"
            )
        return cls(
            data_dir=data_dir,
            credentials_file=(
                Path(credentials).expanduser().resolve() if credentials else data_dir.parent / "credentials.json"
            ),
            port=_int_setting(get, "WAREHOUSE_PORT", DEFAULT_PORT, 1, 65535),
            database=get("WAREHOUSE_DB") or DEFAULT_DATABASE,
            os_user=get("WAREHOUSE_OS_USER") or DEFAULT_OS_USER,
            pg_bin=Path(pg_bin) if pg_bin else None,
            start_timeout=_int_setting(get, "WAREHOUSE_START_TIMEOUT", DEFAULT_START_TIMEOUT, 1),
            writer_role=get("WAREHOUSE_WRITER_ROLE") or DEFAULT_WRITER_ROLE,
            bi_reader_role=get("BI_READER_ROLE") or DEFAULT_BI_READER_ROLE,
            bi_reader_statement_timeout=_duration_setting(
                get, "BI_READER_STATEMENT_TIMEOUT", DEFAULT_BI_READER_STATEMENT_TIMEOUT
            ),
            bi_reader_idle_timeout=_duration_setting(get, "BI_READER_IDLE_TIMEOUT", DEFAULT_BI_READER_IDLE_TIMEOUT),
            bi_reader_connection_limit=_int_setting(
                get, "BI_READER_CONNECTION_LIMIT", DEFAULT_BI_READER_CONNECTION_LIMIT, -1
            ),
            legacy_applicant_salt=get("APPLICANT_SALT") is not None,
            external_url=external_url,
            admin_password=get("WAREHOUSE_ADMIN_PASSWORD"),
            writer_password=get("WAREHOUSE_WRITER_PASSWORD"),
            bi_reader_password=get("BI_READER_PASSWORD"),
            applicant_hash_key=hash_key,
        )

    @property
    def external(self) -> bool:
        """True when WAREHOUSE_URL points at a server this project does not manage."""
        return self.external_url is not None

    @property
    def target_database(self) -> str:
        """The database holding the warehouse schemas."""
        if self.external_url:
            return unquote(urlsplit(self.external_url).path.lstrip("/")) or self.database
        return self.database

    def credentials(self) -> CredentialStore:
        """The store of generated passwords."""
        return CredentialStore(self.credentials_file)

    def role_name(self, role: str) -> str:
        """Database user name for ``role`` (one of :data:`ROLES`)."""
        _check_role(role)
        if role == "admin":
            if self.external_url:
                return unquote(urlsplit(self.external_url).username or "")
            return ADMIN_USER
        return self.writer_role if role == "writer" else self.bi_reader_role

    def password(self, role: str, *, create: bool = False) -> str:
        """Password for ``role``: from the environment, else the credentials file.

        With ``create`` a missing password is generated and stored (used by init and
        bootstrap, which then set it in the database); without it a missing password is
        an error telling the user to bring the warehouse up first.
        """
        _check_role(role)
        override = {
            "admin": self.admin_password,
            "writer": self.writer_password,
            "bi_reader": self.bi_reader_password,
        }[role]
        if override:
            return override
        store = self.credentials()
        password = store.get_or_create(role) if create else store.get(role)
        if password is None:
            raise WarehouseError(
                f"no password known for the {role} role (looked in {self.credentials_file}); "
                "run `python -m warehouse up` (or `bootstrap`) first"
            )
        return password


def resolve_url(role: str = "writer", settings: Settings | None = None) -> str:
    """Full ``postgresql://`` URL (with password) for ``role`` in the warehouse database."""
    settings = settings or Settings.from_env()
    _check_role(role)
    if settings.external_url:
        if role == "admin":
            return replace_url_parts(settings.external_url, database=settings.target_database)
        return replace_url_parts(
            settings.external_url,
            user=settings.role_name(role),
            password=settings.password(role),
            database=settings.target_database,
        )
    return build_url(
        settings.role_name(role),
        settings.password(role),
        settings.host,
        running_port(settings.data_dir) or settings.port,
        settings.database,
    )


def running_port(data_dir: Path) -> int | None:
    """The port the private cluster of ``data_dir`` is running on, from its ``postmaster.pid`` (the fourth
    line), when its server is alive — so ``python -m warehouse url`` names the cluster actually running,
    even when it was started with another ``WAREHOUSE_PORT`` than this shell's."""
    try:
        lines = (Path(data_dir) / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, run by the cluster's own system user
    return port


def resolve_urls(settings: Settings | None = None) -> dict[str, str]:
    """URLs for all roles: ``{"admin": ..., "writer": ..., "bi_reader": ...}``."""
    settings = settings or Settings.from_env()
    return {role: resolve_url(role, settings) for role in ROLES}


def build_url(user: str, password: str, host: str, port: int, database: str) -> str:
    """Assemble a ``postgresql://user:password@host:port/database`` URL, escaping each part."""
    netloc_host = f"[{host}]" if ":" in host else host
    return (
        f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}"
        f"@{netloc_host}:{port}/{quote(database, safe='')}"
    )


def replace_url_parts(
    url: str,
    *,
    user: str | None = None,
    password: str | None = None,
    database: str | None = None,
) -> str:
    """Return ``url`` with its credentials and/or database replaced; host, port, query kept."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if user is not None:
        host_port = netloc.rpartition("@")[2]
        userinfo = quote(user, safe="")
        if password is not None:
            userinfo += ":" + quote(password, safe="")
        netloc = f"{userinfo}@{host_port}"
    path = parts.path if database is None else "/" + quote(database, safe="")
    return urlunsplit((parts.scheme, netloc, path, parts.query, parts.fragment))


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``****``, safe to print or log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, host_port = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:****@{host_port}"))


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise WarehouseError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")


# PostgreSQL's time units for integer settings (https://www.postgresql.org/docs/current/config-setting.html).
_DURATION = re.compile(r"(?P<amount>\d+)\s*(?P<unit>us|ms|s|min|h|d)?")


def _duration_setting(get, name: str, default: str) -> str:
    """A PostgreSQL duration such as ``60s``; a unit is required (a bare number would mean
    milliseconds to PostgreSQL, a surprise for a setting documented in seconds) except for ``0``."""
    raw = get(name)
    if raw is None:
        return default
    match = _DURATION.fullmatch(raw.strip())
    if match is None or (match["unit"] is None and int(match["amount"]) != 0):
        raise WarehouseError(
            f"{name}={raw!r} is not a duration: write a number with a unit (ms, s, min, h, d), "
            "e.g. 60s or 5min, or 0 for no limit"
        )
    amount = int(match["amount"])
    if amount > 2_147_483_647:
        raise WarehouseError(f"{name}={raw!r} is too large")
    return f"{amount}{match['unit'] or ''}"


def _int_setting(get, name: str, default: int, low: int, high: int | None = None) -> int:
    raw = get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise WarehouseError(f"{name}={raw!r} is not an integer in {bounds}")
    return value
