"""Cells of the workbooks the project publishes: text from the API stays text.

openpyxl stores a ``str`` that starts with ``=`` as a formula, so a unit named ``=HYPERLINK(...)`` by
whoever keys the procedure system's catalogue would become a live formula in the published workbook.
``put`` writes every string as a string cell (``data_type = "s"``), and a string that a spreadsheet
program would read as a formula once someone edits the cell (it starts with ``=``, ``+``, ``-``, ``@``,
a tab or a carriage return: OWASP's list for CSV injection) also gets the *quote prefix* style, the
flag Excel and LibreOffice set for text typed after an apostrophe: the cell shows the exact text, and
editing it keeps it text. The text itself is kept as it is, except for the control characters XML
cannot hold at all (U+0000-U+0008, U+000B, U+000C, U+000E-U+001F), which become U+FFFD: openpyxl would
refuse the whole workbook for one of them.
"""

from __future__ import annotations

from typing import Any

from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.worksheet.worksheet import Worksheet

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def is_formula_like(text: str) -> bool:
    """Whether a spreadsheet program would take ``text``, typed into a cell, for a formula."""
    return text.startswith(FORMULA_TRIGGERS)


def put(ws: Worksheet, row: int, column: int, value: Any):
    """Write ``value`` into the cell at (``row``, ``column``) of ``ws``, strings as text; returns the cell."""
    cell = ws.cell(row=row, column=column)
    if isinstance(value, str):
        value = ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)
    cell.value = value
    if isinstance(value, str):
        cell.data_type = "s"  # undo openpyxl's formula detection of a leading "="
        if is_formula_like(value):
            cell.quotePrefix = True
    return cell
