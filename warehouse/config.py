"""The warehouse's settings and the connection URLs they imply.

The variables (``WAREHOUSE_*``, ``BI_READER_*``, ``APPLICANT_HASH_KEY``: README "Configuration", Warehouse)
are declared, read, checked and given their defaults in ``pipeline.settings.WarehouseSettings``;
``Settings`` here adds what the warehouse package does with them: the passwords (from the environment,
else the generated ones in the credentials file) and the URLs of the three roles.

Notes on the values:

- With ``WAREHOUSE_URL`` no private cluster is started: ``up`` only bootstraps that server, and
  ``WAREHOUSE_DB`` is used only when the URL names no database.
- The three ``BI_READER_*`` limits are role settings re-applied at every bootstrap, so a changed value takes
  effect for the sessions opened after the next ``up``/``bootstrap``. They guard the warehouse against
  runaway or forgotten BI queries (the connection limit leaves room for a BI tool's pool and a few
  analysts); as with every PostgreSQL role setting, a client holding the password can still
  ``SET statement_timeout`` in its own session.
- ``APPLICANT_HASH_KEY`` is the key of the HMAC-SHA256 behind ``staging.stg_api__dossiers.applicant_key``;
  the bootstrap stores its HMAC padded keys in ``raw.applicant_hash_key``, which only the writer reads;
  unset, a random 256-bit key is generated once and kept there. Changing it changes every applicant_key.
  It replaces the former ``APPLICANT_SALT``, which is ignored.

Passwords given through the environment take precedence and are never written to the credentials file.
Role names are fixed once a warehouse has been bootstrapped.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pipeline.settings import SettingsError, WarehouseSettings
from warehouse.credentials import CredentialStore
from warehouse.errors import WarehouseError

ADMIN_USER = "warehouse_admin"
ROLES = ("admin", "writer", "bi_reader")
SCHEMAS = ("raw", "staging", "intermediate", "marts", "dq", "audit")


@dataclass(frozen=True)
class Settings(WarehouseSettings):
    """The warehouse's settings (``pipeline.settings.WarehouseSettings``) with their passwords and URLs;
    build it with :meth:`from_env`."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``environ`` (default: ``os.environ``); a value that cannot be used is a
        ``WarehouseError`` naming its variable."""
        try:
            return super().from_env(environ)
        except SettingsError as exc:
            raise WarehouseError(str(exc)) from None

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
