"""Every published file is replaced whole (the report, ``latest.html``, the publication, the digest), and a
month counts as published only when both of its files are complete."""

from __future__ import annotations

import dataclasses
import os
import time
from datetime import date
from pathlib import Path

import psycopg
import pytest
from openpyxl import load_workbook

from expectations.digest import digest_paths, send_digest
from ops.publish import publish_due_month
from publication.report import write_report
from tests.publication.scenario import RUN_ID

MONTH = "2023-06"  # the due month of a warehouse built as of 2023-07-01: the month before its as-of date
STALE = time.time() - 2 * 3600


@pytest.fixture
def settings(built, tmp_path):
    return dataclasses.replace(built["settings"], reports_dir=tmp_path / "reports")


def folder(settings) -> Path:
    return settings.reports_dir / "cong-khai"


def names(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def assert_whole(html: Path, xlsx: Path) -> None:
    text = html.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert load_workbook(xlsx).sheetnames == ["Cấp tỉnh", "Cấp huyện", "Cấp xã"]


def test_a_month_is_published_once_both_files_exist(settings):
    first = publish_due_month(settings=settings)
    html, xlsx = (folder(settings) / f"cong-khai-{MONTH}.{ext}" for ext in ("html", "xlsx"))
    assert first == {"month": MONTH, "published": [str(html), str(xlsx)]}
    assert_whole(html, xlsx)
    assert names(folder(settings)) == [html.name, xlsx.name], "no temporary file left"
    again = publish_due_month(settings=settings)
    assert again == {"month": MONTH, "published": [], "already": [str(html), str(xlsx)]}


@pytest.mark.parametrize("left", [
    [f"cong-khai-{MONTH}.html"],  # a crash after the page, before the workbook
    [f"cong-khai-{MONTH}.xlsx"],
    [f".cong-khai-{MONTH}.xlsx.k3j9x2.tmp", f"cong-khai-{MONTH}.html"],  # and a killed writer's temporary file
    [f"cong-khai-{MONTH}.xlsx.tmp"],  # the temporary name earlier versions used
    [f"cong-khai-{MONTH}.html", f"cong-khai-{MONTH}.xlsx.tmp"],
])
def test_an_incomplete_month_is_published_again(settings, left):
    out = folder(settings)
    out.mkdir(parents=True)
    for name in left:
        (out / name).write_text("half a fi", encoding="utf-8")
        os.utime(out / name, (STALE, STALE))
    result = publish_due_month(settings=settings)
    html, xlsx = out / f"cong-khai-{MONTH}.html", out / f"cong-khai-{MONTH}.xlsx"
    assert result == {"month": MONTH, "published": [str(html), str(xlsx)]}
    assert_whole(html, xlsx)
    stale_ours = {n for n in left if n.startswith(".")}
    assert not stale_ours & set(names(out)), "a killed writer's temporary file is cleaned up once stale"


def test_an_empty_file_does_not_count(settings):
    out = folder(settings)
    out.mkdir(parents=True)
    (out / f"cong-khai-{MONTH}.html").write_text("", encoding="utf-8")
    (out / f"cong-khai-{MONTH}.xlsx").write_bytes(b"")
    assert publish_due_month(settings=settings)["published"]
    assert_whole(out / f"cong-khai-{MONTH}.html", out / f"cong-khai-{MONTH}.xlsx")


def test_a_fresh_temporary_file_is_left_to_its_writer(settings):
    out = folder(settings)
    out.mkdir(parents=True)
    working = out / f".cong-khai-{MONTH}.html.w0rk1n.tmp"
    working.write_text("another writer's page, being written", encoding="utf-8")
    publish_due_month(settings=settings)
    assert working.read_text(encoding="utf-8") == "another writer's page, being written"


def test_the_publication_replaces_its_files_whole(settings):
    publish_due_month(settings=settings)
    html = folder(settings) / f"cong-khai-{MONTH}.html"
    previous = html.read_bytes()
    with html.open("rb") as reader:  # a web server sending the page while the month is forced again
        publish_due_month(MONTH, force=True, settings=settings)
        assert reader.read() == previous
    assert names(folder(settings)) == [f"cong-khai-{MONTH}.html", f"cong-khai-{MONTH}.xlsx"]


def test_the_report_and_latest_html_are_replaced_whole(built, tmp_path):
    out = tmp_path / "report"
    dated = write_report(built["url"], out)
    previous = (out / "latest.html").read_bytes()
    assert previous == dated.read_bytes()
    with (out / "latest.html").open("rb") as latest_reader, dated.open("rb") as dated_reader:
        assert write_report(built["url"], out) == dated  # the same night, written again
        earlier = write_report(built["url"], out, as_of=date(2023, 6, 15))
        assert latest_reader.read() == previous, "latest.html was rewritten in place under its reader"
        assert dated_reader.read() == previous
    assert (out / "latest.html").read_bytes() == earlier.read_bytes() != previous
    assert names(out) == ["bao-cao-2023-06-15.html", "bao-cao-2023-07-01.html", "latest.html"]


def test_the_digest_files_are_replaced_whole(built, settings):
    with psycopg.connect(built["url"]) as conn:
        run_date = conn.execute("SELECT run_date::text FROM audit.pipeline_runs WHERE run_id = %s",
                                (RUN_ID,)).fetchone()[0]
        dated, latest = digest_paths(settings, run_date)
        dated.parent.mkdir(parents=True)
        for path in (dated, latest):
            path.write_text("yesterday's digest\n", encoding="utf-8")
        with dated.open("rb") as dated_reader, latest.open("rb") as latest_reader:
            result = send_digest(conn, RUN_ID, settings, deliver=False)
            assert dated_reader.read() == latest_reader.read() == b"yesterday's digest\n"
    assert result["file"] == str(dated)
    body = dated.read_text(encoding="utf-8")
    assert f"Data quality, run {RUN_ID}" in body.splitlines()[0] and latest.read_text(encoding="utf-8") == body
    assert names(dated.parent) == sorted([dated.name, latest.name])
