"""The zip guard: whether a workbook's zip archive may be inflated, judged from its central directory alone.

An xlsx file is a zip archive. Before openpyxl inflates one, its central directory is read (a few kilobytes
at the end of the file) and the file is refused when it declares more than ``FINANCE_MAX_UNCOMPRESSED_BYTES``
(default 200 MiB) in all, or a member of more than 1 MiB expanding above 100:1 (a zip bomb: real workbooks'
parts expand 5-20:1, deflate bombs about 1000:1). Python's zipfile never inflates a member beyond its
declared size, so the declared sizes bound what openpyxl inflates. Pure: it reads only the bytes given.
"""

from __future__ import annotations

import zipfile
from io import BytesIO

# The cap on what one file may expand to (FINANCE_MAX_UNCOMPRESSED_BYTES in the settings).
DEFAULT_MAX_UNCOMPRESSED_BYTES = 200 * 2**20
MAX_COMPRESSION_RATIO = 100  # real workbooks' parts expand 5-20:1; deflate bombs about 1000:1
RATIO_CHECKED_ABOVE = 2**20  # a small part may compress well and still cost nothing


def archive_problem(content: bytes, max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES) -> str | None:
    """Why an xlsx file's zip archive must not be inflated (a possible zip bomb), judged from its central
    directory alone; None when it may be, or when it is no zip at all (the workbook reader then says so)."""
    try:
        with zipfile.ZipFile(BytesIO(content)) as archive:
            members = archive.infolist()
    except Exception:  # not a zip, or a damaged one: parse_workbook rejects it with the details
        return None
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > RATIO_CHECKED_ABOVE and ratio > MAX_COMPRESSION_RATIO:
            return (
                f"zip member {member.filename} would expand {ratio:.0f}:1 ({member.compress_size} to "
                f"{member.file_size} bytes), above {MAX_COMPRESSION_RATIO}:1; not read (a possible zip bomb)"
            )
    total = sum(member.file_size for member in members)
    if total > max_uncompressed_bytes:
        return (
            f"its zip archive would expand to {total} bytes, above FINANCE_MAX_UNCOMPRESSED_BYTES "
            f"({max_uncompressed_bytes}); not read (a possible zip bomb)"
        )
    return None
