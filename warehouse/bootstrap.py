"""Bring a warehouse database to the current schema: database, roles, migrations.

Idempotent: run it after every start. Works on the private cluster (creating the
database if missing) and on an external server given by WAREHOUSE_URL, whose user must
be able to create roles and own (or have CREATE on) the target database.
"""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
from psycopg import sql

from warehouse.config import SCHEMAS, Settings, replace_url_parts, resolve_url
from warehouse.errors import WarehouseError
from warehouse.migrate import MIGRATIONS_DIR, apply_migrations

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10


def bootstrap(settings: Settings | None = None, *, migrations_dir: Path = MIGRATIONS_DIR) -> list[str]:
    """Create database and roles if needed, apply pending migrations; return their labels."""
    settings = settings or Settings.from_env()
    names = [settings.role_name(role) for role in ("admin", "writer", "bi_reader")]
    if len(set(names)) != len(names):
        raise WarehouseError(f"admin, writer and bi_reader must be distinct roles, got {names}")
    if not settings.external:
        ensure_database(settings)
    with connect(resolve_url("admin", settings)) as conn:
        for role in ("writer", "bi_reader"):
            ensure_login_role(conn, settings.role_name(role), settings.password(role, create=True))
        ensure_member_of(conn, settings.writer_role)
        applied = apply_migrations(
            conn,
            {
                "writer": settings.writer_role,
                "bi_reader": settings.bi_reader_role,
                "database": settings.target_database,
            },
            migrations_dir,
        )
        check_schema_owners(conn, settings.writer_role)
    log.info(
        "Warehouse database %r is up to date (%s)",
        settings.target_database,
        f"applied {', '.join(applied)}" if applied else "no pending migrations",
    )
    return applied


def connect(url: str) -> psycopg.Connection:
    """An autocommit connection that gives up after CONNECT_TIMEOUT seconds."""
    return psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT)


def ensure_database(settings: Settings) -> None:
    """Create the warehouse database on the private cluster if it does not exist."""
    maintenance_url = replace_url_parts(resolve_url("admin", settings), database="postgres")
    with connect(maintenance_url) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [settings.database]).fetchone()
        if exists:
            return
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(settings.database)))
        except psycopg.errors.DuplicateDatabase:
            return  # created concurrently
        log.info("Created database %r", settings.database)


def ensure_login_role(conn: psycopg.Connection, name: str, password: str) -> None:
    """Create LOGIN role ``name`` or reset its password, so the stored password is valid.

    The password is hashed here (SCRAM, via libpq) so the server, its logs and any error
    message only ever see the verifier, never the password.
    """
    verifier = conn.pgconn.encrypt_password(password.encode(), name.encode(), b"scram-sha-256").decode()
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone()
    conn.execute(
        sql.SQL("{verb} ROLE {name} WITH LOGIN PASSWORD {verifier}").format(
            verb=sql.SQL("ALTER" if exists else "CREATE"),
            name=sql.Identifier(name),
            verifier=sql.Literal(verifier),
        )
    )
    if not exists:
        log.info("Created login role %r", name)


def ensure_member_of(conn: psycopg.Connection, role: str) -> None:
    """Make the connected admin a member of ``role`` if it is not a superuser.

    Creating schemas owned by the writer and setting its default privileges require
    membership; superusers have it implicitly, managed-server admins do not.
    """
    is_member = conn.execute("SELECT pg_has_role(%s, 'MEMBER')", [role]).fetchone()[0]
    if not is_member:
        conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(role)))
        log.info("Granted role %r to the admin user (needed to manage its schemas)", role)


def check_schema_owners(conn: psycopg.Connection, writer: str) -> None:
    """Fail if a warehouse schema is missing or not owned by ``writer``.

    This catches a writer role renamed after the first bootstrap: migrations already
    applied would not re-run for the new name.
    """
    owners = dict(
        conn.execute(
            "SELECT nspname, pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = ANY(%s)",
            [list(SCHEMAS)],
        )
    )
    wrong = [f"{s} (owner: {owners.get(s, 'missing')})" for s in SCHEMAS if owners.get(s) != writer]
    if wrong:
        raise WarehouseError(
            f"schemas not owned by the writer role {writer!r}: {', '.join(wrong)}. Role "
            "names cannot change after the first bootstrap; restore WAREHOUSE_WRITER_ROLE"
        )
