"""The Great Expectations suites, built from the rules of ``expectations/rules.py``.

One ``UnexpectedRowsExpectation`` per rule, named by its rule id (``meta.rule_id``, and the description
starts with it), with the rule's severity. The same query that Great Expectations counts is the one
``validate.py`` runs server-side to store the failing records, so the count in the validation result and
the findings in ``dq.findings`` cannot disagree (and are checked to agree).

Suites depend on the run (the as-of time is a literal of the time-dependent rules; the batch checks
look at what the run landed), so they are rebuilt from code for every run; the JSON copies Great
Expectations keeps in its project folder are build output, not the source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import great_expectations as gx
import great_expectations.expectations as gxe

from expectations.rules import (
    BAT03_SHARE,
    CRITICAL,
    DOSSIER_RULES,
    DOSSIER_TABLE,
    FINANCE_RULES,
    FINANCE_TABLE,
    REQUIRED_COLUMNS,
    SqlRule,
    batch_rules,
)

STAGED_DOSSIERS = ("staging", "stg_api__dossiers")


@dataclass
class SuitePart:
    """A suite bound to one table, with the SQL rules behind its expectations (by check id)."""

    name: str
    table: tuple[str, str]
    suite: gx.ExpectationSuite
    rules: dict[str, SqlRule] = field(default_factory=dict)


def _expectation(rule: SqlRule, as_of: datetime | None) -> gxe.UnexpectedRowsExpectation:
    return gxe.UnexpectedRowsExpectation(
        unexpected_rows_query=rule.sql(as_of),
        description=f"{rule.rule_id}: {rule.title}",
        severity=rule.severity,
        meta={"rule_id": rule.rule_id, "check_id": rule.rule_id},
    )


def _part(name: str, table: tuple[str, str], rules: tuple[SqlRule, ...], as_of: datetime | None) -> SuitePart:
    suite = gx.ExpectationSuite(name=name)
    for rule in rules:
        suite.add_expectation(_expectation(rule, as_of))
    return SuitePart(name, table, suite, {r.rule_id: r for r in rules})


def dossier_suite(as_of: datetime, table: tuple[str, str] = DOSSIER_TABLE) -> list[SuitePart]:
    """dq-rules.md at ``as_of`` (warnings) on ``table``: every current, non-deleted dossier, or the night's
    change set (``expectations.intervals``)."""
    return [_part("dossiers", table, DOSSIER_RULES, as_of)]


def batch_suite(run_id: str, bat03_share: float = BAT03_SHARE) -> list[SuitePart]:
    """The critical checks of the batch: duplicate keys, required columns and fields, reconciliation."""
    parts = [_part(f"batch.{schema}.{table}", (schema, table), rules, None)
             for (schema, table), rules in batch_rules(run_id, bat03_share).items()]
    columns = gx.ExpectationSuite(name="batch.staging.stg_api__dossiers")
    columns.add_expectation(gxe.ExpectTableColumnsToMatchSet(
        column_set=list(REQUIRED_COLUMNS), exact_match=False, severity=CRITICAL,
        description="BAT02: A column the rules and the marts need is missing from the staged dossiers",
        meta={"rule_id": "BAT02", "check_id": "BAT02"}))
    parts.append(SuitePart(columns.name, STAGED_DOSSIERS, columns))
    return parts


def finance_suite() -> list[SuitePart]:
    """The disbursement workbooks' rows (warnings)."""
    return [_part("finance", FINANCE_TABLE, FINANCE_RULES, None)]
