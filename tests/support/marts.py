"""A mart's rows read from the warehouse and compared row by row with the rows a reference computed: on the
table's natural key, every column the reference gives, numbers within a relative 1e-9."""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal

import psycopg


def norm(value):
    """A NUMERIC (a ``Decimal``) as a float, as the references compute it; any other value as it is."""
    return float(value) if isinstance(value, Decimal) else value


def same(a, b) -> bool:
    """Equal; for numbers where either is a float, within a relative 1e-9 (and neither null)."""
    a, b = norm(a), norm(b)
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def fetch(url: str, table: str, columns: Sequence[str]) -> list[dict]:
    """Every row of ``marts.<table>``: the columns named, as dicts."""
    columns = list(columns)
    with psycopg.connect(url) as conn:
        rows = conn.execute(f"SELECT {', '.join(columns)} FROM marts.{table}").fetchall()
    return [dict(zip(columns, row, strict=True)) for row in rows]


def compare(table: str, got: list[dict], expected: list[dict], keys: Sequence[str]) -> None:
    """The same rows on the key ``keys`` (each unique on either side), and in each row every column of the
    expected one the same (``same``); the assertions name the table, the key and the column."""

    def index(rows: list[dict]) -> dict[tuple, dict]:
        out = {}
        for r in rows:
            k = tuple(norm(r[c]) for c in keys)
            assert k not in out, f"{table}: duplicate key {k}"
            out[k] = r
        return out

    g, e = index(got), index(expected)
    missing, extra = sorted(set(e) - set(g), key=str), sorted(set(g) - set(e), key=str)
    assert not missing and not extra, (f"{table}: missing {len(missing)} {missing[:5]}, "
                                       f"unexpected {len(extra)} {extra[:5]}")
    for k, row in e.items():
        for c, value in row.items():
            assert same(g[k][c], value), f"{table} {k}: {c} = {g[k][c]!r}, expected {value!r}"
