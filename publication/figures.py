"""The figures the summary, the report and the monthly publication show, read from the marts.

Every figure is a sum of the marts' counts (or amounts) with the rate computed once on the sums, as
metrics.md requires — a rate is never averaged. Functions take an open psycopg connection and return plain
dicts and lists (JSON-ready apart from ``date`` and ``Decimal``, see ``to_json``); a table that is missing
or empty gives empty figures, never an error.

"As of" a date ``a`` means: the latest row set of a history table dated on or before ``a``
(``fct_pending_overdue``, ``fct_delegation_progress``, ``fct_disbursement``), and for the monthly facts the
latest complete month, the last month before ``a``'s month that has resolved dossiers.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal

import psycopg
from psycopg.rows import dict_row

from pipeline.settings import PublicationTargets
from publication.formatting import rate

# metrics.md: at least 95% of dossiers resolved early or on time; the ranking's minimum of resolved dossiers.
# One definition (pipeline.settings: PUBLICATION_ON_TIME_TARGET, PUBLICATION_MIN_RESOLVED), which dbt gets too.
TARGETS = PublicationTargets.from_env()
TARGET, MIN_RESOLVED = TARGETS.on_time_target, TARGETS.min_resolved
LEVELS = {1: "Cấp tỉnh", 2: "Cấp huyện", 3: "Cấp xã"}
LEVEL_UNITS = {1: "sở, ban, ngành và đơn vị cấp tỉnh", 2: "UBND cấp huyện", 3: "UBND cấp xã"}
PROVINCE = "Toàn tỉnh"
LAND_FIELD = "đất đai"
HISTORY_MONTHS = 12
UNKNOWN_UNIT = "(không xác định)"

TIMELINESS_COUNTS = ("resolved", "early", "on_time", "late")
ONLINE_COUNTS = ("received", "online")
DIGITISATION_COUNTS = ("paper_received", "intake_digitised", "paper_result_resolved", "result_digitised")

FUNDING_SOURCES = {
    "NSTW": "Ngân sách trung ương",
    "NSDP": "Ngân sách địa phương",
    "CTMTQG": "Chương trình mục tiêu quốc gia",
    "ODA": "Vốn ODA",
}
DELEGATION_TYPES = {"UY_QUYEN": "Ủy quyền", "PHAN_CAP": "Phân cấp"}
DQ_RULES = {
    "INC01": "Thiếu ngày tiếp nhận",
    "INC02": "Đã giải quyết nhưng thiếu ngày kết thúc xử lý",
    "INC03": "Thiếu ngày hẹn trả",
    "INC04": "Chưa cập nhật quá trình xử lý",
    "INC05": "Hồ sơ đang xử lý không cập nhật quá 30 ngày",
    "INC06": "Đã trả kết quả nhưng thiếu ngày trả",
    "DIG01": "Hồ sơ giấy chưa số hóa thành phần",
    "DIG02": "Chưa số hóa kết quả giải quyết",
    "VAL01": "Ngày ghi nhận sau thời điểm kiểm tra",
    "VAL02": "Ngày kết thúc trước ngày tiếp nhận",
    "VAL03": "Mã thủ tục hoặc mã đơn vị không có trong danh mục",
    "VAL04": "Mã trạng thái, kênh nộp hoặc đối tượng không hợp lệ",
    "VAL05": "Ngày hẹn trả trước ngày tiếp nhận",
    "VAL06": "Ngày tháng sai định dạng",
    "VAL07": "Tiếp nhận sau khi đơn vị đã giải thể, chưa chuyển đơn vị kế thừa",
}
DQ_GROUPS = {"INC": "Chưa cập nhật đầy đủ", "DIG": "Chưa số hóa", "VAL": "Giá trị không hợp lệ"}
# service-index.md: the criteria of Decision 766 the dossier records decide, and why a dossier cost 2.1 points.
SERVICE_INDEX_CRITERIA = {
    "2.1": "Tiến độ giải quyết",
    "3.3": "Hồ sơ trực tuyến",
    "3.6": "Thanh toán trực tuyến",
    "4.1": "Kết quả điện tử",
    "4.2": "Số hóa hồ sơ",
    "4.3": "Tái sử dụng dữ liệu số hóa",
}
REASONS_2_1 = {
    "pending_overdue": "Quá hạn chưa giải quyết",
    "late": "Giải quyết trễ hạn",
    "supplements": "Bổ sung hồ sơ từ 2 lần",
}
# reorganisation.md: from this day Vietnam has two tiers of local government (Resolution 202/2025/QH15):
# districts abolished, communes merged. A fact of law, the same for every province, not a setting; the
# report's trend charts mark it when their months span it.
REORGANISATION_DATE = date(2025, 7, 1)


def connect(url: str) -> psycopg.Connection:
    """A read-only connection (the publication never writes)."""
    conn = psycopg.connect(url, row_factory=dict_row, application_name="cchc-publication")
    conn.read_only = True
    return conn


def exists(conn: psycopg.Connection, table: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL AS ok", (table,)).fetchone()["ok"]


def _rows(conn: psycopg.Connection, sql: str, params: Iterable = (), *tables: str) -> list[dict]:
    if not all(exists(conn, t) for t in tables):
        return []
    return conn.execute(sql, tuple(params)).fetchall()


def _scalar(conn: psycopg.Connection, sql: str, params: Iterable = (), *tables: str):
    rows = _rows(conn, sql, params, *tables)
    return next(iter(rows[0].values())) if rows else None


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def month_of(day: date) -> date:
    return day.replace(day=1)


# --------------------------------------------------------------------------------------------- dates

def marts_as_of(conn: psycopg.Connection) -> date:
    """The date the marts were last built for: the latest ``fct_pending_overdue`` as-of date, else the
    latest pipeline run's date, else today."""
    built = _scalar(conn, "SELECT max(as_of_date) FROM marts.fct_pending_overdue", (), "marts.fct_pending_overdue")
    if built is not None:
        return built
    run = _scalar(conn, "SELECT max(interval_end)::date FROM audit.pipeline_runs", (), "audit.pipeline_runs")
    return run or date.today()


def latest_complete_month(conn: psycopg.Connection, as_of: date) -> date | None:
    """The last month before ``as_of``'s month with resolved dossiers."""
    return _scalar(conn, "SELECT max(month) FROM marts.fct_timeliness_monthly WHERE month < %s",
                   (month_of(as_of),), "marts.fct_timeliness_monthly")


def province_name(conn: psycopg.Connection) -> str | None:
    """The provincial People's Committee's name (e.g. "UBND tỉnh Quảng Nam"), from ``dim_unit``."""
    return _scalar(conn, "SELECT unit_name FROM marts.dim_unit WHERE unit_type = 'UBND_TINH' AND valid_to IS NULL "
                   "ORDER BY unit_code LIMIT 1", (), "marts.dim_unit")


def unit_names(conn: psycopg.Connection) -> dict[str, str]:
    return {r["unit_code"]: r["unit_name"] for r in _rows(conn, "SELECT unit_code, unit_name FROM marts.dim_unit",
                                                          (), "marts.dim_unit")}


# --------------------------------------------------------------------------------------------- the run

def pipeline_run(conn: psycopg.Connection, run_id: str | None = None) -> dict | None:
    """``audit.pipeline_runs`` row of ``run_id`` (default the latest started), with what it loaded per source
    (``ingest``) and the workbooks it read (``workbooks``)."""
    run = _rows(conn, "SELECT run_id, run_date, interval_start, interval_end, status, started_at, finished_at, "
                "extract(epoch FROM finished_at - started_at)::float AS seconds FROM audit.pipeline_runs "
                + ("WHERE run_id = %s" if run_id else "ORDER BY started_at DESC LIMIT 1"),
                (run_id,) if run_id else (), "audit.pipeline_runs")
    if not run:
        return None
    out = run[0]
    out["ingest"] = _rows(
        conn, "SELECT source, count(*)::int AS windows, sum(fetched)::bigint AS fetched, "
        "sum(landed)::bigint AS landed, sum(new_versions)::bigint AS new_versions, "
        "sum(duplicates)::bigint AS duplicates, "
        "sum(quarantined)::bigint AS quarantined, sum(retries)::bigint AS retries, sum(seconds)::float AS seconds "
        "FROM audit.ingest_runs WHERE run_id = %s GROUP BY source ORDER BY source", (out["run_id"],),
        "audit.ingest_runs")
    out["workbooks"] = _rows(conn, "SELECT status, count(*)::int AS files, coalesce(sum(rows), 0)::int AS rows "
                             "FROM raw.finance_files WHERE run_id = %s GROUP BY status ORDER BY status",
                             (out["run_id"],), "raw.finance_files")
    return out


# --------------------------------------------------------------------------------------------- timeliness

def _sum_into(target: dict, row: dict, keys: Iterable[str]) -> None:
    for k in keys:
        target[k] = target.get(k, 0) + (row[k] or 0)


def _timeliness_rates(row: dict) -> dict:
    row["timely"] = row["early"] + row["on_time"]
    row["on_time_rate"] = rate(row["timely"], row["resolved"])
    row["overdue_rate"] = rate(row["late"], row["resolved"])
    return row


def _scopes(rows: list[dict], counts: tuple[str, ...], finish) -> list[dict]:
    """Per month: the province (every row) and each level (rows of units in ``dim_unit``), counts summed."""
    acc: dict[tuple, dict] = {}
    for r in rows:
        for scope in ("province", r["level"]):
            if scope is None:
                continue
            key = (r["month"], scope)
            _sum_into(acc.setdefault(key, {"month": r["month"], "scope": scope}), r, counts)
    order = {"province": 0, 1: 1, 2: 2, 3: 3}
    return [finish(v) for _, v in sorted(acc.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 9)))]


def field_names(conn: psycopg.Connection) -> dict[str, str]:
    """Field (lĩnh vực) code → name, from the procedure catalogue."""
    return {r["field_code"]: r["field_name"] for r in _rows(
        conn, "SELECT field_code, min(field_name) AS field_name FROM marts.dim_procedure "
        "WHERE field_code IS NOT NULL GROUP BY field_code", (), "marts.dim_procedure")}


def land_field_codes(names: dict[str, str]) -> list[str]:
    """The codes of the land field (Đất đai) among ``field_names``: by name, as the catalogue spells it."""
    return sorted(code for code, name in names.items() if (name or "").strip().casefold() == LAND_FIELD)


def timeliness(conn: psycopg.Connection, month: date, months: int = HISTORY_MONTHS) -> dict:
    """On-time figures up to ``month`` (its last ``months`` months): per month for the province and each
    level; the land field (Đất đai) against the other fields per month, per level for ``month``, and every
    field for ``month``."""
    rows = _rows(conn, "SELECT t.month, t.field_code, u.level, sum(t.resolved)::bigint AS resolved, "
                 "sum(t.early)::bigint AS early, sum(t.on_time)::bigint AS on_time, sum(t.late)::bigint AS late "
                 "FROM marts.fct_timeliness_monthly t LEFT JOIN marts.dim_unit u ON u.unit_code = t.unit_code "
                 "WHERE t.month BETWEEN %s AND %s GROUP BY 1, 2, 3",
                 (add_months(month, 1 - months), month), "marts.fct_timeliness_monthly", "marts.dim_unit")
    names = field_names(conn)
    land = land_field_codes(names)
    by_month = _scopes(rows, TIMELINESS_COUNTS, _timeliness_rates)
    groups: dict[tuple, dict] = {}
    fields: dict[str | None, dict] = {}
    for r in rows:
        group = "land" if r["field_code"] in land else "other"
        for scope in ("province", r["level"]):
            if scope is not None and (scope == "province" or r["month"] == month):
                key = (r["month"], scope, group)
                _sum_into(groups.setdefault(key, {"month": r["month"], "scope": scope, "group": group}), r,
                          TIMELINESS_COUNTS)
        if r["month"] == month:
            f = fields.setdefault(r["field_code"], {"field_code": r["field_code"], "is_land": r["field_code"] in land,
                                                    "field_name": names.get(r["field_code"]) or r["field_code"]
                                                    or UNKNOWN_UNIT})
            _sum_into(f, r, TIMELINESS_COUNTS)
    land_months = [_timeliness_rates(groups[k]) for k in sorted(k for k in groups if k[1] == "province")]
    land_levels = [_timeliness_rates(groups[k]) for k in sorted(
        (k for k in groups if k[1] != "province" and k[0] == month), key=lambda k: (k[1], k[2]))]
    by_field = sorted((_timeliness_rates(f) for f in fields.values()),
                      key=lambda f: (f["on_time_rate"] if f["on_time_rate"] is not None else 2, -f["resolved"],
                                     f["field_name"]))
    return {"month": month, "by_month": by_month, "land_codes": land, "land_by_month": land_months,
            "land_by_level": land_levels, "by_field": by_field}


def ranking(conn: psycopg.Connection, month: date) -> dict[int, list[dict]]:
    """``rpt_monthly_ranking`` of ``month`` per level (rank order), with each unit's late dossiers."""
    rows = _rows(conn, "SELECT r.level, r.rank, r.unit_code, r.unit_name, r.resolved, r.on_time_rate::float AS "
                 "on_time_rate, r.below_target, coalesce(l.late, 0)::bigint AS late FROM marts.rpt_monthly_ranking r "
                 "LEFT JOIN (SELECT unit_code, sum(late) AS late FROM marts.fct_timeliness_monthly WHERE month = %s "
                 "GROUP BY unit_code) l ON l.unit_code = r.unit_code WHERE r.month = %s ORDER BY r.level, r.rank",
                 (month, month), "marts.rpt_monthly_ranking", "marts.fct_timeliness_monthly")
    out: dict[int, list[dict]] = {}
    for r in rows:
        out.setdefault(r.pop("level"), []).append(r)
    return out


# --------------------------------------------------------------------------------------------- online, digitisation

def _online_rates(row: dict) -> dict:
    row["online_rate"] = rate(row["online"], row["received"])
    return row


def _digitisation_rates(row: dict) -> dict:
    row["intake_digitisation_rate"] = rate(row["intake_digitised"], row["paper_received"])
    row["result_digitisation_rate"] = rate(row["result_digitised"], row["paper_result_resolved"])
    return row


def online(conn: psycopg.Connection, month: date, months: int = HISTORY_MONTHS) -> list[dict]:
    """Online submission (nộp trực tuyến) per receipt month for the province and each level."""
    rows = _rows(conn, "SELECT o.month, u.level, sum(o.received)::bigint AS received, sum(o.online)::bigint AS online "
                 "FROM marts.fct_online_monthly o LEFT JOIN marts.dim_unit u ON u.unit_code = o.unit_code "
                 "WHERE o.month BETWEEN %s AND %s GROUP BY 1, 2", (add_months(month, 1 - months), month),
                 "marts.fct_online_monthly", "marts.dim_unit")
    return _scopes(rows, ONLINE_COUNTS, _online_rates)


def digitisation(conn: psycopg.Connection, month: date, months: int = HISTORY_MONTHS) -> list[dict]:
    """Intake and result digitisation (số hóa) per month for the province and each level."""
    sums = ", ".join(f"sum(d.{c})::bigint AS {c}" for c in DIGITISATION_COUNTS)
    rows = _rows(conn, f"SELECT d.month, u.level, {sums}"
                 " FROM marts.fct_digitisation_monthly d LEFT JOIN marts.dim_unit u ON u.unit_code = d.unit_code "
                 "WHERE d.month BETWEEN %s AND %s GROUP BY 1, 2", (add_months(month, 1 - months), month),
                 "marts.fct_digitisation_monthly", "marts.dim_unit")
    return _scopes(rows, DIGITISATION_COUNTS, _digitisation_rates)


# --------------------------------------------------------------------------------------------- today's units

def current_levels(conn: psycopg.Connection, month: date, months: int = HISTORY_MONTHS) -> dict:
    """The monthly figures of the trend charts on today's units (reorganisation.md), per month and level of
    today's unit: the ``*_current`` facts (every recorded unit's counts summed into the unit in force today that
    its area passed to) joined to that unit's level. ``merged_units``: units whose figures count for another
    unit today. Dossiers of units without a unit today (closed without successor, unknown codes) are in no
    level here, as in the ``*_current`` marts."""
    window = (add_months(month, 1 - months), month)

    def by_level(table: str, counts: tuple[str, ...], finish) -> list[dict]:
        sums = ", ".join(f"sum(f.{c})::bigint AS {c}" for c in counts)
        rows = _rows(conn, f"SELECT f.month, u.level AS scope, {sums} FROM marts.{table} f JOIN marts.dim_unit u "
                     "ON u.unit_code = f.current_unit_code WHERE f.month BETWEEN %s AND %s GROUP BY 1, 2 "
                     "ORDER BY 1, 2", window, f"marts.{table}", "marts.dim_unit")
        return [finish(r) for r in rows]

    merged = _scalar(conn, "SELECT count(*)::int FROM marts.dim_unit WHERE current_unit_code <> unit_code", (),
                     "marts.dim_unit")
    return {"reorganisation_date": REORGANISATION_DATE, "merged_units": merged or 0,
            "timeliness": by_level("fct_timeliness_monthly_current", TIMELINESS_COUNTS, _timeliness_rates),
            "online": by_level("fct_online_monthly_current", ONLINE_COUNTS, _online_rates),
            "digitisation": by_level("fct_digitisation_monthly_current", DIGITISATION_COUNTS, _digitisation_rates)}


# --------------------------------------------------------------------------------------------- pending overdue

def pending_overdue(conn: psycopg.Connection, as_of: date) -> dict:
    """Dossiers in processing and past their due date at the latest as-of date on or before ``as_of``."""
    rows = _rows(conn, "SELECT p.as_of_date, p.unit_code, u.unit_name, u.level, p.in_processing, p.pending_overdue "
                 "FROM marts.fct_pending_overdue p LEFT JOIN marts.dim_unit u ON u.unit_code = p.unit_code "
                 "WHERE p.as_of_date = (SELECT max(as_of_date) FROM marts.fct_pending_overdue WHERE as_of_date <= %s)",
                 (as_of,), "marts.fct_pending_overdue", "marts.dim_unit")
    out = {"as_of_date": rows[0]["as_of_date"] if rows else None, "in_processing": 0, "pending_overdue": 0,
           "by_level": [], "units": []}
    levels: dict[int, dict] = {}
    for r in rows:
        out["in_processing"] += r["in_processing"]
        out["pending_overdue"] += r["pending_overdue"]
        if r["level"] is not None:
            _sum_into(levels.setdefault(r["level"], {"level": r["level"]}), r, ("in_processing", "pending_overdue"))
    out["overdue_share"] = rate(out["pending_overdue"], out["in_processing"])
    out["by_level"] = [levels[k] | {"overdue_share": rate(levels[k]["pending_overdue"], levels[k]["in_processing"])}
                       for k in sorted(levels)]
    out["units"] = [{"unit_code": r["unit_code"], "unit_name": r["unit_name"] or r["unit_code"] or UNKNOWN_UNIT,
                     "level": r["level"], "in_processing": r["in_processing"], "pending_overdue": r["pending_overdue"]}
                    for r in sorted(rows, key=lambda r: (-r["pending_overdue"], -r["in_processing"],
                                                         r["unit_code"] or ""))
                    if r["pending_overdue"] > 0]
    return out


# --------------------------------------------------------------------------------------------- delegation

def delegation(conn: psycopg.Connection, as_of: date) -> dict:
    """Delegation and decentralisation plan items (phân cấp, ủy quyền) at the latest as-of date on or before
    ``as_of``: done / active per plan, per type and per receiving unit; behind plan."""
    rows = _rows(conn, "SELECT d.as_of_date, d.plan, d.type, d.receiving_unit_code, u.unit_name, d.is_active, "
                 "d.is_done, d.is_behind_plan FROM marts.fct_delegation_progress d LEFT JOIN marts.dim_unit u "
                 "ON u.unit_code = d.receiving_unit_code WHERE d.as_of_date = (SELECT max(as_of_date) FROM "
                 "marts.fct_delegation_progress WHERE as_of_date <= %s)", (as_of,),
                 "marts.fct_delegation_progress", "marts.dim_unit")

    def tally(key_of) -> list[dict]:
        acc: dict = {}
        for r in rows:
            key, extra = key_of(r)
            t = acc.setdefault(key, {**extra, "items": 0, "active": 0, "done": 0, "behind_plan": 0})
            t["items"] += 1
            t["active"] += r["is_active"]
            t["done"] += r["is_active"] and r["is_done"]
            t["behind_plan"] += r["is_behind_plan"]
        for t in acc.values():
            t["progress_rate"] = rate(t["done"], t["active"])
        return [acc[k] for k in sorted(acc, key=lambda k: str(k))]

    total = tally(lambda r: ("all", {}))
    return {
        "as_of_date": rows[0]["as_of_date"] if rows else None,
        "total": total[0] if total else {"items": 0, "active": 0, "done": 0, "behind_plan": 0, "progress_rate": None},
        "by_plan": tally(lambda r: (r["plan"] or "", {"plan": r["plan"]})),
        "by_type": tally(lambda r: (r["type"] or "", {"type": r["type"],
                                                      "type_name": DELEGATION_TYPES.get(r["type"], r["type"])})),
        "by_receiving_unit": sorted(
            tally(lambda r: (r["receiving_unit_code"] or "", {
                "unit_code": r["receiving_unit_code"],
                "unit_name": r["unit_name"] or r["receiving_unit_code"] or UNKNOWN_UNIT})),
            key=lambda t: (t["progress_rate"] if t["progress_rate"] is not None else 2, -t["active"], t["unit_name"])),
    }


# --------------------------------------------------------------------------------------------- disbursement

AMOUNTS = ("plan_pm", "plan_province", "disbursed_cumulative")


def _amount_rates(row: dict) -> dict:
    row["rate_vs_pm"] = rate(row["disbursed_cumulative"], row["plan_pm"])
    row["rate_vs_province"] = rate(row["disbursed_cumulative"], row["plan_province"])
    return row


def disbursement(conn: psycopg.Connection, as_of: date) -> dict:
    """Disbursement of public investment (giải ngân vốn đầu tư công) at the latest report date on or before
    ``as_of``, for the plan year being disbursed (the report date's year when it has rows): sums of plans and
    cumulative disbursement by investor, by funding source and in total, rates on the sums."""
    report_date = _scalar(conn, "SELECT max(report_date) FROM marts.fct_disbursement WHERE report_date <= %s",
                          (as_of,), "marts.fct_disbursement")
    empty = {"report_date": None, "plan_year": None, "plan_years": [], "total": None, "by_investor": [],
             "by_source": []}
    if report_date is None:
        return empty
    rows = _rows(conn, "SELECT d.plan_year, d.investor_unit_code, u.unit_name, d.funding_source, d.plan_pm, "
                 "d.plan_province, d.disbursed_cumulative FROM marts.fct_disbursement d LEFT JOIN marts.dim_unit u "
                 "ON u.unit_code = d.investor_unit_code WHERE d.report_date = %s", (report_date,),
                 "marts.fct_disbursement", "marts.dim_unit")
    years = sorted({r["plan_year"] for r in rows})
    year = report_date.year if report_date.year in years else max(years)
    total = {"plan_lines": 0}
    investors: dict[str | None, dict] = {}
    sources: dict[str, dict] = {}
    for r in rows:
        if r["plan_year"] != year:
            continue
        for acc in (total,
                    investors.setdefault(r["investor_unit_code"], {
                        "investor_unit_code": r["investor_unit_code"], "plan_lines": 0,
                        "unit_name": r["unit_name"] or r["investor_unit_code"] or UNKNOWN_UNIT}),
                    sources.setdefault(r["funding_source"], {
                        "funding_source": r["funding_source"], "plan_lines": 0,
                        "source_name": FUNDING_SOURCES.get(r["funding_source"], r["funding_source"])})):
            acc["plan_lines"] += 1
            for k in AMOUNTS:
                acc[k] = acc.get(k, Decimal(0)) + (r[k] or Decimal(0))

    def by_rate(t: dict):
        return (t["rate_vs_province"] if t["rate_vs_province"] is not None else 99, t["unit_name"])

    return {"report_date": report_date, "plan_year": year, "plan_years": years,
            "total": _amount_rates(total) if total["plan_lines"] else None,
            "by_investor": sorted((_amount_rates(v) for v in investors.values()), key=by_rate),
            "by_source": [_amount_rates(sources[k]) for k in sorted(sources, key=lambda s: (
                list(FUNDING_SOURCES).index(s) if s in FUNDING_SOURCES else 99, s))]}


# --------------------------------------------------------------------------------------------- data quality

def dq_backlog(conn: psycopg.Connection) -> dict:
    """Open data-quality issues (``fct_dq_issue``, still failing at the latest validation) by rule and unit."""
    rows = _rows(conn, "SELECT i.rule_id, i.unit_code, u.unit_name, u.level, count(*)::int AS open_issues, "
                 "max(i.last_seen_at) AS last_seen_at FROM marts.fct_dq_issue i LEFT JOIN marts.dim_unit u "
                 "ON u.unit_code = i.unit_code WHERE i.is_open GROUP BY 1, 2, 3, 4", (),
                 "marts.fct_dq_issue", "marts.dim_unit")
    by_rule: dict[str, int] = defaultdict(int)
    units: dict[str | None, dict] = {}
    for r in rows:
        by_rule[r["rule_id"]] += r["open_issues"]
        u = units.setdefault(r["unit_code"], {"unit_code": r["unit_code"], "level": r["level"], "open": 0,
                                              "unit_name": r["unit_name"] or r["unit_code"] or UNKNOWN_UNIT,
                                              "by_rule": {}, "by_group": {g: 0 for g in DQ_GROUPS}})
        u["open"] += r["open_issues"]
        u["by_rule"][r["rule_id"]] = r["open_issues"]
        u["by_group"][r["rule_id"][:3]] = u["by_group"].get(r["rule_id"][:3], 0) + r["open_issues"]
    seen = max((r["last_seen_at"] for r in rows), default=None)
    return {"validated_at": seen, "open": sum(by_rule.values()),
            "by_rule": dict(sorted(by_rule.items(), key=lambda kv: (-kv[1], kv[0]))),
            "by_unit": sorted(units.values(), key=lambda u: (-u["open"], u["unit_name"]))}


# --------------------------------------------------------------------------------------------- JSON

def _json_default(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def to_json(figures: dict, indent: int | None = None) -> str:
    """``figures`` as JSON (dates ISO, amounts as numbers), safe inside an HTML ``<script>`` element."""
    text = json.dumps(figures, default=_json_default, ensure_ascii=False, indent=indent, sort_keys=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
