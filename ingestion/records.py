"""Pure functions that decide whether a received record can be landed, and how it is stored.

Pages are decoded with msgspec into raw byte slices, one per record, and only the few fields the
loader needs (key, ``NgayCapNhat``, ``DaXoa``) are decoded from each; the record's bytes are stored as
received (PostgreSQL parses them into JSONB), unknown fields included. This keeps the client's cost
per dossier at a few microseconds instead of a full parse and re-serialisation.

A record lands when it is a JSON object with a non-empty key, (for dossiers) a parseable
``NgayCapNhat``, and nothing PostgreSQL's ``jsonb`` cannot store. Anything else goes to quarantine with
the reason and the bytes as received. What ``jsonb`` cannot store, found before the COPY so a bad record
never costs its window a round trip:

- a lone UTF-16 surrogate (``"\\ud800"`` not followed by a low surrogate, or a lone low one) — what .NET
  serialisers emit when they cut a string in the middle of a pair;
- ``\\u0000`` (NUL) in a string. The six characters ``\\u0000`` *as text* (``"C:\\\\u0000"``, a Windows
  path, whose backslash is itself escaped) are data, not NUL, and land;
- bytes that are not UTF-8, raw control characters inside strings, ``NaN`` or ``Infinity``;
- a number beyond ``numeric``'s range (more than 131,072 digits before the decimal point or 16,383
  after it, e.g. ``1e1000000``);
- nesting deeper than the parsers read (about 1,000 levels);
- a key longer than ``MAX_KEY_BYTES`` (``INGEST_MAX_KEY_BYTES``; a B-tree index entry holds about 2,700
  bytes, and a dossier code is ~30).

The checks cost nothing on a clean page: ``page_hazards`` scans the page's bytes once, and only the
records of a page where it finds something are examined one by one. Anything else PostgreSQL refuses
is found by ``ingestion.landing`` bisecting the COPY.

A tombstone (``DaXoa`` true) that cannot be stored as received but has a valid key still deletes its
dossier: it lands as the minimal tombstone ``{"MaHoSo", "NgayCapNhat", "DaXoa": true}`` and its bytes as
received go to quarantine beside it (``disposition`` "landed as a tombstone"), so nothing is lost.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
import orjson
import xxhash

MAX_KEY_BYTES = 1000
NUMERIC_MAX_INTEGER_DIGITS = 131072  # PostgreSQL numeric: digits before the decimal point
NUMERIC_MAX_SCALE = 16383  # and after it


class Envelope(msgspec.Struct):
    """The contract's list envelope, records left undecoded."""

    total: int
    data: list[msgspec.Raw]
    error_code: Any = "00"
    message: Any = None
    next_cursor: Any = None


ENVELOPE = msgspec.json.Decoder(Envelope)


# --- the tolerant scanner ----------------------------------------------------------------------------------

_WS = re.compile(r"[ \t\n\r]*")
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_STRUCTURAL = re.compile(r'["\[\]{}]')
_SCALAR = re.compile(r"[^\s,\]}]+")


class _Malformed(ValueError):
    pass


def _skip(text: str, i: int) -> int:
    return _WS.match(text, i).end()


def _value_end(text: str, i: int) -> int:
    """The index just after the JSON value starting at ``i`` — found without recursion, so neither depth
    nor a bad escape inside a string stops it; raises _Malformed when the value is cut short."""
    c = text[i]
    if c == '"':
        m = _STRING.match(text, i)
        if m is None:
            raise _Malformed("unterminated string")
        return m.end()
    if c in "[{":
        depth, j = 0, i
        while True:
            m = _STRUCTURAL.search(text, j)
            if m is None:
                raise _Malformed("unterminated array or object")
            if m.group() == '"':
                s = _STRING.match(text, m.start())
                if s is None:
                    raise _Malformed("unterminated string")
                j = s.end()
                continue
            depth += 1 if m.group() in "[{" else -1
            j = m.end()
            if depth == 0:
                return j
    m = _SCALAR.match(text, i)
    if m is None:
        raise _Malformed(f"unexpected {c!r}")
    return m.end()


def split_envelope(content: bytes) -> Envelope | None:
    """The list envelope of a body the fast decoder refused, with each ``data`` item as its exact bytes;
    None when the body is not a complete JSON object holding a ``data`` array (cut short, not JSON).

    The items are not parsed here: a record that is not valid JSON, or that PostgreSQL cannot store, is
    classified on its own (``RecordReader.classify``) instead of costing the whole page."""
    text = content.decode("utf-8", "surrogateescape")
    members: dict[str, Any] = {}
    items: list[bytes] | None = None
    try:
        i = _skip(text, 0)
        if text[i] != "{":
            return None
        i = _skip(text, i + 1)
        if text[i] == "}":
            i += 1
        else:
            while True:
                m = _STRING.match(text, i)
                if m is None:
                    return None
                key = json.loads(m.group())
                i = _skip(text, m.end())
                if text[i] != ":":
                    return None
                i = _skip(text, i + 1)
                if key == "data" and text[i] == "[":
                    items = []
                    j = _skip(text, i + 1)
                    if text[j] == "]":
                        i = j + 1
                    else:
                        while True:
                            end = _value_end(text, j)
                            items.append(text[j:end].encode("utf-8", "surrogateescape"))
                            j = _skip(text, end)
                            if text[j] == ",":
                                j = _skip(text, j + 1)
                                continue
                            if text[j] != "]":
                                return None
                            i = j + 1
                            break
                else:
                    end = _value_end(text, i)
                    members[key] = json.loads(text[i:end])
                    i = end
                i = _skip(text, i)
                if text[i] == ",":
                    i = _skip(text, i + 1)
                    continue
                if text[i] != "}":
                    return None
                i += 1
                break
        if text[_skip(text, i):].strip():
            return None  # something after the envelope
    except (IndexError, ValueError, RecursionError):
        return None
    if items is None:
        return None
    return Envelope(total=members.get("total"), data=items, error_code=members.get("error_code", "00"),
                    message=members.get("message"), next_cursor=members.get("next_cursor"))


# --- what jsonb cannot store -------------------------------------------------------------------------------

_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_LONG_EXPONENT = re.compile(rb"e[+-]?\d{4}")
_LONG_EXPONENT_UPPER = re.compile(rb"E[+-]?\d{4}")
_LONG_FRACTION = re.compile(rb"\.\d{%d}" % (NUMERIC_MAX_SCALE + 1))
_SURROGATE = re.compile("[\ud800-\udfff]")


def page_hazards(content: bytes) -> bool:
    """Whether a page's bytes hold anything that might not be storable (then its records are examined one
    by one): an escaped NUL, a long exponent or fraction, bytes that are not UTF-8. False on a clean page,
    at the cost of one scan."""
    if b"\\u0000" in content and _NUL_ESCAPE.search(content):
        return True
    if _LONG_EXPONENT.search(content) or _LONG_EXPONENT_UPPER.search(content) or _LONG_FRACTION.search(content):
        return True
    if not content.isascii():
        try:
            content.decode("utf-8")
        except UnicodeDecodeError:
            return True
    return False


def _numeric_problem(text: str) -> str | None:
    try:
        _, digits, exponent = Decimal(text).as_tuple()
    except InvalidOperation:
        return f"the number {text[:40]} cannot be read"
    if not isinstance(exponent, int):
        return f"{text[:40]} is not a number"
    if len(digits) + exponent > NUMERIC_MAX_INTEGER_DIGITS or -exponent > NUMERIC_MAX_SCALE:
        return f"the number {text[:40]}{'…' if len(text) > 40 else ''} is beyond PostgreSQL numeric's range"
    return None


@dataclass
class _Inspection:
    """What the standard library's parser made of a record the fast path could not take."""

    obj: Any = None
    problems: list[str] = field(default_factory=list)

    def add(self, problem: str) -> None:
        if problem not in self.problems:
            self.problems.append(problem)


def _inspect(data: bytes) -> _Inspection:
    """Parse ``data`` with the standard library (which reads lone surrogates, raw control characters,
    NaN) and name everything in it that PostgreSQL's jsonb refuses, with the path where it is."""
    found = _Inspection()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = data.decode("utf-8", "surrogateescape")
        found.add(f"bytes that are not UTF-8 (at byte {exc.start})")

    def number(token: str) -> int:
        problem = _numeric_problem(token)
        if problem:
            found.add(problem)
        return 0

    def constant(token: str) -> None:
        found.add(f"{token} is not a JSON value PostgreSQL accepts")
        return None

    options = {"parse_float": number, "parse_int": number, "parse_constant": constant}
    try:
        found.obj = json.loads(text, **options)
    except RecursionError:
        found.add("nested too deeply to be read (more than about 1,000 levels)")
        return found
    except ValueError as exc:
        try:
            found.obj = json.loads(text, strict=False, **options)
            found.add("a string holds a raw control character (it must be escaped)")
        except (ValueError, RecursionError):
            found.add(f"not valid JSON ({str(exc).splitlines()[0][:120]})")
            return found
    # Strings: every key and value, iteratively (the depth is already known to be readable).
    stack: list[tuple[str, Any]] = [("$", found.obj)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            for k, v in value.items():
                _check_string(k, f"{path} (a key)", found)
                stack.append((f"{path}.{k}" if _SURROGATE.search(k) is None else f"{path}.?", v))
        elif isinstance(value, list):
            stack.extend((f"{path}[{n}]", v) for n, v in enumerate(value))
        elif isinstance(value, str):
            _check_string(value, path, found)
    return found


def _check_string(value: str, path: str, found: _Inspection) -> None:
    if "\x00" in value:
        found.add(f"\\u0000 (NUL) in a string, which PostgreSQL cannot store, at {path}")
    match = _SURROGATE.search(value)
    if match:
        char = match.group()
        if "\udc80" <= char <= "\udcff" and any(p.startswith("bytes that are not UTF-8") for p in found.problems):
            return  # a byte that is not UTF-8, already named
        found.add(f"a lone UTF-16 surrogate (\\u{ord(char):04x}) in a string, at {path}")


# --- classification --------------------------------------------------------------------------------------

def parse_ts(value) -> datetime | None:
    """A contract timestamp (``yyyyMMddHHmmss``, local time) as a naive datetime; None when missing
    (``null`` or ``""``) or not a valid timestamp."""
    if not isinstance(value, str) or len(value) != 14 or not value.isascii() or not value.isdigit():
        return None
    try:  # ISO 8601 basic format: the same checks as datetime(y, m, d, H, M, S), a tenth of the cost
        return datetime.fromisoformat(f"{value[:8]}T{value[8:]}")
    except ValueError:
        return None


def digest(data: bytes) -> bytes:
    """Content hash of a record's bytes (128-bit XXH3: identity, not security)."""
    return xxhash.xxh3_128_digest(data)


def same_content(a: bytes, b: bytes) -> bool:
    """Whether two serialisations hold the same JSON (key order and spacing aside)."""
    try:
        return orjson.loads(a) == orjson.loads(b)
    except orjson.JSONDecodeError:
        return json.loads(a) == json.loads(b)


@dataclass(frozen=True)
class Rejected:
    reason: str
    raw_text: str  # the bytes as text (a byte that is not UTF-8 as U+FFFD, NUL as \u0000 escaped)
    raw_hash: bytes
    raw_bytes: bytes = b""  # exactly as received
    key: str | None = None  # the record's key, when one could be read
    updated_at: datetime | None = None


@dataclass(slots=True)  # built once a record: not frozen, which would cost four times as much to build
class Landable:
    key: str
    updated_at: datetime | None  # None: a tombstone whose NgayCapNhat cannot be read (the loader dates it)
    updated_text: str | None  # NgayCapNhat as ISO 8601 basic (yyyyMMddTHHmmss), which PostgreSQL reads
    is_deleted: bool
    content_hash: bytes
    payload: bytes  # the record's JSON as received (or the minimal tombstone, see ``original``)
    original: Rejected | None = None  # a tombstone landed minimal: its bytes as received, for quarantine


def reject(raw: bytes, reason: str, key: str | None = None, updated_at: datetime | None = None) -> Rejected:
    """A record that cannot be landed, kept as bytes and text with the reason."""
    text = raw.decode("utf-8", errors="replace").replace("\x00", "\\u0000")
    return Rejected(reason, text, digest(raw), raw, key, updated_at)


def storable_key(value: Any, max_bytes: int = MAX_KEY_BYTES) -> str | None:
    """The key if it can be stored and indexed, else None."""
    if not isinstance(value, str) or not value.strip():
        return None
    if "\x00" in value or _SURROGATE.search(value) or len(value.encode("utf-8", "surrogatepass")) > max_bytes:
        return None
    return value


class RecordReader:
    """Classifies the raw records of one source, keyed by ``key_field`` (and versioned by ``updated_field``)."""

    def __init__(self, key_field: str, updated_field: str | None = None, canonical: bool = False,
                 max_key_bytes: int = MAX_KEY_BYTES):
        # canonical: hash the sorted-key form, so a server that reorders keys does not look like a change
        # (worth its cost for the small reference lists, compared every night).
        self.key_field, self.updated_field, self.canonical = key_field, updated_field, canonical
        self.max_key_bytes = max_key_bytes
        fields = [(key_field, Any, None), ("DaXoa", Any, None)]
        if updated_field:
            fields.append((updated_field, Any, None))
        # gc=False: a decoded head holds no cycle, and the garbage collector need not track one per record.
        self._head = msgspec.json.Decoder(msgspec.defstruct("Head", fields, forbid_unknown_fields=False, gc=False))

    def classify(self, raw: msgspec.Raw | bytes, suspect: bool = False) -> Landable | Rejected:
        """Land, or reject with a reason. ``suspect``: the page showed hazards (``page_hazards``), so this
        record's storability is examined; otherwise only what the fast decoder itself refuses is."""
        data = bytes(raw)
        try:
            head = self._head.decode(data)
        except msgspec.ValidationError:
            return reject(data, "not a JSON object")
        except (msgspec.DecodeError, RecursionError):
            return self._from_inspection(data, _inspect(data))
        if suspect or len(data) > NUMERIC_MAX_INTEGER_DIGITS:
            found = _inspect(data)
            if found.problems:
                return self._from_inspection(data, found)
        key = getattr(head, self.key_field)
        if not isinstance(key, str) or not key.strip():
            return reject(data, f"no key: {self.key_field} is missing or empty")
        # An ASCII key without NUL holds no surrogate and is as long in bytes as in characters.
        if not (key.isascii() and len(key) <= self.max_key_bytes and "\x00" not in key) and \
                storable_key(key, self.max_key_bytes) is None:
            return reject(data, f"the key {self.key_field} cannot be stored ({len(key.encode()):,} bytes; at most "
                                f"{self.max_key_bytes:,})")
        updated = updated_text = None
        if self.updated_field:
            value = getattr(head, self.updated_field)
            # parse_ts, inlined: the ISO 8601 basic text is kept as well.
            if isinstance(value, str) and len(value) == 14 and value.isascii() and value.isdigit():
                updated_text = f"{value[:8]}T{value[8:]}"
                try:
                    updated = datetime.fromisoformat(updated_text)
                except ValueError:
                    updated_text = None
            if updated is None and head.DaXoa is not True:
                return reject(data, f"{self.updated_field} missing or not yyyyMMddHHmmss: {_short(value)}", key)
            # A tombstone whose NgayCapNhat cannot be read still deletes its dossier: the loader dates it.
        content = orjson.dumps(orjson.loads(data), option=orjson.OPT_SORT_KEYS) if self.canonical else data
        return Landable(key, updated, updated_text, head.DaXoa is True, digest(content), data)

    def _from_inspection(self, data: bytes, found: _Inspection) -> Landable | Rejected:
        """A record the fast path refused or found unstorable: a reason, and for a tombstone with a valid
        key, the minimal tombstone that still deletes its dossier."""
        reason = "cannot be stored: " + "; ".join(found.problems)
        obj = found.obj
        if not isinstance(obj, dict):
            return reject(data, reason if obj is None and found.problems else "not a JSON object")
        key = storable_key(obj.get(self.key_field), self.max_key_bytes)
        updated = parse_ts(obj.get(self.updated_field)) if self.updated_field else None
        if key is None:
            return reject(data, f"no usable key ({self.key_field} missing, empty or unstorable); {reason}")
        if self.updated_field and obj.get("DaXoa") is True and found.problems:
            minimal = {self.key_field: key, self.updated_field: None if updated is None else f"{updated:%Y%m%d%H%M%S}",
                       "DaXoa": True}
            payload = orjson.dumps(minimal)
            original = reject(data, f"tombstone landed without its other fields, which {reason}", key, updated)
            return Landable(key, updated, None if updated is None else f"{updated:%Y%m%dT%H%M%S}", True,
                            digest(payload), payload, original)
        if found.problems:
            return reject(data, reason, key, updated)
        # Readable after all (e.g. a long exponent that fits numeric): the fast path's rules apply.
        if self.updated_field and updated is None and obj.get("DaXoa") is not True:
            return reject(data, f"{self.updated_field} missing or not yyyyMMddHHmmss: "
                                f"{_short(obj.get(self.updated_field))}", key)
        updated_text = None if updated is None else f"{updated:%Y%m%dT%H%M%S}"
        content = orjson.dumps(orjson.loads(data), option=orjson.OPT_SORT_KEYS) if self.canonical else data
        return Landable(key, updated, updated_text, obj.get("DaXoa") is True, digest(content), data)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


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
