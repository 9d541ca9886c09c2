"""Running the PostgreSQL binaries as an unprivileged user when we are root.

initdb and postgres refuse to run as root, so as root we run them through
``runuser -u <user> --`` as a system user that owns the data directory.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

from warehouse.errors import WarehouseError

log = logging.getLogger(__name__)


def is_root() -> bool:
    """True when this process runs with root's effective uid."""
    return os.geteuid() == 0


def ensure_system_user(name: str) -> pwd.struct_passwd:
    """Return the passwd entry of ``name``, creating it as a no-login system user if missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if useradd is None:
        raise WarehouseError(
            f"system user {name!r} does not exist and `useradd` is not available to create it; "
            "create it yourself or set WAREHOUSE_OS_USER to an existing unprivileged user"
        )
    shell = next((s for s in ("/usr/sbin/nologin", "/sbin/nologin") if os.path.exists(s)), "/bin/false")
    log.info("Creating system user %r to run PostgreSQL (it refuses to run as root)", name)
    result = subprocess.run(
        [useradd, "--system", "--no-create-home", "--shell", shell, name],
        capture_output=True,
        text=True,
    )
    try:
        # Re-read even on failure: a concurrent run may have created the user first.
        return pwd.getpwnam(name)
    except KeyError:
        raise WarehouseError(f"could not create system user {name!r}: {result.stderr.strip()}") from None


def make_traversable(path: Path, user: pwd.struct_passwd) -> None:
    """Ensure ``user`` can search every directory from / down to ``path``.

    A project cloned under a 0700 temp dir would otherwise hide the data directory from
    the PostgreSQL user. Only the o+x (search) bit is added, never read or write.
    """
    groups = {user.pw_gid, *(g for g in os.getgrouplist(user.pw_name, user.pw_gid))}
    for directory in [*reversed(path.parents), path]:
        st = directory.stat()
        if st.st_uid == user.pw_uid:
            allowed = st.st_mode & stat.S_IXUSR
        elif st.st_gid in groups:
            allowed = st.st_mode & stat.S_IXGRP
        else:
            allowed = st.st_mode & stat.S_IXOTH
        if not allowed:
            os.chmod(directory, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)
            log.info(
                "Added the o+x (search) bit to %s so user %r can reach the data directory",
                directory,
                user.pw_name,
            )


def as_user(command: list[str], user: str | None) -> list[str]:
    """Prefix ``command`` with ``runuser -u user --`` when a user switch is needed."""
    if user is None:
        return command
    runuser = shutil.which("runuser")
    if runuser is None:
        raise WarehouseError("running PostgreSQL as root needs `runuser` (package util-linux)")
    return [runuser, "-u", user, "--", *command]
