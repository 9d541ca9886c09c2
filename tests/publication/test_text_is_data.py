"""Text from the API is shown, never run: units served under names such as ``=HYPERLINK(...)`` or
``<script>`` (``scenario.HOSTILE_NAMES``) reach the workbook as text cells and the pages as escaped text."""

from __future__ import annotations

import json
import re
import zipfile
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

import pytest
from openpyxl import load_workbook

from publication.monthly import write_publication
from publication.report import write_report
from tests.publication.scenario import HOSTILE_NAMES

NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
FORMULA_LIKE = tuple(n for n in HOSTILE_NAMES if n[0] in "=+-@")
SCRIPT = "<script>alert(1)</script>"


def ranked_names(reference: dict) -> dict[date, set[str]]:
    """The hostile names among each month's ranked units, from the independent reference."""
    out: dict[date, set[str]] = {}
    for r in reference["rpt_monthly_ranking"]:
        if r["unit_name"] in HOSTILE_NAMES:
            out.setdefault(r["month"], set()).add(r["unit_name"])
    return out


@pytest.fixture(scope="module")
def publications(built, reference, tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile-cong-khai")
    return {month: (names, write_publication(built["url"], month, out))
            for month, names in sorted(ranked_names(reference).items())}


def sheet_cells(xlsx: Path) -> list[dict]:
    """Every cell of every sheet as stored in the file: its XML, type attribute, style and text."""
    with zipfile.ZipFile(xlsx) as z:
        shared = []
        if "xl/sharedStrings.xml" in z.namelist():
            root = ElementTree.fromstring(z.read("xl/sharedStrings.xml"))
            shared = ["".join(t.text or "" for t in si.iter(f"{{{NS['m']}}}t")) for si in root.findall("m:si", NS)]
        styles = ElementTree.fromstring(z.read("xl/styles.xml"))
        xfs = styles.find("m:cellXfs", NS).findall("m:xf", NS)
        cells = []
        for name in z.namelist():
            if not re.fullmatch(r"xl/worksheets/sheet\d+\.xml", name):
                continue
            xml = z.read(name).decode()
            for c in ElementTree.fromstring(xml).iter(f"{{{NS['m']}}}c"):
                kind = c.get("t", "n")
                if kind == "inlineStr":
                    text = "".join(t.text or "" for t in c.iter(f"{{{NS['m']}}}t"))
                elif kind == "s":
                    text = shared[int(c.find("m:v", NS).text)]
                else:
                    v = c.find("m:v", NS)
                    text = None if v is None else v.text
                xf = xfs[int(c.get("s", "0"))]
                cells.append({"sheet": name, "xml": xml, "ref": c.get("r"), "type": kind, "text": text,
                              "formula": c.find("m:f", NS) is not None, "quote_prefix": xf.get("quotePrefix") == "1"})
        return cells


def test_the_scenario_ranks_every_formula_like_name(reference):
    """Otherwise the workbook test below would prove nothing."""
    ranked = set().union(*ranked_names(reference).values())
    assert set(FORMULA_LIKE) <= ranked and SCRIPT in ranked, ranked


def test_no_workbook_cell_is_a_formula_and_names_are_text(publications):
    for month, (names, (_, xlsx)) in publications.items():
        cells = sheet_cells(xlsx)
        assert not any(c["formula"] for c in cells), month
        for c in cells:
            assert "<f>" not in c["xml"] and "<f " not in c["xml"], (month, c["sheet"])
        by_text = {}
        for c in cells:
            by_text.setdefault(c["text"], []).append(c)
        for name in names:
            assert name in by_text, (month, name)
            for c in by_text[name]:
                assert c["type"] in ("inlineStr", "s"), (month, name, c["type"])  # a string, not a formula's value
                if name in FORMULA_LIKE:
                    assert c["quote_prefix"], (month, name, "Excel keeps it text when the cell is edited")
        wb = load_workbook(xlsx)
        found = {cell.value: cell for ws in wb for row in ws.iter_rows() for cell in row if cell.value in names}
        assert set(found) == names and all(cell.data_type == "s" for cell in found.values())


class Page(HTMLParser):
    """The start tags and the decoded text of a page."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.texts: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.texts.append(data)


def strings(value) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(set(), *(strings(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(set(), *(strings(v) for v in value))
    return set()


def assert_shown_as_text(html: str, names: set[str]) -> None:
    """Each name is in the page's text exactly, its markup nowhere, and in the embedded figures."""
    page = Page(html)
    text = "".join(page.texts)
    for name in names:
        assert name in text, name
        if any(ch in name for ch in "<>&"):
            assert name not in html, f"{name} is in the page unescaped"
    assert page.tags.count("script") == 1, "only the figures' JSON block"
    assert re.findall(r"<script\b[^>]*>", html) == ['<script type="application/json" id="figures">']
    block = re.search(r'<script type="application/json" id="figures">(.*?)</script>', html, re.S).group(1)
    assert names <= strings(json.loads(block))


def test_the_publication_page_escapes_the_names(publications):
    checked = set()
    for names, (html_path, _) in publications.values():
        assert_shown_as_text(html_path.read_text(encoding="utf-8"), names)
        checked |= names
    assert SCRIPT in checked


def test_the_report_escapes_the_names(built, tmp_path):
    html = write_report(built["url"], tmp_path).read_text(encoding="utf-8")
    shown = {n for n in HOSTILE_NAMES if n in "".join(Page(html).texts)}
    assert SCRIPT in shown, "the busiest units appear in the report"
    assert_shown_as_text(html, shown)
