"""The data-quality rules of ``dq-rules.md`` and the pipeline's batch and workbook checks, as SQL.

This module is the reviewable statement of every rule: plain data, no Great Expectations import (the
suites in ``expectations/suites.py`` turn it into expectations). A dossier rule is a ``WHERE`` condition
over ``dq.dq_dossiers`` (aliased ``d``; one narrow row per current, non-deleted dossier, built by dbt from
the staged records: ``dbt_project/models/dq/dq_dossiers.sql``) plus the value that shows what broke it.
Conventions the conditions rely on, from the staging models:

- a timestamp that is missing (``null`` or ``""``) or invalid (VAL06) is NULL, so it counts as missing;
- ``status``, ``channel`` and ``applicant_type`` are NULL unless the record held a JSON integer (``2.0``
  counts as 2; ``"2"`` or ``true`` do not), the text as received is kept in ``*_raw``;
- a list that is null, missing or not a list is empty (``*_count`` = 0).

"∉ {1, 3, 5}" is true of a missing status, hence ``d.status is null or d.status not in (…)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

WARNING = "warning"
CRITICAL = "critical"
STALE_DAYS = 30  # INC05

DOSSIER_TABLE = ("dq", "dq_dossiers")
PROCEDURES = "staging.stg_api__procedures"
UNITS = "staging.stg_api__units"

# The marker of the batch in Great Expectations' unexpected-rows queries, and of the as-of time here.
BATCH = "{batch}"
AS_OF = "<<as_of>>"


@dataclass(frozen=True)
class SqlRule:
    """A rule checked by one query: every row it returns is a finding.

    ``where`` is a condition over the batch aliased ``d`` (may use ``<<as_of>>``); ``observed`` is a text
    expression over ``d`` saying what broke the rule; ``key``/``unit`` name the finding's record and unit.
    A rule with ``query`` set uses that query instead (it must return ``record_key``, ``unit_code``,
    ``observed_value``)."""

    rule_id: str
    title: str
    where: str = ""
    observed: str = "null"
    severity: str = WARNING
    key: str = "d.dossier_id"
    unit: str = "d.unit_code"
    query: str = ""

    def sql(self, as_of: datetime | None = None, batch: str = BATCH) -> str:
        """The query returning ``record_key, unit_code, observed_value`` of every failing record.

        The batch is the CTE ``d``: Great Expectations substitutes ``{batch}`` with a table name or an
        aliased subquery, both of which ``select * from`` accepts. No query may use the JOIN keyword
        (Great Expectations would then substitute an unaliased subquery): comma joins and EXISTS only."""
        body = self.query or (
            f"select {self.key} as record_key, {self.unit} as unit_code, {self.observed} as observed_value\n"
            f"from d\nwhere {self.where}")
        text = f"with d as (select * from {BATCH})\n{body}"
        if AS_OF in text:
            if as_of is None:
                raise ValueError(f"{self.rule_id} needs the as-of time")
            text = text.replace(AS_OF, f"timestamp '{as_of:%Y-%m-%d %H:%M:%S}'")
        return text.replace(BATCH, batch)


def _ts(column: str) -> str:
    """A timestamp column as the API writes it (yyyyMMddHHmmss)."""
    return f"to_char({column}, 'YYYYMMDDHH24MISS')"


def _status_not_in(*values: int) -> str:
    return f"(d.status is null or d.status not in ({', '.join(map(str, values))}))"


_STATUS = "'TrangThaiHoSo=' || coalesce(d.status_raw, 'null')"

# dq-rules.md, in its order. Every one is a warning: a finding for the data team and the unit.
DOSSIER_RULES: tuple[SqlRule, ...] = (
    SqlRule("INC01", "Received (or later) but NgayTiepNhan missing",
            f"{_status_not_in(1, 3, 5)} and d.received_at is null", _STATUS),
    SqlRule("INC02", "Processing finished or result returned but NgayKetThucXuLy missing",
            "d.status in (9, 10) and d.finished_at is null", _STATUS),
    SqlRule("INC03", "Received but the appointment date NgayHenTra missing",
            f"{_status_not_in(1, 3, 7)} and d.received_at is not null and d.due_at is null",
            f"{_STATUS} || ', NgayTiepNhan=' || {_ts('d.received_at')}"),
    SqlRule("INC04", "In processing, finished or returned with no processing step (QuaTrinhXuLy empty)",
            "d.status in (4, 9, 10) and d.step_count = 0", _STATUS),
    SqlRule("INC05", f"Received or in processing with no activity for more than {STALE_DAYS} days",
            f"d.status in (2, 4) and greatest(d.received_at, d.latest_step_at) "
            f"< {AS_OF} - interval '{STALE_DAYS} days'",
            f"'last activity ' || {_ts('greatest(d.received_at, d.latest_step_at)')}"),
    SqlRule("INC06", "Result returned but NgayTra missing",
            "d.status = 10 and d.returned_at is null", _STATUS),
    SqlRule("DIG01", "Paper intake without any digitised component",
            f"{_status_not_in(1, 3)} and d.received_at is not null "
            "and (d.channel in (1, 3) or coalesce(d.channel_raw, '') = '') "
            "and not d.has_digitised_components and d.digitised_component_count = 0",
            "'KenhThucHien=' || coalesce(nullif(d.channel_raw, ''), 'missing') "
            "|| ', TaiLieuNop=' || d.component_count"),
    SqlRule("DIG02", "Paper result (TraKetQuaGiay) returned without an electronic copy",
            "d.status in (9, 10) and d.electronic_result_count = 0 "
            f"and exists (select 1 from {PROCEDURES} p where p.procedure_code = d.procedure_code "
            "and p.returns_paper_result)",
            "'MaTTHC=' || d.procedure_code || ', DanhSachGiayToKetQua=' || d.result_count"),
    SqlRule("VAL01", "NgayTiepNhan, NgayKetThucXuLy or NgayTra later than the as-of time",
            f"(d.received_at > {AS_OF} or d.finished_at > {AS_OF} or d.returned_at > {AS_OF})",
            "concat_ws(', ', "
            f"case when d.received_at > {AS_OF} then 'NgayTiepNhan=' || {_ts('d.received_at')} end, "
            f"case when d.finished_at > {AS_OF} then 'NgayKetThucXuLy=' || {_ts('d.finished_at')} end, "
            f"case when d.returned_at > {AS_OF} then 'NgayTra=' || {_ts('d.returned_at')} end)"),
    SqlRule("VAL02", "NgayKetThucXuLy earlier than NgayTiepNhan",
            "d.finished_at < d.received_at",
            f"'NgayTiepNhan=' || {_ts('d.received_at')} || ', NgayKetThucXuLy=' || {_ts('d.finished_at')}"),
    SqlRule("VAL03", "MaTTHC not in the procedure catalogue, or DonViXuLy not a known unit",
            f"(not exists (select 1 from {PROCEDURES} p where p.procedure_code = d.procedure_code) "
            f"or not exists (select 1 from {UNITS} u where u.unit_code = d.unit_code and u.is_listed))",
            "concat_ws(', ', "
            f"case when not exists (select 1 from {PROCEDURES} p where p.procedure_code = d.procedure_code) "
            "then 'MaTTHC=' || coalesce(d.procedure_code, 'missing') end, "
            f"case when not exists (select 1 from {UNITS} u where u.unit_code = d.unit_code and u.is_listed) "
            "then 'DonViXuLy=' || coalesce(d.unit_code, 'missing') end)"),
    SqlRule("VAL04", "TrangThaiHoSo not 1..10, KenhThucHien not 1, 2, 3 or missing, or LoaiDoiTuong not 1..4",
            "(d.status is null or d.status not between 1 and 10 "
            "or (coalesce(d.channel_raw, '') <> '' and (d.channel is null or d.channel not in (1, 2, 3))) "
            "or d.applicant_type is null or d.applicant_type not between 1 and 4)",
            "'TrangThaiHoSo=' || coalesce(d.status_raw, 'null') || ', KenhThucHien=' "
            "|| coalesce(d.channel_raw, 'null') || ', LoaiDoiTuong=' || coalesce(d.applicant_type_raw, 'null')"),
    SqlRule("VAL05", "NgayHenTra earlier than NgayTiepNhan",
            "d.due_at < d.received_at",
            f"'NgayTiepNhan=' || {_ts('d.received_at')} || ', NgayHenTra=' || {_ts('d.due_at')}"),
    SqlRule("VAL06", "A timestamp present but not a valid yyyyMMddHHmmss local time",
            "d.invalid_timestamps is not null", "d.invalid_timestamps"),
    # reorganisation.md: the System should have transferred the dossier to the closed unit's successor.
    SqlRule("VAL07", "Received after the last day (HieuLucDen) of its DonViXuLy, which has closed",
            f"exists (select 1 from {UNITS} u where u.unit_code = d.unit_code and d.received_at::date > u.valid_to)",
            f"'NgayTiepNhan=' || {_ts('d.received_at')} || ', HieuLucDen=' || (select to_char(u.valid_to, "
            f"'YYYYMMDD') from {UNITS} u where u.unit_code = d.unit_code)"),
)
RULE_IDS = tuple(r.rule_id for r in DOSSIER_RULES)

# The fields every non-deleted record must carry (the contract gives them no null; staging lists those a
# record lacks in absent_fields, from the same list in stg_api__dossiers.sql): when one is absent
# from every record a run landed, the API's format changed and no figure built on it can be trusted.
REQUIRED_FIELDS = ("MaTTHC", "DonViXuLy", "TrangThaiHoSo", "LoaiDoiTuong")
# The staged columns the rules and the marts are built on.
REQUIRED_COLUMNS = ("dossier_id", "updated_at", "changed_at", "is_deleted", "procedure_code", "unit_code",
                    "field_code", "channel", "channel_raw", "status", "status_raw", "applicant_type",
                    "applicant_type_raw", "received_at", "due_at", "finished_at", "returned_at",
                    "has_digitised_components", "digitised_component_count", "electronic_result_count",
                    "step_count")


BAT03_SHARE = 0.05  # default share of a batch's records lacking a required field that stops the run


_DOSSIER_RELATION = f"'{DOSSIER_TABLE[0]}.{DOSSIER_TABLE[1]}'::regclass"
_HAS_UNIQUE_KEY = (
    "exists (select 1 from pg_index as i "
    f"where i.indrelid = {_DOSSIER_RELATION} and i.indisunique and i.indisvalid and i.indpred is null "
    "and i.indexprs is null and i.indnkeyatts = 1 and i.indkey[0] = (select a.attnum from pg_attribute as a "
    f"where a.attrelid = {_DOSSIER_RELATION} and a.attname = 'dossier_id'))")


def batch_rules(run_id: str, bat03_share: float = BAT03_SHARE) -> dict[str, tuple[SqlRule, ...]]:
    """Critical checks of the batch itself, per table they read: a failure stops the run before the marts.

    Keys are the tables (schema, name) the checks run on; BAT03 and BAT04 look at what the runs of
    ``batch_scope(run_id)`` landed. BAT02 (required staged columns) is a column-set expectation, built in
    ``suites.py``."""
    scope = _scope_ids(run_id)
    return {
        DOSSIER_TABLE: (
            # While the table has its unique index on dossier_id (valid, whole, on that column alone), a second
            # row cannot exist and the grouping over every dossier is skipped (a one-time filter); without it
            # (a table changed by hand), every dossier is grouped.
            SqlRule("BAT01", "Duplicate dossier key in the current state", severity=CRITICAL,
                    query="select d.dossier_id as record_key, min(d.unit_code) as unit_code, "
                          "count(*) || ' rows' as observed_value\n"
                          f"from d\nwhere not ({_HAS_UNIQUE_KEY})\ngroup by d.dossier_id\nhaving count(*) > 1"),
            # Each night compares what changed since the last good batch check began (raw's index on changed_at,
            # dq_dossiers' on source_changed_at), both ways, and the dossiers deleted since then still staged.
            # Anything else that differs changes a count — the landed dossiers against the staged rows,
            # counted whole every night — and then every dossier is compared, both ways. Only equal numbers of
            # lost and extra rows, all older than the batch (made by hand: the build only writes the changed
            # rows), escape a night; the weekly DAG compares everything (the dbt test staged_equals_landed).
            SqlRule("BAT05", "The staged current state is not the landed one (a dossier missing or extra)",
                    severity=CRITICAL,
                    query=_bat05(_since_last_good(run_id))),
            # Per run of the batch: a stopped run's broken versions keep stopping the nights after it until they
            # are corrected or the run is released, however many good records later runs land beside them.
            # One pass over the runs' rows, a count per field (most rows lack none: an empty absent_fields is
            # not split), then a row per field: unnesting the fields first grouped four rows a dossier (12M
            # on a rebuild of 3M dossiers, twice: Great Expectations counts the rows, then reads them).
            SqlRule("BAT03", f"A required field is absent from {bat03_share:.0%} or more of the current records a "
                             "run of the batch landed", severity=CRITICAL,
                    query="select f.field || ' (run ' || r.run_id || ')' as record_key, null::text as unit_code, "
                          "f.absent || ' of ' || r.total || ' records without it' as observed_value\n"
                          "from (select d.run_id, count(*) as total"
                          + "".join(f", count(*) filter (where d.absent_fields <> '' and '{field}' = "
                                    f"any(string_to_array(d.absent_fields, ','))) as absent_{i}"
                                    for i, field in enumerate(REQUIRED_FIELDS))
                          + f"\n      from d\n      where d.run_id in ({scope})\n      group by d.run_id) as r,\n"
                          "lateral (values " + ", ".join(f"('{field}', r.absent_{i})"
                                                          for i, field in enumerate(REQUIRED_FIELDS))
                          + ") as f (field, absent)\n"
                          f"where f.absent > 0 and f.absent >= {float(bat03_share)!r} * r.total"),
        ),
        ("audit", "ingest_runs"): (
            SqlRule("BAT04", "The API's count does not match what was landed and quarantined", severity=CRITICAL,
                    query="select d.source || '/' || d.partition || '/' || to_char(d.window_start, "
                          "'YYYYMMDDHH24MISS') as record_key, null::text as unit_code, "
                          "'reported ' || coalesce(d.recount, d.reported) || ', fetched ' || d.fetched "
                          "|| ', landed ' || d.landed || ', duplicates ' || d.duplicates "
                          "|| ', quarantined ' || d.quarantined as observed_value\n"
                          "from d\n"
                          f"where d.run_id in ({scope}) and d.source = 'dossiers' and d.status <> 'incomplete' "
                          "and (d.fetched <> d.landed + d.duplicates + d.quarantined "
                          "or coalesce(d.recount, d.reported) < d.landed + d.quarantined_distinct "
                          "or coalesce(d.recount, d.reported) > d.landed + d.quarantined) "
                          "and not exists (select 1 from audit.window_issues as w where w.source = d.source "
                          "and w.partition = d.partition and w.window_start = d.window_start "
                          "and w.window_end = d.window_end and w.resolved_at is not null)"),
        ),
    }


def _bat05(since: str) -> str:
    """BAT05's query: staged (the batch's table, named rather than ``d``: a CTE read more than once is
    materialised whole, and its indexes are lost) against landed (raw.dossier_current), over what changed
    since ``since``, and over everything when the two counts differ (counted once, a one-time filter: no scan
    of everything otherwise) or when no batch was good before (``since`` is ``-infinity``: everything changed,
    and two whole anti-joins cost seconds where probing every dossier's key from an array of them all cost half
    a minute at 3M)."""
    staged = f"{DOSSIER_TABLE[0]}.{DOSSIER_TABLE[1]}"
    differ = (f"(select count(*) from raw.dossier_current as n where not n.is_deleted) "
              f"<> (select count(*) from {staged} as n)")
    landed_not_staged = ("select c.dossier_id as record_key, null::text as unit_code, "
                         "'landed, not staged' as observed_value\n"
                         "from raw.dossier_current as c\n"
                         "where {} not c.is_deleted\n"
                         f"and not exists (select 1 from {staged} as s where s.dossier_id = c.dossier_id)")
    staged_not_current = ("select s.dossier_id, s.unit_code, 'staged, not a current dossier'\n"
                          f"from {staged} as s\n"
                          "where {} not exists (select 1 from raw.dossier_current as c "
                          "where c.dossier_id = s.dossier_id and not c.is_deleted)")
    first = f"({since}) = '-infinity'::timestamptz"
    return "\nunion\n".join((
        # the changed dossiers as arrays (= any): the planner cannot know how few they are from a subquery's
        # bound, took them for a third of the table and hashed every dossier of the other side against them;
        # empty on a first validation (a one-time filter), which the last branch compares whole
        landed_not_staged.format("c.dossier_id = any(array(select n.dossier_id from raw.dossier_current as n "
                                 f"where n.changed_at >= ({since}) and not {first})) and"),
        staged_not_current.format(f"s.dossier_id = any(array(select n.dossier_id from {staged} as n "
                                  f"where n.source_changed_at >= ({since}) and not {first})) and"),
        # deleted since then, still staged
        "select s.dossier_id, s.unit_code, 'staged, not a current dossier'\n"
        f"from raw.dossier_current as c, {staged} as s\n"
        f"where c.changed_at >= ({since}) and c.is_deleted and s.dossier_id = c.dossier_id",
        "select everything.* from (\n"
        f"{landed_not_staged.format('')}\nunion all\n{staged_not_current.format('')}\n"
        f") as everything\nwhere {first} or ({differ})",
    ))


def _last_good(run: str) -> str:
    """``select max(started_at)`` of the last run before ``run`` whose batch passed or was released."""
    return ("select max(g.started_at) from audit.pipeline_runs as g "
            f"where g.run_id <> '{run}' and g.started_at < coalesce((select started_at from audit.pipeline_runs "
            f"where run_id = '{run}'), 'infinity'::timestamptz) "
            "and (exists (select 1 from dq.validation_runs as v where v.run_id = g.run_id and v.suite = 'batch' "
            "and v.status = 'passed') or exists (select 1 from dq.batch_releases as b where b.run_id = g.run_id))")


def _since_last_good(run_id: str) -> str:
    """When the last good batch validation (passed, or of a run since released) of another run began: what
    had landed by then was compared then. The beginning of time if there is none."""
    run = run_id.replace("'", "''")
    return ("select coalesce((select max(v.started_at) from dq.validation_runs as v "
            f"where v.suite = 'batch' and v.run_id <> '{run}' and (v.status = 'passed' "
            "or exists (select 1 from dq.batch_releases as b where b.run_id = v.run_id))), '-infinity'::timestamptz)")


def _scope_ids(run_id: str) -> str:
    """``select run_id …`` of ``batch_scope``, for an ``in (…)`` list."""
    run = run_id.replace("'", "''")
    return (f"select '{run}'::text union select p.run_id from audit.pipeline_runs as p "
            f"where p.started_at <= coalesce((select started_at from audit.pipeline_runs where run_id = '{run}'), "
            f"'-infinity'::timestamptz) and p.started_at > coalesce(({_last_good(run)}), '-infinity'::timestamptz)")


# The finance department's workbooks (staging.stg_finance__disbursement_rows), one finding per row.
FINANCE_TABLE = ("staging", "stg_finance__disbursement_rows")
FUNDING_SOURCES = ("NSTW", "NSDP", "CTMTQG", "ODA")
_ROW_KEY = "to_char(d.report_date, 'YYYY-MM-DD') || '#' || d.row_number"
_LINE = "d.project_code, d.funding_source, d.plan_year, d.is_carried_over"

FINANCE_RULES: tuple[SqlRule, ...] = (
    SqlRule("FIN01", "Negative amount (KeHoachTTgGiao, KeHoachUBNDGiao or GiaiNganLuyKe)",
            "(d.plan_pm < 0 or d.plan_province < 0 or d.disbursed_cumulative < 0)",
            "'KeHoachTTgGiao=' || d.plan_pm || ', KeHoachUBNDGiao=' || d.plan_province "
            "|| ', GiaiNganLuyKe=' || d.disbursed_cumulative", key=_ROW_KEY, unit="d.investor_unit_code"),
    SqlRule("FIN02", "Cumulative disbursement (GiaiNganLuyKe) below the previous report date's",
            key=_ROW_KEY, unit="d.investor_unit_code",
            query=f"select {_ROW_KEY.replace('d.', 'x.')} as record_key, x.investor_unit_code as unit_code, "
                  "'GiaiNganLuyKe=' || x.disbursed_cumulative || ' < ' || x.previous_cumulative "
                  "|| ' on ' || to_char(x.previous_date, 'YYYY-MM-DD') as observed_value\n"
                  "from (select d.*, "
                  "lag(d.disbursed_cumulative) over line as previous_cumulative, "
                  "lag(d.report_date) over line as previous_date "
                  f"from d window line as (partition by {_LINE} order by d.report_date)) as x\n"
                  "where x.disbursed_cumulative < x.previous_cumulative"),
    SqlRule("FIN03", "Disbursed above the provincial plan (GiaiNganLuyKe > KeHoachUBNDGiao)",
            "d.disbursed_cumulative > d.plan_province",
            "'GiaiNganLuyKe=' || d.disbursed_cumulative || ' > KeHoachUBNDGiao=' || d.plan_province",
            key=_ROW_KEY, unit="d.investor_unit_code"),
    SqlRule("FIN04", "Investor (ChuDauTu) not a known unit",
            f"not exists (select 1 from {UNITS} u where u.unit_code = d.investor_unit_code)",
            "'ChuDauTu=' || coalesce(d.investor_unit_code, 'missing')", key=_ROW_KEY, unit="d.investor_unit_code"),
    SqlRule("FIN05", f"Funding source (NguonVon) not one of {', '.join(FUNDING_SOURCES)}",
            f"(d.funding_source is null or d.funding_source not in ({', '.join(repr(s) for s in FUNDING_SOURCES)}))",
            "'NguonVon=' || coalesce(d.funding_source, 'missing')", key=_ROW_KEY, unit="d.investor_unit_code"),
)
