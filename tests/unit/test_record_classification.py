"""What a received record becomes (``ingestion.records``): landed as received, landed as a minimal tombstone, or
rejected with a reason. The expectations come from the procedure-API contract (a missing value is ``null`` or
``""``, unknown fields are kept, ``DaXoa`` is a tombstone) and the module's documented list of what
PostgreSQL's ``jsonb`` cannot store; each record is written out as the bytes a server would send."""

from __future__ import annotations

import json
from datetime import datetime

import msgspec
import pytest

from ingestion.records import ENVELOPE, Landable, RecordReader, Rejected, page_hazards, split_envelope

DOSSIERS = RecordReader("MaHoSo", "NgayCapNhat")
STAMP = '"NgayCapNhat":"20230105101010"'
WHEN = datetime(2023, 1, 5, 10, 10, 10)


def record(*fields: str, key: str = '"MaHoSo":"HS-1"', stamp: str = STAMP) -> bytes:
    """A dossier record as JSON text: its key, its NgayCapNhat, then ``fields`` (each ``"name":value``)."""
    return ("{" + ",".join(f for f in (key, stamp, *fields) if f) + "}").encode()


def page(*records: bytes, cursor: str = "null") -> bytes:
    """A list envelope holding ``records`` as they are."""
    return (b'{"error_code":"00","message":"OK","total":%d,"next_cursor":%s,"data":[' % (len(records), cursor.encode())
            + b",".join(records) + b"]}")


def assert_rejected(result, *words: str) -> Rejected:
    assert isinstance(result, Rejected), result
    for word in words:
        assert word in result.reason, (word, result.reason)
    return result


# --- landed as received --------------------------------------------------------------------------------------


def test_a_clean_dossier_lands_as_received_with_its_unknown_fields():
    raw = record('"ChuHoSo":"Nguyễn Văn A"', '"TruongMoi":{"x":[1,2]}')
    landed = DOSSIERS.classify(raw)
    assert isinstance(landed, Landable)
    assert (landed.key, landed.updated_at, landed.updated_text, landed.is_deleted) == (
        "HS-1", WHEN, "20230105T101010", False)
    assert landed.payload == raw and landed.original is None


def test_the_same_record_has_the_same_hash_and_another_record_another():
    a, b = DOSSIERS.classify(record('"X":1')), DOSSIERS.classify(record('"X":2'))
    assert a.content_hash == DOSSIERS.classify(record('"X":1')).content_hash != b.content_hash


def test_a_surrogate_pair_is_a_character_and_lands():
    assert isinstance(DOSSIERS.classify(record('"ChuHoSo":"\\ud83d\\ude00"')), Landable)


# --- refused by the contract ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stamp", ['"NgayCapNhat":null', '"NgayCapNhat":""', '"NgayCapNhat":"2023-01-05"',
                                   '"NgayCapNhat":"20231305101010"', ""])
def test_a_dossier_without_a_readable_ngaycapnhat_is_rejected(stamp):
    assert_rejected(DOSSIERS.classify(record(stamp=stamp)), "NgayCapNhat")


@pytest.mark.parametrize("key", ['"MaHoSo":""', '"MaHoSo":"   "', '"MaHoSo":null', '"MaHoSo":42', ""])
def test_a_record_without_a_key_is_rejected(key):
    assert_rejected(DOSSIERS.classify(record(key=key)), "MaHoSo")


@pytest.mark.parametrize("raw", [b'["MaHoSo","HS-1"]', b'"HS-1"', b"42", b"null"])
def test_what_is_not_a_json_object_is_rejected(raw):
    assert_rejected(DOSSIERS.classify(raw), "not a JSON object")


def test_a_key_of_1000_bytes_lands_and_one_of_1002_is_rejected():
    # "Đ" is two bytes in UTF-8: MAX_KEY_BYTES (1000) is reached with 500 of them.
    assert isinstance(DOSSIERS.classify(record(key='"MaHoSo":"' + "Đ" * 500 + '"')), Landable)
    assert_rejected(DOSSIERS.classify(record(key='"MaHoSo":"' + "Đ" * 501 + '"')), "MaHoSo", "1,002 bytes")


# --- what jsonb cannot store -----------------------------------------------------------------------------------


@pytest.mark.parametrize("escape", ["\\ud800", "\\udbff", "\\udc00", "\\udfff", "\\ude00\\ud83d"])
def test_a_lone_surrogate_is_rejected_naming_it_and_where(escape):
    raw = record(f'"ChuHoSo":"Nguy{escape}n"')
    for suspect in (False, True):
        rejected = assert_rejected(DOSSIERS.classify(raw, suspect=suspect), "lone UTF-16 surrogate", "$.ChuHoSo")
        assert rejected.raw_bytes == raw and rejected.key == "HS-1" and rejected.updated_at == WHEN


def test_a_page_holding_a_lone_surrogate_is_split_and_only_that_record_is_rejected():
    good, bad = record('"ChuHoSo":"An"', key='"MaHoSo":"HS-1"'), record('"ChuHoSo":"\\ud800"', key='"MaHoSo":"HS-2"')
    body = page(good, bad)
    with pytest.raises(msgspec.DecodeError):
        ENVELOPE.decode(body)  # the fast decoder refuses the whole page ...
    envelope = split_envelope(body)  # ... the tolerant scanner keeps each record's exact bytes
    assert envelope is not None and envelope.data == [good, bad] and envelope.total == 2
    landed, rejected = (DOSSIERS.classify(r, suspect=True) for r in envelope.data)
    assert isinstance(landed, Landable) and landed.key == "HS-1"
    assert_rejected(rejected, "lone UTF-16 surrogate")


def test_an_escaped_nul_is_a_hazard_and_is_rejected():
    raw = record('"TrichYeuHoSo":"a\\u0000b"')
    assert page_hazards(page(raw))
    assert_rejected(DOSSIERS.classify(raw, suspect=True), "\\u0000 (NUL)", "$.TrichYeuHoSo")


@pytest.mark.parametrize("text", ["C:\\\\u0000", "\\\\\\\\u0000", "x\\\\u0000\\\\u0000"])
def test_an_escaped_backslash_before_u0000_is_text_and_lands(text):
    # JSON "C:\\u0000" is the seven characters C:\u0000 (a Windows path): data, not NUL.
    raw = record(f'"DuongDan":"{text}"')
    assert not page_hazards(page(raw))
    landed = DOSSIERS.classify(raw, suspect=True)
    assert isinstance(landed, Landable) and landed.payload == raw
    assert "\\u0000" in json.loads(raw)["DuongDan"] and "\x00" not in json.loads(raw)["DuongDan"]


def test_an_escaped_backslash_then_an_escaped_nul_is_a_nul():
    raw = record('"DuongDan":"C:\\\\\\u0000"')  # JSON "C:\\\u0000": a backslash, then NUL
    assert "\x00" in json.loads(raw)["DuongDan"]
    assert page_hazards(page(raw))
    assert_rejected(DOSSIERS.classify(raw, suspect=True), "NUL")


@pytest.mark.parametrize(("number", "storable"), [
    ("9" * 131_072, True),  # numeric's 131,072 digits before the decimal point
    ("9" * 131_073, False),
    ("0." + "9" * 16_383, True),  # and 16,383 after it
    ("0." + "9" * 16_384, False),
    ("1e131071", True),  # 1 followed by 131,071 zeros: 131,072 digits
    ("1e131072", False),
    ("1E-16383", True),
    ("1e-16384", False),
    ("-" + "9" * 131_072 + "." + "9" * 16_383, True),
])
def test_numbers_at_and_just_beyond_numeric_limits(number, storable):
    raw = record(f'"SoTien":{number}')
    suspect = page_hazards(page(raw))  # what the client passes on
    result = DOSSIERS.classify(raw, suspect=suspect)
    if storable:
        assert isinstance(result, Landable) and result.payload == raw, getattr(result, "reason", result)
    else:
        assert_rejected(result, "beyond PostgreSQL numeric's range")


@pytest.mark.parametrize("number", ["1e131072", "0." + "9" * 16_384])
def test_long_exponents_and_fractions_make_a_page_suspect(number):
    assert page_hazards(page(record(f'"SoTien":{number}')))


def test_a_clean_page_is_not_suspect():
    assert not page_hazards(page(record('"ChuHoSo":"Trần Thị Bích"', '"SoTien":1.5e3'), record()))


def test_bytes_that_are_not_utf8_are_a_hazard_and_rejected():
    raw = record('"ChuHoSo":"')[:-1] + b'B\xe1n"}'
    assert page_hazards(page(raw))
    assert_rejected(DOSSIERS.classify(raw, suspect=True), "not UTF-8")


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_rejected(value):
    assert_rejected(DOSSIERS.classify(record(f'"SoTien":{value}')), value)


def test_a_raw_control_character_in_a_string_is_rejected():
    assert_rejected(DOSSIERS.classify(record('"ChuHoSo":"a\tb"')), "control character")


def test_nesting_deeper_than_the_parsers_read_is_rejected_but_its_page_still_splits():
    deep = "[" * 5000 + "]" * 5000
    raw = record(f'"Sau":{deep}')
    envelope = split_envelope(page(raw, record(key='"MaHoSo":"HS-2"')))
    assert envelope is not None and envelope.data[0] == raw
    assert_rejected(DOSSIERS.classify(raw), "nested too deeply")


# --- tombstones ------------------------------------------------------------------------------------------------


def test_a_tombstone_with_broken_fields_lands_minimal_and_keeps_its_bytes_for_quarantine():
    raw = record('"DaXoa":true', '"ChuHoSo":"\\ud800"', '"SoTien":1e999999')
    landed = DOSSIERS.classify(raw, suspect=True)
    assert isinstance(landed, Landable)
    assert (landed.key, landed.updated_at, landed.is_deleted) == ("HS-1", WHEN, True)
    assert json.loads(landed.payload) == {"MaHoSo": "HS-1", "NgayCapNhat": "20230105101010", "DaXoa": True}
    original = assert_rejected(landed.original, "tombstone landed without its other fields",
                               "lone UTF-16 surrogate", "numeric")
    assert original.raw_bytes == raw and original.key == "HS-1"


def test_a_tombstone_with_broken_fields_and_no_readable_ngaycapnhat_still_deletes():
    landed = DOSSIERS.classify(record('"DaXoa":true', '"ChuHoSo":"\\udfff"', stamp='"NgayCapNhat":""'))
    assert isinstance(landed, Landable) and landed.is_deleted and landed.updated_at is None
    assert json.loads(landed.payload) == {"MaHoSo": "HS-1", "NgayCapNhat": None, "DaXoa": True}
    assert landed.original is not None


@pytest.mark.parametrize("stamp", ['"NgayCapNhat":null', '"NgayCapNhat":""'])
def test_a_clean_tombstone_without_ngaycapnhat_lands_as_received_for_the_loader_to_date(stamp):
    # The contract: a tombstone's other fields may be null.
    raw = record('"DaXoa":true', '"ChuHoSo":null', stamp=stamp)
    landed = DOSSIERS.classify(raw)
    assert isinstance(landed, Landable) and landed.is_deleted and landed.updated_at is None
    assert landed.payload == raw and landed.original is None


def test_a_broken_tombstone_without_a_usable_key_is_rejected():
    assert_rejected(DOSSIERS.classify(record('"DaXoa":true', '"X":"\\ud800"', key='"MaHoSo":"\\ud800"'),
                                      suspect=True), "no usable key")


def test_only_daxoa_true_is_a_tombstone():
    for flag in ('"DaXoa":false', '"DaXoa":1', '"DaXoa":"true"', '"DaXoa":null'):
        landed = DOSSIERS.classify(record(flag))
        assert isinstance(landed, Landable) and not landed.is_deleted, flag


# --- the tolerant scanner --------------------------------------------------------------------------------------


def test_split_envelope_keeps_each_record_exactly_as_sent():
    records = [b'{ "MaHoSo" : "A" ,\n "Ghi":"]}\\"{[" }', b'{"MaHoSo":"B","L":[{"a":[]},"}"]}', b"[1,2]", b'"text"']
    body = (b'{\n "total": 4,\n "data": [ ' + b" ,\n ".join(records) + b' ],\n "next_cursor": "b64-abc",'
            b' "error_code": "00", "message": "OK"}\n')
    envelope = split_envelope(body)
    assert envelope is not None
    assert envelope.data == records
    assert (envelope.total, envelope.next_cursor, envelope.error_code, envelope.message) == (4, "b64-abc", "00", "OK")


def test_split_envelope_of_an_empty_page():
    envelope = split_envelope(b'{"total":0,"data":[],"next_cursor":null}')
    assert envelope is not None and envelope.data == [] and envelope.next_cursor is None


@pytest.mark.parametrize("body", [
    b'{"total":2,"data":[{"MaHoSo":"A"},{"MaHoSo":"B"',  # cut short
    b'{"total":1,"data":[{"MaHoSo":"A"}]}{"total":1}',  # something after the envelope
    b'{"total":1,"data":[{"MaHoSo":"A"}] "next_cursor":null}',  # a comma missing
    b'{"total":1}',  # no data
    b'{"total":1,"data":{"MaHoSo":"A"}}',  # data not an array
    b'[{"MaHoSo":"A"}]',  # not an envelope
    b"<html>502 Bad Gateway</html>",
    b"",
])
def test_split_envelope_refuses_what_is_not_a_complete_envelope(body):
    assert split_envelope(body) is None
