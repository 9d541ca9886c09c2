"""Locating the PostgreSQL server binaries (initdb, pg_ctl, postgres) on this machine."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from warehouse.errors import WarehouseError

MIN_MAJOR_VERSION = 15
REQUIRED = ("initdb", "pg_ctl", "postgres")
# Debian/Ubuntu packages install here and do not put the server binaries on PATH.
PACKAGE_BIN_GLOB = "/usr/lib/postgresql/*/bin"

INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl, postgres; version >= "
    f"{MIN_MAJOR_VERSION}) were not found. Install them with "
    "`apt-get install postgresql-15` (Debian/Ubuntu; any PostgreSQL >= 15 server package "
    "works), point WAREHOUSE_PG_BIN at their directory, or set WAREHOUSE_URL to use an "
    "external server instead of a private cluster."
)


def find_pg_bin(explicit: Path | None = None) -> Path:
    """Return the directory holding initdb, pg_ctl and postgres of PostgreSQL >= 15.

    ``explicit`` (WAREHOUSE_PG_BIN) wins; otherwise PATH is searched, then the Debian
    package directories, newest version first.
    """
    if explicit is not None:
        if major_version(explicit) is None:
            raise WarehouseError(f"WAREHOUSE_PG_BIN={explicit}: {INSTALL_HINT}")
        return explicit
    candidates: list[Path] = []
    on_path = shutil.which("pg_ctl")
    if on_path:
        # Resolve symlinks such as /usr/local/bin/pg_ctl so initdb/postgres are found beside it.
        candidates.append(Path(os.path.realpath(on_path)).parent)
    candidates.extend(sorted(Path("/").glob(PACKAGE_BIN_GLOB.lstrip("/")), key=_dir_version, reverse=True))
    for candidate in candidates:
        if major_version(candidate) is not None:
            return candidate
    raise WarehouseError(INSTALL_HINT)


def major_version(bin_dir: Path) -> int | None:
    """Major version of the server binaries in ``bin_dir`` if complete and >= 15, else None."""
    if not all(os.access(bin_dir / name, os.X_OK) for name in REQUIRED):
        return None
    try:
        out = subprocess.run(
            [str(bin_dir / "pg_ctl"), "--version"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\(PostgreSQL\) (\d+)", out)
    if match is None or int(match.group(1)) < MIN_MAJOR_VERSION:
        return None
    return int(match.group(1))


def _dir_version(path: Path) -> int:
    # /usr/lib/postgresql/<major>/bin: sort numerically so 16 beats 9.6.
    try:
        return int(path.parent.name.split(".")[0])
    except ValueError:
        return -1
