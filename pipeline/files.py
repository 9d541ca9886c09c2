"""Files the pipeline publishes are written whole or not at all.

A reader (a browser, a BI refresh, the monthly DAG deciding whether a month is published) must never see
half a file: everything is written to a temporary name in the same folder, flushed to disk, then renamed
over the final name, which POSIX makes atomic. A reader that opened the previous version keeps reading it
whole; one that opens the name afterwards gets the new version whole.

Temporary names are hidden and end in ``.tmp`` (``.<name>.<random>.tmp``), so nothing that looks for the
final names (``cong-khai-YYYY-MM.html``, ``latest.html``) ever takes one for a published file. A writer
killed outright (power loss, ``kill -9``) can leave one behind: ``remove_stale_temporaries`` deletes those
of a name once they are older than any write could take.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_SUFFIX = ".tmp"
FILE_MODE = 0o644  # published files are read by other users (web server, BI); mkstemp creates them 0600
STALE_AFTER_SECONDS = 3600.0


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (the folder's entry), where the platform allows opening a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes | str, encoding: str = "utf-8") -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and one rename."""
    path = Path(path)
    payload = data.encode(encoding) if isinstance(data, str) else data
    with atomic_target(path) as tmp, tmp.open("wb") as out:
        out.write(payload)
    return path


def temporary_sibling(path: Path) -> Path:
    """A hidden temporary name beside ``path`` for writers that need a file name (e.g. openpyxl's save);
    rename it over ``path`` with ``os.replace`` once complete (``atomic_target`` does all of it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    return Path(tmp)


def commit_temporary(tmp: Path, path: Path) -> Path:
    """Flush the complete temporary file ``tmp`` to disk and rename it over ``path``."""
    tmp, path = Path(tmp), Path(path)
    with tmp.open("rb+") as fh:
        os.fsync(fh.fileno())
    os.chmod(tmp, FILE_MODE)
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return path


@contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """``with atomic_target(path) as tmp: writer.save(tmp)``: the writer fills a temporary sibling, which
    replaces ``path`` only when the block ends without an error; on an error it is deleted and ``path`` is
    left as it was."""
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        commit_temporary(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def stale_temporaries(path: Path, older_than: float = STALE_AFTER_SECONDS) -> list[Path]:
    """The temporary siblings of ``path`` last modified more than ``older_than`` seconds ago."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    limit = time.time() - older_than
    found = []
    for candidate in path.parent.glob(f".{path.name}.*{TMP_SUFFIX}"):
        try:
            if candidate.is_file() and candidate.stat().st_mtime < limit:
                found.append(candidate)
        except FileNotFoundError:  # another writer renamed or removed it meanwhile
            continue
    return sorted(found)


def remove_stale_temporaries(path: Path, older_than: float = STALE_AFTER_SECONDS) -> list[Path]:
    """Delete what killed writers of ``path`` left behind (see ``stale_temporaries``); returns them. A
    recent temporary file may be another writer's work in progress and is left alone."""
    removed = []
    for tmp in stale_temporaries(path, older_than):
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed
