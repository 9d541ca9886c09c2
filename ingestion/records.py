"""Pure functions that decide whether a received record can be landed, and how it is stored.

Pages are decoded with msgspec into raw byte slices, one per record, and only the few fields the
loader needs (key, ``NgayCapNhat``, ``DaXoa``) are decoded from each; the record's bytes are stored as
received (PostgreSQL parses them into JSONB), unknown fields included. This keeps the client's cost
per dossier at a few microseconds instead of a full parse and re-serialisation.

A record lands when it is a JSON object with a non-empty key and (for dossiers) a parseable
``NgayCapNhat``; anything else goes to quarantine with the reason and the text as received.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
import orjson
import xxhash


class Envelope(msgspec.Struct):
    """The contract's list envelope, records left undecoded."""

    total: int
    data: list[msgspec.Raw]
    error_code: Any = "00"
    message: Any = None
    next_cursor: Any = None


ENVELOPE = msgspec.json.Decoder(Envelope)


def parse_ts(value) -> datetime | None:
    """A contract timestamp (``yyyyMMddHHmmss``, local time) as a naive datetime; None when missing
    (``null`` or ``""``) or not a valid timestamp."""
    if not isinstance(value, str) or len(value) != 14 or not value.isdigit():
        return None
    try:
        return datetime(int(value[:4]), int(value[4:6]), int(value[6:8]), int(value[8:10]), int(value[10:12]),
                        int(value[12:14]))
    except ValueError:
        return None


def digest(data: bytes) -> bytes:
    """Content hash of a record's bytes (128-bit XXH3: identity, not security)."""
    return xxhash.xxh3_128_digest(data)


def same_content(a: bytes, b: bytes) -> bool:
    """Whether two serialisations hold the same JSON (key order and spacing aside)."""
    return orjson.loads(a) == orjson.loads(b)


@dataclass(frozen=True, slots=True)
class Landable:
    key: str
    updated_at: datetime | None
    updated_text: str | None  # NgayCapNhat as ISO 8601 basic (yyyyMMddTHHmmss), which PostgreSQL reads
    is_deleted: bool
    content_hash: bytes
    payload: bytes  # the record's JSON as received


@dataclass(frozen=True)
class Rejected:
    reason: str
    raw_text: str
    raw_hash: bytes


def reject(raw: bytes, reason: str) -> Rejected:
    """A record that cannot be landed, kept as text with the reason."""
    return Rejected(reason, raw.decode("utf-8", errors="replace"), digest(raw))


class RecordReader:
    """Classifies the raw records of one source, keyed by ``key_field`` (and versioned by ``updated_field``)."""

    def __init__(self, key_field: str, updated_field: str | None = None, canonical: bool = False):
        # canonical: hash the sorted-key form, so a server that reorders keys does not look like a change
        # (worth its cost for the small reference lists, compared every night).
        self.key_field, self.updated_field, self.canonical = key_field, updated_field, canonical
        fields = [(key_field, Any, None), ("DaXoa", Any, None)]
        if updated_field:
            fields.append((updated_field, Any, None))
        self._head = msgspec.json.Decoder(msgspec.defstruct("Head", fields, forbid_unknown_fields=False))

    def classify(self, raw: msgspec.Raw | bytes) -> Landable | Rejected:
        data = bytes(raw)
        try:
            head = self._head.decode(data)
        except msgspec.ValidationError:
            return reject(data, "not a JSON object")
        key = getattr(head, self.key_field)
        if not isinstance(key, str) or not key.strip():
            return reject(data, f"no key: {self.key_field} is missing or empty")
        updated = updated_text = None
        if self.updated_field:
            value = getattr(head, self.updated_field)
            updated = parse_ts(value)
            if updated is None:
                return reject(data, f"{self.updated_field} missing or not yyyyMMddHHmmss: {value!r}")
            updated_text = f"{value[:8]}T{value[8:]}"
        if b"\\u0000" in data:
            return reject(data, "contains \\u0000, which PostgreSQL jsonb cannot store")
        content = orjson.dumps(orjson.loads(data), option=orjson.OPT_SORT_KEYS) if self.canonical else data
        return Landable(key, updated, updated_text, head.DaXoa is True, digest(content), data)


_TEXT_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(value: str) -> str:
    """Escape a value for PostgreSQL's COPY text format."""
    return value.translate(_TEXT_ESCAPES)


def copy_json(payload: bytes) -> bytes:
    """Escape serialised JSON for COPY text format: backslashes, and the whitespace a pretty-printing
    server may put between tokens (JSON strings themselves hold no raw control characters)."""
    payload = payload.replace(b"\\", b"\\\\")
    if b"\n" in payload or b"\t" in payload or b"\r" in payload:
        payload = payload.replace(b"\n", b"\\n").replace(b"\t", b"\\t").replace(b"\r", b"\\r")
    return payload
