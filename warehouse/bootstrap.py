"""Bring a warehouse database to the current schema: database, roles, migrations.

Idempotent: run it after every start. Works on the private cluster (creating the
database if missing) and on an external server given by WAREHOUSE_URL, whose user must
be able to create roles and own (or have CREATE on) the target database.

Besides the migrations, every run re-applies what the environment may change:

- the read-only role's limits (``BI_READER_STATEMENT_TIMEOUT``, ``BI_READER_IDLE_TIMEOUT``,
  ``BI_READER_CONNECTION_LIMIT``) as role-wide settings, so they hold in every database
  and for every new session, on the private cluster and on an external server alike;
- on the private cluster only, ``PUBLIC`` loses ``CONNECT`` and ``TEMPORARY`` on the
  databases ``postgres`` and ``template1``: the roles reach the warehouse database and
  nothing else (the superuser still connects anywhere). An external server's other
  databases belong to its administrator and are left alone;
- the key of ``applicant_key`` (see :func:`ensure_applicant_hash_key`).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from pathlib import Path

import psycopg
from psycopg import sql

from warehouse.config import SCHEMAS, Settings, replace_url_parts, resolve_url
from warehouse.errors import WarehouseError
from warehouse.migrate import MIGRATIONS_DIR, apply_migrations

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10
# Databases every cluster has that no role of the project needs (template0 already refuses connections).
MAINTENANCE_DATABASES = ("postgres", "template1")
# HMAC (RFC 2104) over SHA-256: the key is padded to the hash's 64-byte block.
HMAC_BLOCK_SIZE = 64
GENERATED_KEY_BYTES = 32


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
        apply_bi_reader_limits(conn, settings)
        if not settings.external:
            restrict_maintenance_databases(conn)
        ensure_applicant_hash_key(conn, settings.applicant_hash_key)
    if settings.legacy_applicant_salt:
        log.warning(
            "APPLICANT_SALT is set but no longer used: applicant_key is an HMAC whose key is kept in "
            "raw.applicant_hash_key (set APPLICANT_HASH_KEY to choose it); remove APPLICANT_SALT"
        )
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


def apply_bi_reader_limits(conn: psycopg.Connection, settings: Settings) -> None:
    """Set the read-only role's statement and idle-transaction timeouts and connection limit.

    Role-wide (``ALTER ROLE ... SET``), not per database: the limits follow the role wherever it
    connects. Applied at every bootstrap, so a changed variable takes effect for new sessions.
    """
    role = sql.Identifier(settings.bi_reader_role)
    for parameter, value in (
        ("statement_timeout", settings.bi_reader_statement_timeout),
        ("idle_in_transaction_session_timeout", settings.bi_reader_idle_timeout),
    ):
        conn.execute(
            sql.SQL("ALTER ROLE {role} SET {parameter} = {value}").format(
                role=role, parameter=sql.Identifier(parameter), value=sql.Literal(value)
            )
        )
    conn.execute(
        sql.SQL("ALTER ROLE {role} CONNECTION LIMIT {limit}").format(
            role=role, limit=sql.Literal(settings.bi_reader_connection_limit)
        )
    )


def restrict_maintenance_databases(conn: psycopg.Connection) -> None:
    """Revoke PUBLIC's CONNECT and TEMPORARY on ``postgres`` and ``template1`` (private cluster).

    Without this every role, bi_reader included, may connect to them and create temporary
    tables there. Databases created later do not inherit template1's privileges, and the
    warehouse database grants its own explicitly (V001, V002).
    """
    present = [
        name
        for (name,) in conn.execute(
            "SELECT datname FROM pg_database WHERE datname = ANY(%s)", [list(MAINTENANCE_DATABASES)]
        )
    ]
    for name in present:
        conn.execute(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name)))


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """The inner and outer padded keys of HMAC-SHA256 (RFC 2104) for ``key``.

    ``sha256(outer || sha256(inner || message))`` is then ``HMAC-SHA256(key, message)``.
    """
    if len(key) > HMAC_BLOCK_SIZE:
        key = hashlib.sha256(key).digest()
    key = key.ljust(HMAC_BLOCK_SIZE, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def ensure_applicant_hash_key(conn: psycopg.Connection, configured: str | None) -> None:
    """Keep the key of ``applicant_key`` in ``raw.applicant_hash_key`` (one row, as HMAC pads).

    With ``configured`` (APPLICANT_HASH_KEY) the stored key is set to it, replacing a different
    one (every applicant_key then changes, which is logged). Without it a random 256-bit key is
    generated if none is stored, and the stored one is kept from then on. The key travels as a
    bound parameter, so it appears in no statement text, log line or error message.
    """
    with conn.transaction():
        row = conn.execute("SELECT inner_pad, outer_pad FROM raw.applicant_hash_key FOR UPDATE").fetchone()
        if configured is None:
            if row is None:
                inner, outer = hmac_pads(secrets.token_bytes(GENERATED_KEY_BYTES))
                _insert_hash_key(conn, inner, outer, "generated")
                log.info("Generated the applicant_key HMAC key (kept in raw.applicant_hash_key)")
            return
        inner, outer = hmac_pads(configured.encode())
        if row is None:
            _insert_hash_key(conn, inner, outer, "environment")
            log.info("Stored the applicant_key HMAC key from APPLICANT_HASH_KEY")
        elif (bytes(row[0]), bytes(row[1])) != (inner, outer):
            conn.execute(
                "UPDATE raw.applicant_hash_key SET inner_pad = %s, outer_pad = %s, origin = 'environment', "
                "set_at = now()",
                [inner, outer],
            )
            log.warning(
                "APPLICANT_HASH_KEY differs from the stored key: replaced it, so every applicant_key changes "
                "from the next dbt run on"
            )


def _insert_hash_key(conn: psycopg.Connection, inner: bytes, outer: bytes, origin: str) -> None:
    # A concurrent bootstrap may have inserted first: its key stands.
    conn.execute(
        "INSERT INTO raw.applicant_hash_key (inner_pad, outer_pad, origin) VALUES (%s, %s, %s) "
        "ON CONFLICT (singleton) DO NOTHING",
        [inner, outer, origin],
    )
