"""Superset for real: installed from bi/requirements.txt (cached), the bundle imported through the API, every
chart of every dashboard run by Superset as bi_reader and its figures checked against the marts, and the
dashboards opened by a logged-in headless Chromium and kept as screenshots
(``.local/test-artifacts/superset-morning.png``, ``superset-service-index.png``, ``superset-current-units.png``,
``superset-held-up.png``).

The warehouse is the publication tests' scenario (``tests/publication/scenario.py``: the real pipeline over a
small simulated province, as of 2023-07-01), the same warehouse they read (the session fixture
``publication_warehouse``). The expected figures are plain SQL
over the marts written here — sums of counts, rates on the sums — never the dashboards' own datasets.
One Superset serves the whole module. The module is skipped only when Superset's environment cannot be
had: no network to the package index and nothing in the cache.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import psycopg
import pytest

from bi.bundle import build_zip
from bi.client import SupersetAPIError, SupersetClient
from bi.environment import EnvironmentUnavailable, ensure_environment
from bi.instance import LocalInstance, free_port
from tests.support.devtools import DevToolsBrowser, DevToolsError
from tests.support.paths import PROJECT_ROOT

SCREENSHOT = PROJECT_ROOT / ".local" / "test-artifacts" / "superset-morning.png"
AS_OF = date(2023, 7, 1)  # the scenario's night
MONTH = date(2023, 6, 1)  # its latest complete month
FIRST = date(2022, 7, 1)  # twelve months back: the line charts' window
REPORT_DATE = date(2023, 6, 30)  # the latest finance report date on or before AS_OF
LEVELS = {1: "Cấp tỉnh", 2: "Cấp huyện", 3: "Cấp xã"}
SOURCES = {"NSTW": "Ngân sách trung ương", "NSDP": "Ngân sách địa phương", "CTMTQG": "Chương trình mục tiêu quốc gia",
           "ODA": "Vốn ODA"}
GROUPS = {"INC": "Chưa cập nhật đầy đủ", "DIG": "Chưa số hóa", "VAL": "Giá trị không hợp lệ"}
TYPES = {"UY_QUYEN": "Ủy quyền", "PHAN_CAP": "Phân cấp"}
MORNING, DATA_QUALITY = "cchc-morning", "cchc-data-quality"
SERVICE_INDEX, CURRENT_UNITS = "cchc-service-index", "cchc-current-units"
HELD_UP = "cchc-held-up"
DASHBOARDS = (MORNING, DATA_QUALITY, SERVICE_INDEX, CURRENT_UNITS, HELD_UP)
NOT_RECORDED = "(không ghi nhận)"  # a late dossier with no late step (metrics.md, processing steps)
CRITERIA = {"2.1": "Tiến độ giải quyết", "3.3": "Hồ sơ trực tuyến", "3.6": "Thanh toán trực tuyến",
            "4.1": "Kết quả điện tử", "4.2": "Số hóa hồ sơ", "4.3": "Tái sử dụng dữ liệu số hóa"}
REASONS = {"pending_overdue": "Quá hạn chưa giải quyết", "late": "Giải quyết trễ hạn",
           "supplements": "Bổ sung hồ sơ từ 2 lần"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory, publication_warehouse):
    """The scenario's warehouse (shared with the publication tests) and one Superset on a free port with the
    bundle imported, for the module."""
    tmp = tmp_path_factory.mktemp("bi")
    messages: list[str] = []
    started = time.monotonic()
    try:
        superset = LocalInstance(ensure_environment(log=messages.append), home=tmp / "superset", port=free_port(),
                                 log=messages.append)
    except EnvironmentUnavailable as exc:
        if exc.offline:
            pytest.skip(f"Superset's environment cannot be had here (no network to the package index "
                        f"and no cached environment): {exc}")
        raise
    try:
        superset.prepare()
        superset.start()
        seconds = time.monotonic() - started
        username, password = superset.admin()
        client = SupersetClient(superset.url).login(username, password)
        client.import_assets(*build_zip(publication_warehouse["bi"]))
        print(f"Superset ready in {seconds:.0f}s: {'; '.join(messages)}")
        yield {"superset": superset, "client": client, "login": (username, password), **publication_warehouse}
    finally:
        superset.stop()


def query(url: str, sql: str, params=()) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


def rate(num, den) -> float | None:
    return float(Decimal(num) / Decimal(den)) if den else None


def day(epoch_ms: float) -> date:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).date()


@pytest.fixture(scope="module")
def charts(stack) -> dict[tuple[str, str], dict]:
    """Every chart of every dashboard, by (the English of its title, its viz type), with its data: Superset
    runs each chart's saved query through the chart data API, on the connection as bi_reader."""
    client = stack["client"]
    out = {}
    for slug in DASHBOARDS:
        for chart in client.get(f"/api/v1/dashboard/{slug}/charts")["result"]:
            tag = chart["slice_name"].rsplit("(", 1)[1].rstrip(")")
            viz = chart["form_data"]["viz_type"]
            [result] = client.chart_data(chart["id"])["result"]
            assert result["status"] == "success" and not result.get("error"), (chart["slice_name"], result)
            out[(tag, viz)] = {"slug": slug, "name": chart["slice_name"], "rows": result["data"]}
    return out


# ------------------------------------------------------------------------------------------ the connection

def test_superset_reads_the_warehouse_as_bi_reader_and_nothing_but_the_marts(stack):
    client = stack["client"]
    [database] = client.get("/api/v1/database/")["result"]
    assert database["backend"] == "postgresql"
    uri = client.get(f"/api/v1/database/{database['id']}/connection")["result"]["sqlalchemy_uri"]
    host = stack["bi"].split("@", 1)[1]
    assert uri == f"postgresql+psycopg2://bi_reader:XXXXXXXXXX@{host}", "the import points at the test warehouse"

    def sql(text: str) -> dict:
        return client.call("POST", "/api/v1/sqllab/execute/", {"database_id": database["id"], "sql": text,
                                                               "schema": "marts", "runAsync": False})

    # (Superset's SQL Lab refuses current_user and pg_stat_activity: what the role may do says who it is)
    assert sql("SELECT count(*) AS n FROM fct_dossier")["data"][0]["n"] > 0, "marts, on the default search_path"
    assert sql("SELECT has_schema_privilege('raw', 'USAGE') AS raw")["data"] == [{"raw": False}]
    with pytest.raises(SupersetAPIError, match="permission denied for schema raw"):
        sql("SELECT * FROM raw.finance_files")


# ------------------------------------------------------------------------------------------ the figures

def test_every_chart_of_every_dashboard_is_checked(charts):
    assert len(charts) == 38 and {c["slug"] for c in charts.values()} == set(DASHBOARDS)
    assert set(charts) == set(CHECKS), f"charts without a check here: {set(charts) - set(CHECKS)}"


def _monthly_by_level(url: str, table: str, num: str, den: str, unit: str = "unit_code"
                      ) -> dict[tuple[date, str], float | None]:
    rows = query(url, f"SELECT f.month, u.level, sum({num}), sum({den}) FROM marts.{table} f "
                 f"JOIN marts.dim_unit u ON u.unit_code = f.{unit} WHERE f.month BETWEEN %s AND %s GROUP BY 1, 2",
                 (FIRST, MONTH))
    return {(m, LEVELS[lv]): rate(n, d) for m, lv, n, d in rows if d}


def _series(rows: list[dict], x: str) -> dict[tuple[date, str], float | None]:
    return {(day(r[x]), name): value for r in rows for name, value in r.items() if name != x and value is not None}


def check_big_on_time(rows, url):
    [(timely, resolved)] = query(url, "SELECT sum(early + on_time), sum(resolved) FROM marts.fct_timeliness_monthly "
                                 "WHERE month = %s", (MONTH,))
    assert close(rows[0]["on_time_rate"], rate(timely, resolved))


def _eligible(url: str) -> dict[int, list[dict]]:
    """Units ranked per level as the monthly publication ranks them (marts.md): at least 10 resolved."""
    rows = query(url, "SELECT t.unit_code, u.unit_name, u.level, sum(t.resolved), sum(t.early + t.on_time), "
                 "sum(t.late) FROM marts.fct_timeliness_monthly t JOIN marts.dim_unit u ON u.unit_code = t.unit_code "
                 "WHERE t.month = %s GROUP BY 1, 2, 3 HAVING sum(t.resolved) >= 10", (MONTH,))
    levels: dict[int, list[dict]] = defaultdict(list)
    for code, name, level, resolved, timely, late in rows:
        levels[level].append({"code": code, "name": name, "resolved": resolved, "late": late,
                              "rate": rate(timely, resolved)})
    for units in levels.values():
        units.sort(key=lambda u: (u["rate"], -u["resolved"], u["code"]))
    return levels


def check_big_below(rows, url):
    below = sum(u["rate"] < 0.95 for units in _eligible(url).values() for u in units)
    assert below > 0 and rows[0]["units_below_target"] == below


def check_big_overdue(rows, url):
    [(overdue,)] = query(url, "SELECT sum(pending_overdue) FROM marts.fct_pending_overdue WHERE as_of_date = %s",
                         (AS_OF,))
    assert rows[0]["pending_overdue"] == overdue > 0


def check_big_online(rows, url):
    [(online, received)] = query(url, "SELECT sum(online), sum(received) FROM marts.fct_online_monthly "
                                 "WHERE month = %s", (MONTH,))
    assert close(rows[0]["online_rate"], rate(online, received))


def _check_levels(rows, expected):
    got = _series(rows, "month")
    assert got.keys() == expected.keys(), "the last twelve complete months, by level (no future month)"
    for key, value in expected.items():
        assert close(got[key], value), key


def check_on_time_levels(rows, url):
    _check_levels(rows, _monthly_by_level(url, "fct_timeliness_monthly", "early + on_time", "resolved"))


def check_online_levels(rows, url):
    _check_levels(rows, _monthly_by_level(url, "fct_online_monthly", "online", "received"))


def check_intake_levels(rows, url):
    _check_levels(rows, _monthly_by_level(url, "fct_digitisation_monthly", "intake_digitised", "paper_received"))


def check_result_levels(rows, url):
    _check_levels(rows, _monthly_by_level(url, "fct_digitisation_monthly", "result_digitised",
                                          "paper_result_resolved"))


def check_below_units(rows, url):
    expected = [(LEVELS[level], rank, u["name"], u["resolved"], u["late"], u["rate"])
                for level, units in sorted(_eligible(url).items()) for rank, u in enumerate(units, 1)
                if u["rate"] < 0.95]
    got = [(r["level_name"], r["rank"], r["unit_name"], r["resolved"], r["late"], r["on_time_rate"]) for r in rows]
    assert [g[:5] for g in got] == [e[:5] for e in expected]
    assert all(close(g[5], e[5]) for g, e in zip(got, expected, strict=True))


def _top(rows: list[dict], label: str, metric: str, expected: dict[str, int], limit: int) -> None:
    """A top-``limit`` bar chart: each bar is its unit's figure, and the bars are the largest figures (units
    tied at the cut may be either)."""
    got = {r[label]: r[metric] for r in rows}
    assert len(got) == len(rows) == min(limit, len(expected))
    assert all(got[name] == expected[name] for name in got), {n: (got[n], expected.get(n)) for n in got}
    assert sorted(got.values(), reverse=True) == sorted(expected.values(), reverse=True)[:limit]


def check_overdue_units(rows, url):
    expected = dict(query(url, "SELECT coalesce(u.unit_name, p.unit_code), p.pending_overdue FROM "
                          "marts.fct_pending_overdue p LEFT JOIN marts.dim_unit u ON u.unit_code = p.unit_code "
                          "WHERE p.as_of_date = %s AND p.pending_overdue > 0", (AS_OF,)))
    _top(rows, "unit_name", "pending_overdue", expected, 15)


def check_delegation(rows, url):
    expected = {(f"Kế hoạch {plan}", TYPES[kind]): (items, active, done, behind)
                for plan, kind, items, active, done, behind in query(
                    url, "SELECT plan, type, count(*), count(*) FILTER (WHERE is_active), count(*) FILTER (WHERE "
                    "is_active AND is_done), count(*) FILTER (WHERE is_behind_plan) FROM marts.fct_delegation_progress "
                    "WHERE as_of_date = %s GROUP BY 1, 2", (AS_OF,))}
    got = {(r["plan_name"], r["type_name"]): r for r in rows}
    assert got.keys() == expected.keys()
    for key, (items, active, done, behind) in expected.items():
        r = got[key]
        assert (r["items"], r["active_items"], r["done_items"], r["behind_plan_items"]) == (items, active, done, behind)
        assert close(r["progress_rate"], rate(done, active))
    rates = [r["progress_rate"] for r in rows]
    assert rates == sorted(rates), "slowest first"


def _disbursement(url: str, key: str) -> dict:
    return {k: (plan, disbursed) for k, plan, disbursed in query(
        url, f"SELECT {key}, sum(d.plan_province), sum(d.disbursed_cumulative) FROM marts.fct_disbursement d "
        "LEFT JOIN marts.dim_unit u ON u.unit_code = d.investor_unit_code "
        "WHERE d.report_date = %s AND d.plan_year = %s GROUP BY 1", (REPORT_DATE, REPORT_DATE.year))}


def check_disbursement_sources(rows, url):
    expected = {SOURCES[s]: v for s, v in _disbursement(url, "d.funding_source").items()}
    got = {r["source_name"]: r for r in rows}
    assert got.keys() == expected.keys()
    for name, (plan, disbursed) in expected.items():
        assert close(got[name]["plan_province_billion"], plan / Decimal(10**9))
        assert close(got[name]["disbursed_billion"], disbursed / Decimal(10**9))


def check_disbursement_investors(rows, url):
    expected = _disbursement(url, "coalesce(u.unit_name, d.investor_unit_code)")
    got = {r["investor_name"]: r for r in rows}
    assert got.keys() == expected.keys() and len(rows) == len(expected)
    for name, (plan, disbursed) in expected.items():
        assert close(got[name]["plan_province_billion"], plan / Decimal(10**9))
        assert close(got[name]["disbursed_billion"], disbursed / Decimal(10**9))
        assert close(got[name]["rate_vs_province"], rate(disbursed, plan))
    rates = [r["rate_vs_province"] for r in rows]
    assert rates == sorted(rates), "the lowest disbursement first"


def _open(url: str, key: str) -> dict:
    return dict(query(url, f"SELECT {key}, count(*) FROM marts.fct_dq_issue i LEFT JOIN marts.dim_unit u "
                      "ON u.unit_code = i.unit_code WHERE i.is_open GROUP BY 1"))


def check_dq_open(rows, url):
    [(issues,)] = query(url, "SELECT count(*) FROM marts.fct_dq_issue WHERE is_open")
    assert rows[0]["open_issues"] == issues > 0


def check_dq_dossiers(rows, url):
    [(dossiers,)] = query(url, "SELECT count(DISTINCT dossier_id) FROM marts.fct_dq_issue WHERE is_open")
    assert rows[0]["dossiers"] == dossiers > 0


def check_dq_rules(rows, url):
    expected = _open(url, "i.rule_id")
    assert {r["rule_label"].split(" – ")[0]: r["open_issues"] for r in rows} == expected
    assert all(" – " in r["rule_label"] and len(r["rule_label"]) > 10 for r in rows), "each rule named"


def check_dq_units(rows, url):
    _top(rows, "unit_name", "open_issues", _open(url, "coalesce(u.unit_name, i.unit_code, '(không xác định)')"), 20)


def check_dq_unit_rule(rows, url):
    expected = {(name, LEVELS.get(level, "(không xác định)"), rule): n for name, level, rule, n in query(
        url, "SELECT coalesce(u.unit_name, i.unit_code, '(không xác định)'), u.level, i.rule_id, count(*) "
        "FROM marts.fct_dq_issue i LEFT JOIN marts.dim_unit u ON u.unit_code = i.unit_code WHERE i.is_open "
        "GROUP BY 1, 2, 3")}
    got = {(r["unit_name"], r["level_name"], r["rule_label"].split(" – ")[0]): r["open_issues"] for r in rows}
    assert got == expected
    counts = [r["open_issues"] for r in rows]
    assert counts == sorted(counts, reverse=True)


def check_dq_nightly(rows, url):
    nights = [n for (n,) in query(url, "SELECT DISTINCT run_date FROM marts.fct_dq_daily ORDER BY 1")]
    new, fixed = defaultdict(int), defaultdict(int)
    for first, last, is_open in query(url, "SELECT first_seen_at, last_seen_at, is_open FROM marts.fct_dq_issue"):
        new[first.date()] += 1
        if not is_open:  # fixed by the next validation that no longer found it
            after = [n for n in nights if n > last.date()]
            if after:
                fixed[after[0]] += 1
    got = {day(r["night"]): (r["new_issues"], r["fixed_issues"]) for r in rows}
    assert got == {n: (new[n], fixed[n]) for n in set(new) | set(fixed)}
    assert got[AS_OF][0] > 0


def check_dq_open_nightly(rows, url):
    expected = {(night, GROUPS[rule[:3]]): n for night, rule, n in query(
        url, "SELECT run_date, left(rule_id, 3), sum(open_issues) FROM marts.fct_dq_daily GROUP BY 1, 2")}
    assert _series(rows, "night") == expected


# ------------------------------------------------------------------------ the service index (service-index.md)

def _criteria(url: str, level: int | None = None) -> dict[str, dict]:
    """Per criterion, the roll-up of the month: numerators and denominators summed over the units (of
    ``level``, or every unit), then the formula — points never add across units."""
    out = {}
    for criterion, num, den, threshold, maximum in query(
            url, "SELECT s.criterion_id, sum(s.numerator), sum(s.denominator), max(s.threshold), max(s.max_points) "
            "FROM marts.fct_service_index_monthly s LEFT JOIN marts.dim_unit u ON u.unit_code = s.unit_code "
            "WHERE s.month = %s AND (%s::int IS NULL OR u.level = %s::int) GROUP BY 1", (MONTH, level, level)):
        points = min(Fraction(1), Fraction(num, den) / Fraction(threshold)) * Fraction(maximum) if den else None
        out[criterion] = {"numerator": num, "denominator": den, "rate": rate(num, den), "max": Fraction(maximum),
                          "points": points, "lost": None if points is None else Fraction(maximum) - points}
    return out


def _criterion(label: str) -> str:
    criterion, name = label.split(" – ")
    assert CRITERIA[criterion] == name, label
    return criterion


def check_si_score(rows, url):
    rated = [c for c in _criteria(url).values() if c["points"] is not None]
    score = sum(c["points"] for c in rated) / sum(c["max"] for c in rated) * 100
    assert close(rows[0]["score_100"], score) and 0 < score < 100


def check_si_criteria(rows, url):
    expected = _criteria(url)
    got = {_criterion(r["criterion_label"]): r["points_lost"] for r in rows}
    assert got.keys() == expected.keys() == CRITERIA.keys()
    for criterion, value in got.items():
        assert close(value, expected[criterion]["lost"]), criterion
    assert sum(got.values()) > 0


def check_si_criteria_levels(rows, url):
    got = {(r["level_name"], _criterion(r["criterion_label"])): r for r in rows}
    expected = {(LEVELS[level], c): v for level in LEVELS for c, v in _criteria(url, level).items()}
    assert got.keys() == expected.keys()
    for key, e in expected.items():
        g = got[key]
        assert (g["numerator"], g["denominator"]) == (e["numerator"], e["denominator"]), key
        assert close(g["criterion_rate"], e["rate"]) and close(g["points"], e["points"]), key
        assert close(g["points_lost"], e["lost"]), key
    lost = [r["points_lost"] for r in rows if r["points_lost"] is not None]
    assert lost == sorted(lost, reverse=True), "the most points lost first"


def check_si_ranking(rows, url):
    lost = [f"points_lost_{c.replace('.', '_')}" for c in CRITERIA]
    expected = query(url, f"SELECT level, rank, unit_name, score_100, {', '.join(lost)} FROM "
                     "marts.rpt_service_index_ranking WHERE month = %s ORDER BY level, rank", (MONTH,))
    assert [(r["level_name"], r["rank"], r["unit_name"]) for r in rows] == \
        [(LEVELS[level], rank, name) for level, rank, name, *_ in expected]
    for r, (_, _, _, score, *points) in zip(rows, expected, strict=True):
        assert close(r["score_100"], score) and all(close(r[k], v) for k, v in zip(lost, points, strict=True))


def _lost_dossiers(url: str) -> list[tuple]:
    return query(url, "SELECT coalesce(u.unit_name, d.unit_code, '(không xác định)'), u.level, d.dossier_id, "
                 "d.reason, d.procedure_code, d.due_at, d.finished_at, d.supplement_count "
                 "FROM marts.fct_service_index_2_1_dossiers d LEFT JOIN marts.dim_unit u ON u.unit_code = d.unit_code "
                 "WHERE d.month = %s", (MONTH,))


def check_si_dossier_units(rows, url):
    expected: dict[str, int] = defaultdict(int)
    for name, *_ in _lost_dossiers(url):
        expected[name] += 1
    _top(rows, "unit_name", "dossiers", expected, 15)


def _epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.replace(tzinfo=UTC).timestamp() * 1000


def check_si_dossiers(rows, url):
    expected = {(name, LEVELS.get(level, "(không xác định)"), dossier, REASONS[reason], procedure, _epoch(due),
                 _epoch(finished), supplements)
                for name, level, dossier, reason, procedure, due, finished, supplements in _lost_dossiers(url)}
    got = [(r["unit_name"], r["level_name"], r["dossier_id"], r["reason_name"], r["procedure_code"], r["due_at"],
            r["finished_at"], r["supplement_count"]) for r in rows]
    assert set(got) == expected and len(got) == len(expected)
    assert {r["reason_name"] for r in rows} >= {REASONS["late"], REASONS["pending_overdue"]}
    reason = {name: code for code, name in REASONS.items()}
    order = [(g[0], reason[g[3]], g[5] or 0, g[2]) for g in got]
    assert order == sorted(order), "by unit, reason, due date"


# ------------------------------------------------------------------------ today's units (reorganisation.md)

def check_current_on_time_levels(rows, url):
    _check_levels(rows, _monthly_by_level(url, "fct_timeliness_monthly_current", "early + on_time", "resolved",
                                          unit="current_unit_code"))


def check_current_online_levels(rows, url):
    _check_levels(rows, _monthly_by_level(url, "fct_online_monthly_current", "online", "received",
                                          unit="current_unit_code"))


def check_current_intake_levels(rows, url):
    _check_levels(rows, _monthly_by_level(url, "fct_digitisation_monthly_current", "intake_digitised",
                                          "paper_received", unit="current_unit_code"))


def check_current_result_levels(rows, url):
    _check_levels(rows, _monthly_by_level(url, "fct_digitisation_monthly_current", "result_digitised",
                                          "paper_result_resolved", unit="current_unit_code"))


def check_current_units(rows, url):
    expected = {(LEVELS[level], name): (resolved, late, rate(timely, resolved)) for level, name, resolved, late, timely
                in query(url, "SELECT u.level, coalesce(u.unit_name, t.current_unit_name), sum(t.resolved), "
                         "sum(t.late), sum(t.early + t.on_time) FROM marts.fct_timeliness_monthly_current t "
                         "JOIN marts.dim_unit u ON u.unit_code = t.current_unit_code WHERE t.month = %s "
                         "GROUP BY 1, 2", (MONTH,))}
    got = {(r["level_name"], r["current_unit_name"]): r for r in rows}
    assert got.keys() == expected.keys() and len(rows) == len(expected)
    for key, (resolved, late, value) in expected.items():
        assert (got[key]["resolved"], got[key]["late"]) == (resolved, late) and close(got[key]["on_time_rate"], value)
    rates = [r["on_time_rate"] for r in rows]
    assert rates == sorted(rates), "the lowest on-time rate first"


# ------------------------------------------------------------------------ where dossiers are held up (metrics.md)

LEVEL_SQL = "coalesce(CASE u.level WHEN 1 THEN 'Cấp tỉnh' WHEN 2 THEN 'Cấp huyện' WHEN 3 THEN 'Cấp xã' END, " \
            "'(không xác định)')"
LAND_SQL = "field_code IN (SELECT field_code FROM marts.dim_procedure WHERE field_name = 'Đất đai')"


def _late_origins(url: str, *keys: str, land: bool = False) -> dict:
    """Late dossiers of the month and those with no recorded late step, by ``keys`` (one key: its value; several:
    a tuple): the base mart for every field, the mart by field for the land field."""
    table = "fct_late_origin_monthly_by_field" if land else "fct_late_origin_monthly"
    rows = query(url, f"SELECT {', '.join(keys)}, sum(o.late_dossiers), coalesce(sum(o.late_dossiers) FILTER (WHERE "
                 f"o.office = %s), 0) FROM marts.{table} o LEFT JOIN marts.dim_unit u ON u.unit_code = o.unit_code "
                 f"WHERE o.month = %s {'AND o.' + LAND_SQL if land else ''} GROUP BY "
                 f"{', '.join(str(i) for i in range(1, len(keys) + 1))}", (NOT_RECORDED, MONTH))
    return {(r[0] if len(keys) == 1 else tuple(r[:len(keys)])): tuple(r[len(keys):]) for r in rows}


def check_held_up_share(rows, url):
    [(late, silent)] = _late_origins(url, "'all'").values()
    assert silent and close(rows[0]["not_recorded_rate"], rate(silent, late))


def check_held_up_land_share(rows, url):
    [(late, silent)] = _late_origins(url, "'all'", land=True).values()
    assert silent and close(rows[0]["not_recorded_rate"], rate(silent, late))


def check_held_up_origins(rows, url):
    expected = {k: late for k, (late, _) in _late_origins(url, f"{LEVEL_SQL} || ' – ' || o.office").items()}
    _top(rows, "level_office", "late_dossiers", expected, 15)


def check_held_up_levels(rows, url):
    expected = _late_origins(url, LEVEL_SQL)
    got = {r["level_name"]: r for r in rows}
    assert got.keys() == expected.keys() and {"Cấp huyện", "Cấp xã"} <= got.keys()
    for level, (late, silent) in expected.items():
        g = got[level]
        assert (g["late_dossiers"], g["not_recorded_dossiers"]) == (late, silent), level
        assert close(g["not_recorded_rate"], rate(silent, late)), level
    rates = [r["not_recorded_rate"] for r in rows]
    assert rates == sorted(rates, reverse=True), "the highest share first"


def check_held_up_land_units(rows, url):
    expected = {k: late for k, (late, _) in _late_origins(
        url, "coalesce(u.unit_name, o.unit_code, '(không xác định)')", LEVEL_SQL, "o.office", land=True).items()}
    got = {(r["unit_name"], r["level_name"], r["office"]): r["late_dossiers"] for r in rows}
    assert got == expected and len(rows) == len(expected)
    assert any(office == NOT_RECORDED for _, _, office in got)
    late = [r["late_dossiers"] for r in rows]
    assert late == sorted(late, reverse=True), "the most late dossiers first"


def _land_steps(url: str) -> list[tuple]:
    return query(url, f"SELECT coalesce(u.unit_name, s.unit_code, '(không xác định)'), {LEVEL_SQL}, s.office, s.steps, "
                 "s.late_steps, s.late_step_rate, s.median_hours, s.p90_hours FROM marts.fct_step_monthly_by_field s "
                 f"LEFT JOIN marts.dim_unit u ON u.unit_code = s.unit_code WHERE s.month = %s AND s.{LAND_SQL}",
                 (MONTH,))


def check_held_up_land_step_rate(rows, url):
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for _, level, office, steps, late, *_ in _land_steps(url):
        sums[f"{level} – {office}"][0] += steps
        sums[f"{level} – {office}"][1] += late
    got = {r["level_office"]: r["late_step_rate"] for r in rows}
    assert len(got) == len(rows) == min(30, len(sums))
    for label, value in got.items():
        assert close(value, rate(sums[label][1], sums[label][0])), label
    assert sorted(got.values(), reverse=True) == pytest.approx(
        sorted((rate(late, steps) for steps, late in sums.values()), reverse=True)[:30])


def check_held_up_land_steps(rows, url):
    expected = {(name, level, office): (steps, late, late_rate, median, p90)
                for name, level, office, steps, late, late_rate, median, p90 in _land_steps(url)}
    got = {(r["unit_name"], r["level_name"], r["office"]): r for r in rows}
    assert got.keys() == expected.keys() and len(rows) == len(expected)
    for key, (steps, late, late_rate, median, p90) in expected.items():
        g = got[key]
        assert (g["steps"], g["late_steps"]) == (steps, late), key
        assert close(g["late_step_rate"], late_rate) and close(g["median_hours"], median), key
        assert close(g["p90_hours"], p90), key
    order = [(-r["late_steps"], -r["late_step_rate"]) for r in rows]
    assert order == sorted(order), "the most late steps first, then the highest share of them"


CHECKS = {
    ("on-time rate", "big_number_total"): check_big_on_time,
    ("units below target", "big_number_total"): check_big_below,
    ("pending overdue", "big_number_total"): check_big_overdue,
    ("online rate", "big_number_total"): check_big_online,
    ("on-time rate by level", "echarts_timeseries_line"): check_on_time_levels,
    ("units below target", "table"): check_below_units,
    ("pending overdue by unit", "echarts_timeseries_bar"): check_overdue_units,
    ("online submission", "echarts_timeseries_line"): check_online_levels,
    ("intake digitisation", "echarts_timeseries_line"): check_intake_levels,
    ("result digitisation", "echarts_timeseries_line"): check_result_levels,
    ("delegation progress", "table"): check_delegation,
    ("disbursement vs plan", "echarts_timeseries_bar"): check_disbursement_sources,
    ("disbursement by investor", "table"): check_disbursement_investors,
    ("open data-quality issues", "big_number_total"): check_dq_open,
    ("dossiers with open issues", "big_number_total"): check_dq_dossiers,
    ("open issues by rule", "echarts_timeseries_bar"): check_dq_rules,
    ("open issues by unit", "echarts_timeseries_bar"): check_dq_units,
    ("open issues by unit and rule", "table"): check_dq_unit_rule,
    ("new and fixed per night", "echarts_timeseries_bar"): check_dq_nightly,
    ("open issues per night", "echarts_timeseries_line"): check_dq_open_nightly,
    ("service index score", "big_number_total"): check_si_score,
    ("points lost by criterion", "echarts_timeseries_bar"): check_si_criteria,
    ("criteria by level", "table"): check_si_criteria_levels,
    ("service index ranking", "table"): check_si_ranking,
    ("2.1 dossiers by unit", "echarts_timeseries_bar"): check_si_dossier_units,
    ("2.1 dossiers", "table"): check_si_dossiers,
    ("on-time rate, today's units", "echarts_timeseries_line"): check_current_on_time_levels,
    ("online rate, today's units", "echarts_timeseries_line"): check_current_online_levels,
    ("intake digitisation, today's units", "echarts_timeseries_line"): check_current_intake_levels,
    ("result digitisation, today's units", "echarts_timeseries_line"): check_current_result_levels,
    ("on-time rate by today's unit", "table"): check_current_units,
    ("share not recorded", "big_number_total"): check_held_up_share,
    ("land share not recorded", "big_number_total"): check_held_up_land_share,
    ("late origins by office", "echarts_timeseries_bar"): check_held_up_origins,
    ("share not recorded by level", "table"): check_held_up_levels,
    ("land late origins by unit", "table"): check_held_up_land_units,
    ("land step late rate by office", "echarts_timeseries_bar"): check_held_up_land_step_rate,
    ("land steps and p90 by unit", "table"): check_held_up_land_steps,
}


@pytest.mark.parametrize("key", list(CHECKS), ids=[" ".join(k) for k in CHECKS])
def test_chart_figures_equal_the_marts(charts, stack, key):
    assert key in charts, f"no chart {key} on the dashboards"
    rows = charts[key]["rows"]
    assert rows, f"{charts[key]['name']}: no data"
    CHECKS[key](rows, stack["url"])


# ------------------------------------------------------------------------------------------ the browser

LOGIN = """fetch('/login/', {method: 'POST', credentials: 'same-origin', redirect: 'manual',
    body: new URLSearchParams({csrf_token: document.getElementById('csrf_token').value,
                               username: %s, password: %s})}).then(r => r.type)"""
# Drawn pixels of each chart canvas (ECharts), sampled: the page is ready when every canvas has drawn and the
# counts hold still between two polls (the entry animation is over).
CANVAS_INK = """Array.from(document.querySelectorAll('.dashboard-component-chart-holder canvas')).map(c => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0; for (let i = 3; i < d.length; i += 64) if (d[i] > 0) n++; return n; })"""
HOLDERS = "document.querySelectorAll('.dashboard-component-chart-holder').length"
SPINNERS = "document.querySelectorAll('.dashboard-component-chart-holder .loading').length"


def _wait_drawn(page: DevToolsBrowser, charts: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    previous = None
    while True:
        data = [r for r in page.responses("/api/v1/chart/data") if r.method == "POST"]
        done = len(data) >= charts and all(r.finished or r.failed for r in data)
        ink = page.evaluate(CANVAS_INK) if done and not page.evaluate(SPINNERS) else None
        if ink and all(ink) and ink == previous:
            return
        previous = ink
        if time.monotonic() > deadline:
            raise DevToolsError(f"the dashboard did not finish drawing: {len(data)}/{charts} chart queries, "
                                f"canvases {ink}")
        page.pump(0.3)


def _show(stack, slug: str, count: int, tmp: Path, png: Path) -> tuple[str, list]:
    """Open dashboard ``slug`` logged in, wait until its ``count`` charts have drawn, keep a screenshot at ``png``;
    returns the page's text and the JavaScript dialogs that opened (none, or a name ran)."""
    superset = stack["superset"]
    username, password = stack["login"]
    with DevToolsBrowser(width=1600, height=2700) as page:
        page.navigate(superset.url + "/login/")
        assert page.evaluate(LOGIN % (json.dumps(username), json.dumps(password))) == "opaqueredirect"
        page.navigate(superset.url + f"/superset/dashboard/{slug}/")
        assert page.evaluate("location.pathname") == f"/superset/dashboard/{slug}/", "logged in, not sent to login"
        page.wait_for(f"{HOLDERS} >= {count}", timeout=60)  # the charts (and the text box)
        _wait_drawn(page, count)
        data = [r for r in page.responses("/api/v1/chart/data") if r.method == "POST"]
        assert [r.status for r in data] == [200] * count, [(r.url, r.status, r.failed) for r in data]
        text = page.evaluate("document.body.innerText")
        shot = page.screenshot(tmp / png.name, full_page=False)
        dialogs = [e for e in page.events if e["method"] == "Page.javascriptDialogOpening"]
    png.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, png)
    print(f"screenshot of {slug}: {png}")
    assert "Error" not in text and "Không có dữ liệu" not in text and "No results" not in text
    assert shot.stat().st_size > 100_000, "the screenshot is nearly empty"
    return text, dialogs


def test_the_morning_dashboard_shows_its_figures_to_a_logged_in_user(stack, charts, tmp_path):
    morning = {k: c for k, c in charts.items() if c["slug"] == MORNING}
    text, dialogs = _show(stack, MORNING, len(morning), tmp_path, SCREENSHOT)
    assert "Điều hành buổi sáng" in text
    # The big numbers, as the dashboard prints them: the Vietnamese way (87,6%), from the marts' own sums.
    on_time = charts[("on-time rate", "big_number_total")]["rows"][0]["on_time_rate"]
    assert f"{on_time * 100:.1f}".replace(".", ",") + "%" in text
    assert str(charts[("pending overdue", "big_number_total")]["rows"][0]["pending_overdue"]) in text
    # The busiest units' names are markup and formulas (tests/publication/scenario.py): shown as text, run never.
    below = [r["unit_name"] for r in charts[("units below target", "table")]["rows"]]
    for name in below:
        assert name in text, name
    assert any("<" in name for name in below), "the scenario puts a hostile name among the units below target"
    assert dialogs == [], "a unit's name ran as script"


def test_the_service_index_dashboard_shows_its_figures(stack, charts, tmp_path):
    count = sum(c["slug"] == SERVICE_INDEX for c in charts.values())
    text, dialogs = _show(stack, SERVICE_INDEX, count, tmp_path, SCREENSHOT.parent / "superset-service-index.png")
    assert "Chỉ số phục vụ (Quyết định 766)" in text
    score = charts[("service index score", "big_number_total")]["rows"][0]["score_100"]
    assert f"{score:.1f}".replace(".", ",") in text
    assert "2.1 – Tiến độ giải quyết" in text and "Quá hạn chưa giải quyết" in text
    ranked = [r["unit_name"] for r in charts[("service index ranking", "table")]["rows"][:20]]  # the first page
    assert all(name in text for name in ranked) and any(name[0] in "=+-@<" for name in ranked)
    assert dialogs == [], "a unit's name ran as script"


def test_the_today_s_units_dashboard_shows_its_figures(stack, charts, tmp_path):
    count = sum(c["slug"] == CURRENT_UNITS for c in charts.values())
    text, dialogs = _show(stack, CURRENT_UNITS, count, tmp_path, SCREENSHOT.parent / "superset-current-units.png")
    assert "Đơn vị hiện nay" in text and "Cấp (đơn vị hiện nay)" in text
    first = charts[("on-time rate by today's unit", "table")]["rows"][0]
    assert first["current_unit_name"] in text
    assert dialogs == []


def test_the_held_up_dashboard_shows_its_figures(stack, charts, tmp_path):
    count = sum(c["slug"] == HELD_UP for c in charts.values())
    text, dialogs = _show(stack, HELD_UP, count, tmp_path, SCREENSHOT.parent / "superset-held-up.png")
    assert "Hồ sơ bị chậm ở đâu" in text and NOT_RECORDED in text
    share = charts[("share not recorded", "big_number_total")]["rows"][0]["not_recorded_rate"]
    assert f"{share * 100:.1f}".replace(".", ",") + "%" in text
    assert "Chi nhánh Văn phòng Đăng ký đất đai" in text, "the land registration branch, where land delays begin"
    units = [r["unit_name"] for r in charts[("land late origins by unit", "table")]["rows"][:15]]  # the first page
    assert all(name in text for name in units) and any(name[0] in "=+-@<" for name in units)
    assert dialogs == [], "a unit's name ran as script"
