"""The finance inbox: which files are candidates, and reading one file's bytes under the caps.

``candidates`` lists the workbooks under the inbox folder in processing order; ``read_workbook`` reads one
file's bytes, or says why the file is refused unread. Nothing here touches the warehouse
(``ingestion.finance.loader`` records what becomes of each file) or parses a workbook
(``ingestion.finance.workbook``).

Decisions where the spec is silent:

- Candidates are the entries named ``*.xlsx``, ``*.xlsm`` or ``*.xls`` anywhere under the inbox, except Office
  lock files (``~$…``) and hidden files or folders; other files (e.g. a generator's truth JSON) are ignored.
  A candidate whose name is not ``giai-ngan-YYYY-MM-DD.xlsx`` with a valid date has no report date (it is
  recorded as ``skipped-name``). A folder (or pipe, or broken link) named like a workbook is a candidate too,
  and refused when read.
- Order: report date, then modification time, then folder depth (a re-issue sits in a subfolder such as
  ``reissued/``), then path; so of two new files for one date the later one wins.
- Refused unread. Before its content is parsed, a file is refused when it cannot be opened or read
  (permission denied, a folder or another non-regular file, gone since the inbox was listed), when it is
  larger than ``FINANCE_MAX_FILE_BYTES`` (default 50 MiB, checked on the open file before a byte is read),
  or when its zip central directory declares too much (``FINANCE_MAX_UNCOMPRESSED_BYTES``, see
  ``ingestion.finance.archive``). Each candidate carries the pseudo key such a file is recorded under,
  ``unread-`` and the SHA-256 of its relative path, size and modification time (never a content hash, which
  is 64 hex digits alone): stable while the file is unchanged, new when it changes.
- Paths are stored as valid UTF-8: file-name bytes that are not UTF-8 become ``\\xNN`` (``storable``).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from ingestion.finance.archive import archive_problem

FILE_NAME = re.compile(r"giai-ngan-(\d{4})-(\d{2})-(\d{2})\.xlsx", re.IGNORECASE)
CANDIDATE_SUFFIXES = frozenset({".xlsx", ".xlsm", ".xls"})
# The cap on one file's size (FINANCE_MAX_FILE_BYTES in the settings).
DEFAULT_MAX_FILE_BYTES = 50 * 2**20
UNREAD_KEY_PREFIX = "unread-"  # file_sha256 of a file refused before its content was examined


@dataclass(frozen=True)
class Candidate:
    """A file under the inbox that may be a workbook, as listed (before it is read)."""

    path: Path
    relative: str  # relative to the inbox, as stored (valid UTF-8)
    report_date: date | None
    modified_ns: int
    size: int
    unread_key: str  # its pseudo key, should its content not be examined

    @property
    def order(self) -> tuple:
        """Processing order: report date, modification time, folder depth, path (see the module docstring)."""
        return (self.report_date or date.min, self.modified_ns, self.relative.count("/"), self.relative)


@dataclass(frozen=True)
class Caps:
    """What one file may cost: its size on disk, and what its zip archive may expand to."""

    max_file_bytes: int
    max_uncompressed_bytes: int


class UnreadableFile(Exception):
    """A file refused before its content was examined; the message says why (without the inbox's path)."""


def report_date_from_name(name: str) -> date | None:
    """The report date of a ``giai-ngan-YYYY-MM-DD.xlsx`` file name, or None if the name is not one."""
    match = FILE_NAME.fullmatch(name)
    if match is None:
        return None
    try:
        return date(*(int(part) for part in match.groups()))
    except ValueError:
        return None


def candidates(inbox: Path) -> list[Candidate]:
    """The candidates under ``inbox``, in processing order (see the module docstring)."""
    found = []
    for path in inbox.rglob("*"):
        relative = path.relative_to(inbox)
        if any(part.startswith((".", "~$")) for part in relative.parts):
            continue
        if path.suffix.lower() not in CANDIDATE_SUFFIXES:
            continue
        try:
            info = path.stat()
        except OSError:
            try:
                info = path.lstat()  # a broken link: listed, and refused when read
            except OSError:
                continue  # gone since the folder was listed: nothing is left to record
        found.append(
            Candidate(
                path,
                storable(relative.as_posix()),
                report_date_from_name(path.name),
                info.st_mtime_ns,
                info.st_size,
                unread_key(os.fsencode(relative.as_posix()), info.st_size, info.st_mtime_ns),
            )
        )
    return sorted(found, key=lambda c: c.order)


def unread_key(relative: bytes, size: int, modified_ns: int) -> str:
    """The pseudo key of a file refused before its content was examined: stable while it is unchanged."""
    digest = hashlib.sha256(b"\0".join((relative, str(size).encode(), str(modified_ns).encode())))
    return UNREAD_KEY_PREFIX + digest.hexdigest()


def read_workbook(path: Path, caps: Caps) -> bytes:
    """The bytes of a candidate, read once (its hash is that of exactly the bytes parsed, even if the file is
    being replaced meanwhile); raises UnreadableFile when the file cannot be read, is above
    ``caps.max_file_bytes`` or its zip archive would expand beyond what ``caps`` allow."""
    content = _read_bytes(path, caps.max_file_bytes)
    refusal = archive_problem(content, caps.max_uncompressed_bytes)
    if refusal is not None:
        raise UnreadableFile(refusal)
    return content


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    """A file's bytes, or UnreadableFile saying why not: checked to be a regular file no larger than
    ``max_bytes`` on the open file, before a byte is read (O_NONBLOCK: opening a pipe must not hang)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise UnreadableFile(
            f"cannot be read ({_os_error(exc)}): it was moved or deleted after the inbox was listed, or is a "
            "broken link"
        ) from exc
    except OSError as exc:
        raise UnreadableFile(f"cannot be read ({_os_error(exc)})") from exc
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise UnreadableFile("is a folder, not a workbook file")
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFile("is not a regular file (a pipe, socket or device); not read")
        if info.st_size > max_bytes:
            raise UnreadableFile(f"is {info.st_size} bytes, above FINANCE_MAX_FILE_BYTES ({max_bytes}); not read")
        chunks, total = [], 0
        while chunk := os.read(fd, min(2**20, max_bytes + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise UnreadableFile(f"grew above FINANCE_MAX_FILE_BYTES ({max_bytes}) while being read")
        return b"".join(chunks)
    except OSError as exc:
        raise UnreadableFile(f"cannot be read ({_os_error(exc)})") from exc
    finally:
        os.close(fd)


def _os_error(exc: OSError) -> str:
    """E.g. ``PermissionError: Permission denied``: without the absolute path, which says nothing more and
    would differ between servers."""
    return f"{type(exc).__name__}: {exc.strerror or exc}"


def storable(text: str) -> str:
    """Text PostgreSQL takes: no NUL, no lone surrogates (undecodable file-name bytes become ``\\xNN``)."""
    if text.isascii() and "\x00" not in text:
        return text
    try:
        raw = text.encode("utf-8", "surrogateescape")  # the file name's own bytes, as os.fsdecode got them
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")
