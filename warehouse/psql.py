"""Running libpq programs (psql, pg_dump, …) without a password on their command line.

A ``postgresql://user:password@…`` URL given as an argument (``psql "$(python -m warehouse url)"``)
shows the password to every user of the machine: a process's arguments are world-readable
(``ps``, ``/proc/<pid>/cmdline``). Here the URL becomes a conninfo string without the password,
and the password travels in ``PGPASSWORD`` in the program's environment, which on Linux only
the same user and root can read (``/proc/<pid>/environ`` is mode 0400) — the same protection as
a 0600 passfile, without a file to clean up when the program is interrupted. Everything else
in the URL (host, port, database, ``sslmode`` and the other query parameters) is kept, and wins
over any ``PG*`` variable already in the environment.

    from warehouse.psql import libpq_command
    argv, env = libpq_command("psql", url, ["-c", "SELECT 1"])
    subprocess.run(argv, env=env, check=True)
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from warehouse.errors import WarehouseError
from warehouse.pgbin import PACKAGE_BIN_GLOB, _dir_version

# libpq reads these before PGPASSWORD; left in place they would pick another password than the URL's.
PASSWORD_SOURCES = ("PGPASSFILE", "PGSERVICE", "PGSERVICEFILE")


def libpq_target(url: str, base: Mapping[str, str] | None = None) -> tuple[str, dict[str, str]]:
    """``(conninfo, env)`` for ``url``: the connection string without its password, and ``base``
    (default ``os.environ``) with the password in ``PGPASSWORD``."""
    try:
        params = conninfo_to_dict(url)
    except Exception as exc:  # psycopg raises ProgrammingError with the text; keep the URL out of it
        raise WarehouseError("not a valid postgresql:// URL") from exc
    password = params.pop("password", None)
    env = dict(os.environ if base is None else base)
    for name in PASSWORD_SOURCES:
        env.pop(name, None)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    else:
        env.pop("PGPASSWORD", None)
    return make_conninfo(**{key: str(value) for key, value in params.items()}), env


def libpq_command(
    program: str,
    url: str,
    args: Sequence[str] = (),
    *,
    pg_bin: Path | None = None,
    base: Mapping[str, str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """``(argv, env)`` running ``program`` (``psql``, ``pg_dump``, …) on ``url`` with ``args``.

    The connection goes as ``--dbname=<conninfo>``, which every libpq client program accepts.
    """
    conninfo, env = libpq_target(url, base)
    return [find_client(program, pg_bin), f"--dbname={conninfo}", *args], env


def find_client(program: str, pg_bin: Path | None = None) -> str:
    """Path of a PostgreSQL client program: in ``pg_bin`` (WAREHOUSE_PG_BIN), on PATH, else in the
    Debian package directories (newest first)."""
    if pg_bin is not None and (pg_bin / program).exists():
        return str(pg_bin / program)
    found = shutil.which(program)
    if found:
        return found
    for directory in sorted(Path("/").glob(PACKAGE_BIN_GLOB.lstrip("/")), key=_dir_version, reverse=True):
        if os.access(directory / program, os.X_OK):
            return str(directory / program)
    raise WarehouseError(
        f"`{program}` was not found: install the PostgreSQL client (`apt-get install postgresql-client`)"
    )
