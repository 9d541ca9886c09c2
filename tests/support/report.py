"""Reading the HTML report (``publication/report.py``) as its tests do: the figures it embeds as JSON, the
machine-readable values of its cells, and numbers compared within a tolerance."""

from __future__ import annotations

import html as htmllib
import json
import math
import re


def embedded_figures(html: str) -> dict:
    """The figures the report embeds (``<script type="application/json" id="figures">``)."""
    block = re.search(r'<script type="application/json" id="figures">(.*?)</script>', html, re.S)
    assert block, "the figures are embedded as JSON"
    return json.loads(block.group(1))


def cell_values(html: str) -> dict[str, str]:
    """Every cell's ``data-value`` by its ``data-metric`` (the attribute's text: entities decoded), in ``html``
    (a page or a part of it)."""
    return {htmllib.unescape(k): v for k, v in re.findall(r'data-metric="([^"]+)" data-value="([^"]*)"', html)}


def close(a, b, tol: float = 1e-12) -> bool:
    """Both None, or numbers within ``tol`` (relative and absolute)."""
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=tol, abs_tol=tol)
