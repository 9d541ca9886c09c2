"""Numbers and dates the Vietnamese way: "." between thousands, "," before decimals."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from publication.formatting import (
    MISSING,
    fmt_billion,
    fmt_date,
    fmt_int,
    fmt_month,
    fmt_number,
    fmt_percent,
    rate,
)


@pytest.mark.parametrize(("value", "expected"), [
    (0, "0"), (7, "7"), (999, "999"), (1000, "1.000"), (1234567, "1.234.567"), (-1234567, "-1.234.567"),
    (1_000_000_000_000, "1.000.000.000.000"), (Decimal("2774"), "2.774"), (2.5, "3"), (3.5, "4"),
])
def test_counts_use_dots_between_thousands(value, expected):
    assert fmt_int(value) == expected


@pytest.mark.parametrize(("value", "digits", "expected"), [
    (1234.5, 1, "1.234,5"), (1234567.891, 2, "1.234.567,89"), (0.05, 1, "0,1"), (-0.04, 1, "0,0"),
    (-1234.56, 1, "-1.234,6"), (Decimal("3300.9185"), 1, "3.300,9"), (12, 2, "12,00"),
])
def test_decimals_use_a_comma(value, digits, expected):
    assert fmt_number(value, digits) == expected


@pytest.mark.parametrize(("value", "digits", "expected"), [
    (0.953, 1, "95,3%"), (0.95, 0, "95%"), (1, 1, "100,0%"), (0, 1, "0,0%"), (0.876404494, 1, "87,6%"),
    (0.9525, 1, "95,3%"),  # half-up on the decimal value, not on the binary float
    (0.12345, 2, "12,35%"), (Decimal("0.1873564318"), 1, "18,7%"), (12.5, 0, "1.250%"),
])
def test_rates_are_percentages_with_a_decimal_comma(value, digits, expected):
    assert fmt_percent(value, digits) == expected


@pytest.mark.parametrize("missing", [None, float("nan"), float("inf"), Decimal("NaN")])
def test_missing_values_print_as_a_dash(missing):
    assert fmt_int(missing) == fmt_percent(missing) == fmt_billion(missing) == MISSING


def test_amounts_in_billions_of_dong():
    assert fmt_billion(3_300_918_516_124) == "3.300,9"
    assert fmt_billion(Decimal("618448315051")) == "618,4"
    assert fmt_billion(0) == "0,0"


def test_dates_and_months():
    assert fmt_date(date(2023, 9, 30)) == "30/09/2023"
    assert fmt_month(date(2023, 9, 1)) == "09/2023"
    assert fmt_date(None) == fmt_month(None) == MISSING


def test_rate_is_null_without_a_denominator():
    assert rate(3, 4) == 0.75
    assert rate(0, 5) == 0.0
    assert rate(5, 0) is None
    assert rate(None, None) is None
    assert rate(Decimal("618448315051"), Decimal("3300918516124")) == pytest.approx(0.18735643186284814, rel=1e-15)
