"""``pipeline.files``: a published file is replaced whole by a rename, never rewritten in place."""

from __future__ import annotations

import os
import stat
import time

import pytest

from pipeline.files import (
    atomic_target,
    remove_stale_temporaries,
    stale_temporaries,
    temporary_sibling,
    write_atomic,
)


def test_write_atomic_writes_the_whole_text_readable_by_others(tmp_path):
    path = write_atomic(tmp_path / "new" / "latest.txt", "Dữ liệu\n")
    assert path.read_bytes() == "Dữ liệu\n".encode()
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    write_atomic(path, b"\x00\x01binary")
    assert path.read_bytes() == b"\x00\x01binary"
    assert [p.name for p in path.parent.iterdir()] == ["latest.txt"], "no temporary file left behind"


def test_a_reader_of_the_previous_file_keeps_reading_it_whole(tmp_path):
    path = tmp_path / "latest.html"
    path.write_text("previous report " * 1000)
    with path.open("rb") as reader:  # e.g. a web server sending the page while the night rewrites it
        reader.read(10)
        write_atomic(path, "new report")
        assert reader.read() == ("previous report " * 1000).encode()[10:]
    assert path.read_text() == "new report"


def test_a_failing_writer_leaves_the_previous_file_untouched(tmp_path):
    path = tmp_path / "cong-khai-2023-06.xlsx"
    path.write_bytes(b"previous workbook")
    with pytest.raises(RuntimeError, match="disk full"), atomic_target(path) as tmp:
        tmp.write_bytes(b"half a workb")
        raise RuntimeError("disk full")
    assert path.read_bytes() == b"previous workbook"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cong-khai-2023-06.xlsx"]
    with atomic_target(path) as tmp:
        tmp.write_bytes(b"new workbook")
        assert path.read_bytes() == b"previous workbook", "nothing changes before the block ends"
    assert path.read_bytes() == b"new workbook"


def test_temporary_names_are_hidden_siblings_no_final_name_matches(tmp_path):
    path = tmp_path / "cong-khai-2023-06.html"
    tmp = temporary_sibling(path)
    assert tmp.parent == tmp_path and tmp.name.startswith(".cong-khai-2023-06.html.") and tmp.suffix == ".tmp"
    assert tmp.exists() and not path.exists()
    assert not list(tmp_path.glob("cong-khai-*")), "a glob of the published names does not see it"


def test_only_stale_temporaries_of_that_name_are_removed(tmp_path):
    path = tmp_path / "latest.html"
    old, fresh, other = temporary_sibling(path), temporary_sibling(path), temporary_sibling(tmp_path / "other.html")
    two_hours_ago = time.time() - 7200
    for p in (old, other):
        os.utime(p, (two_hours_ago, two_hours_ago))
    assert stale_temporaries(path) == [old]
    assert remove_stale_temporaries(path) == [old]
    assert not old.exists() and fresh.exists() and other.exists(), "a recent one may be a writer's work in progress"
    assert stale_temporaries(tmp_path / "missing" / "x.html") == []
