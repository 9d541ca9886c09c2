"""Numbers and dates the Vietnamese way: "." between thousands, "," before decimals — 1.234.567 and 95,3%.

Rounding is half-up on the decimal value (95,25% → 95,3%), never binary float rounding. A missing value
(None, NaN) prints as an en dash.
"""

from __future__ import annotations

import math
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

MISSING = "–"
BILLION = Decimal(1_000_000_000)


def _decimal(value) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    return Decimal(str(value))


def fmt_number(value, digits: int = 0) -> str:
    """``1234567.891`` → ``1.234.567,89`` (with ``digits=2``); None → ``–``."""
    d = _decimal(value)
    if d is None:
        return MISSING
    q = d.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    sign = "-" if q < 0 else ""
    whole, _, frac = f"{abs(q):f}".partition(".")
    groups = []
    while len(whole) > 3:
        whole, groups = whole[:-3], [whole[-3:], *groups]
    text = ".".join([whole, *groups])
    return sign + text + ("," + frac if digits > 0 else "")


def fmt_int(value) -> str:
    """A count: ``1234567`` → ``1.234.567``."""
    return fmt_number(value, 0)


def fmt_percent(rate, digits: int = 1) -> str:
    """A rate as a fraction in [0, 1]: ``0.953`` → ``95,3%``; None (no denominator) → ``–``."""
    d = _decimal(rate)
    return MISSING if d is None else fmt_number(d * 100, digits) + "%"


def fmt_billion(amount, digits: int = 1) -> str:
    """An amount in VND as billions of dong (tỷ đồng): ``1234567000000`` → ``1.234,6``."""
    d = _decimal(amount)
    return MISSING if d is None else fmt_number(d / BILLION, digits)


def fmt_date(day: date | None) -> str:
    """``2023-09-30`` → ``30/09/2023``."""
    return MISSING if day is None else f"{day:%d/%m/%Y}"


def fmt_month(month: date | None) -> str:
    """The month of ``month``: ``2023-09-01`` → ``09/2023``."""
    return MISSING if month is None else f"{month:%m/%Y}"


def rate(numerator, denominator) -> float | None:
    """``numerator / denominator`` as a float, None when the denominator is 0 (metrics.md)."""
    den = _decimal(denominator)
    if not den:
        return None
    return float((_decimal(numerator) or Decimal(0)) / den)
