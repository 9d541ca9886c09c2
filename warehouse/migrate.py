"""Versioned SQL migrations (``migrations/V<NNN>__<name>.sql``), each applied once.

Every migration runs in its own transaction and is recorded in
``audit.schema_migrations`` with a checksum of its file; editing a file that was already
applied is an error (write a new migration instead). ``{name}`` placeholders in the SQL
are replaced by quoted identifiers; ``{{`` and ``}}`` stand for literal braces.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from warehouse.errors import WarehouseError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
FILE_PATTERN = re.compile(r"^V(\d+)__(\w+)\.sql$")
# Serialises concurrent bootstraps of the same database (an arbitrary, fixed key).
ADVISORY_LOCK_KEY = 7_261_034_991

HISTORY_DDL = """
CREATE SCHEMA IF NOT EXISTS audit;
CREATE TABLE IF NOT EXISTS audit.schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    text: str

    @property
    def label(self) -> str:
        """The file's stem, e.g. ``V001__schemas_and_roles``."""
        return f"V{self.version:03d}__{self.name}"

    @property
    def checksum(self) -> str:
        """SHA-256 of the file text, line endings normalised so a CRLF checkout matches."""
        return hashlib.sha256(self.text.replace("\r\n", "\n").encode()).hexdigest()


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Read the migration files of ``directory``, ordered by version."""
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = FILE_PATTERN.match(path.name)
        if match is None:
            # A silently skipped file would be a migration that never runs.
            raise WarehouseError(f"{path}: migration files must be named V<NNN>__<name>.sql")
        version = int(match.group(1))
        if version in migrations:
            raise WarehouseError(f"{path}: version {version} is used by two migration files")
        migrations[version] = Migration(version, match.group(2), path.read_text(encoding="utf-8"))
    return [migrations[v] for v in sorted(migrations)]


def apply_migrations(
    conn: psycopg.Connection, placeholders: dict[str, str], directory: Path = MIGRATIONS_DIR
) -> list[str]:
    """Apply the pending migrations on ``conn`` (autocommit); return their labels.

    Raises WarehouseError if an applied migration's file changed since it was applied.
    """
    migrations = load_migrations(directory)
    identifiers = {key: sql.Identifier(value) for key, value in placeholders.items()}
    conn.execute("SELECT pg_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
    try:
        conn.execute(HISTORY_DDL)
        applied = dict(conn.execute("SELECT version, checksum FROM audit.schema_migrations"))
        changed = [m.label for m in migrations if m.version in applied and applied[m.version] != m.checksum]
        if changed:
            raise WarehouseError(
                f"applied migration(s) {', '.join(changed)} changed since they were applied "
                "(checksum mismatch); restore the files and add a new migration instead"
            )
        done = []
        for migration in migrations:
            if migration.version in applied:
                continue
            with conn.transaction():
                conn.execute(_render(migration, identifiers))
                conn.execute(
                    "INSERT INTO audit.schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    [migration.version, migration.name, migration.checksum],
                )
            log.info("Applied migration %s", migration.label)
            done.append(migration.label)
        return done
    finally:
        if not conn.closed:
            conn.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_KEY])


def _render(migration: Migration, identifiers: dict[str, sql.Identifier]) -> sql.Composed:
    try:
        return sql.SQL(migration.text).format(**identifiers)
    except (KeyError, IndexError, ValueError) as exc:
        raise WarehouseError(
            f"{migration.label}: bad placeholder {exc}; available: "
            f"{', '.join('{' + k + '}' for k in identifiers)} (write {{{{ }}}} for braces)"
        ) from exc
