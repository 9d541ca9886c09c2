"""The data-quality stage end to end: API → ingestion → dbt (staging, dq_dossiers) → Great Expectations →
``dq`` → dbt (fct_dq_issue, fct_dq_daily), against a real PostgreSQL.

Expected findings come from the simulator's ground truth (``simulator.truth``: dq-rules.md evaluated in
plain Python on the served records), and the hand-made edge cases also carry the rules dq-rules.md says
they break, written out here. Nights are served by a ``StaticProvince`` — a scenario's records, plus edge
cases, edited between nights — through the simulator's own contract server.
"""

from __future__ import annotations

import copy
import json
import threading
from collections import Counter
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest

from expectations.rules import RULE_IDS
from ops.dbt import run_dbt
from pipeline.night import run_night
from pipeline.settings import Settings
from simulator.province import Province
from simulator.scenario import DEFAULT_DEFECT_RATES, Scenario
from simulator.static import StaticProvince
from simulator.truth import findings
from tests.support.postgres import throwaway_warehouse
from tests.support.simulator import running_simulator

NIGHT1 = datetime(2023, 4, 1, 1, 0)
NIGHT2 = NIGHT1 + timedelta(days=1)
SCENARIO = Scenario(seed=11, start=date(2023, 1, 1), end=date(2023, 3, 31), scale=0.03, clock=NIGHT1,
                    defect_rates={rule: 0.02 for rule in DEFAULT_DEFECT_RATES if rule[:3] != "DIG"})
STAGING_AND_DQ = ["path:models/staging", "path:models/dq"]
DQ_MARTS = ["int_dq_issues", "fct_dq_issue", "fct_dq_daily"]


def ts(when: datetime) -> str:
    return when.strftime("%Y%m%d%H%M%S")


def closed_commune(province: Province) -> dict:
    """A commune closed on 2023-03-15, its area passed to an existing commune (reorganisation.md): the
    System should have transferred what it received afterwards (VAL07)."""
    successor = next(u for u in province.unit_records() if u["CapDonVi"] == 3 and not u.get("HieuLucDen"))
    return {**successor, "MaDonVi": successor["MaDonVi"][:-3] + "Z99", "TenDonVi": "UBND xã Đã Sáp Nhập",
            "MaHanhChinh": None, "HieuLucDen": "20230315", "DonViKeThua": [successor["MaDonVi"]]}


def edge_cases(province: Province, as_of: datetime) -> dict[str, tuple[dict, set[str]]]:
    """Records no generator produces, each with the rules dq-rules.md says it breaks at ``as_of``."""
    paper = {p["MaTTHC"] for p in province.procedure_records() if p["TraKetQuaGiay"]}
    template = next(r for r in province.iter_all() if not r["DaXoa"] and r["TrangThaiHoSo"] == 10
                    and r["MaTTHC"] in paper and r["KenhThucHien"] == 2 and r["QuaTrinhXuLy"]
                    and r["DanhSachGiayToKetQua"] and r["NgayTiepNhan"] and r["NgayHenTra"]
                    and r["NgayKetThucXuLy"] and r["NgayTra"]
                    and max(r["NgayTiepNhan"], r["NgayKetThucXuLy"], r["NgayTra"]) < ts(as_of))
    received = datetime.strptime(template["NgayTiepNhan"], "%Y%m%d%H%M%S")
    unit = template["DonViXuLy"]
    cases: dict[str, tuple[dict, set[str]]] = {}

    def case(name: str, broken: set[str], **changes) -> None:
        rec = copy.deepcopy(template)
        rec["MaHoSo"] = f"{unit}-230331-9{len(cases):04d}"
        rec["NgayCapNhat"] = ts(as_of - timedelta(hours=3, minutes=len(cases)))
        for key, value in changes.items():
            if value is KeyError:
                rec.pop(key, None)
            else:
                rec[key] = value
        cases[name] = (rec, broken)

    def step(when: datetime) -> list[dict]:
        return [{"BuocXuLy": 1, "ThoiDiemXuLy": ts(when), "NoiDungXuLy": "Tiếp nhận", "TrangThai": 1}]

    case("clean", set())
    # Empty, null and missing lists: no step, no component, no electronic result.
    case("empty lists", {"INC04", "DIG01", "DIG02"}, KenhThucHien=1, HoSoCoThanhPhanSoHoa=0,
         QuaTrinhXuLy=[], TaiLieuNop=[], DanhSachGiayToKetQua=[])
    case("null lists", {"INC04", "DIG01", "DIG02"}, KenhThucHien=None, HoSoCoThanhPhanSoHoa=0,
         QuaTrinhXuLy=None, TaiLieuNop=None, DanhSachGiayToKetQua=None)
    case("missing lists", {"INC04", "DIG01", "DIG02"}, KenhThucHien="", HoSoCoThanhPhanSoHoa=0,
         QuaTrinhXuLy=KeyError, TaiLieuNop=KeyError, DanhSachGiayToKetQua=KeyError)
    case("result without link", {"DIG02"}, DanhSachGiayToKetQua=[{"GiayToId": "x", "DuongDanTepTinKetQua": ""}])
    case("digitised flag only", set(), KenhThucHien=3, HoSoCoThanhPhanSoHoa=1, TaiLieuNop=[])
    case("one digitised component", set(), KenhThucHien=1, HoSoCoThanhPhanSoHoa=0,
         TaiLieuNop=[{"DuocSoHoa": 0}, {"DuocSoHoa": 1}])
    # "" is missing, not invalid: INC rules, never VAL06.
    recent = step(as_of - timedelta(days=2))
    case("empty received", {"INC01"}, TrangThaiHoSo=4, NgayTiepNhan="", NgayKetThucXuLy="", NgayTra="",
         QuaTrinhXuLy=recent)
    case("empty finished", {"INC02"}, TrangThaiHoSo=9, NgayKetThucXuLy="", NgayTra="")
    case("empty returned", {"INC06"}, NgayTra="")
    case("empty due", {"INC03"}, NgayHenTra="")
    # An invalid timestamp is VAL06 and counts as missing for every other rule.
    case("30 February", {"VAL06", "INC01"}, TrangThaiHoSo=4, NgayTiepNhan="20230230080000",
         NgayKetThucXuLy=None, NgayTra=None, QuaTrinhXuLy=recent)
    case("due not a timestamp", {"VAL06", "INC03"}, NgayHenTra="2023-03-01")
    case("number timestamp", {"VAL06", "INC06"}, NgayTra=20230320080000)
    case("hour 24", {"VAL06", "INC02"}, TrangThaiHoSo=9, NgayKetThucXuLy="20230320240000", NgayTra=None)
    # INC05: strictly more than 30 days before the as-of time, from the latest of receipt and steps.
    stale = as_of - timedelta(days=30)
    case("stale exactly 30 days", set(), TrangThaiHoSo=4, NgayTiepNhan=ts(stale), NgayHenTra=ts(as_of),
         NgayKetThucXuLy=None, NgayTra=None, QuaTrinhXuLy=step(stale - timedelta(days=1)))
    case("stale 30 days and 1 s", {"INC05"}, TrangThaiHoSo=4, NgayTiepNhan=ts(stale - timedelta(seconds=1)),
         NgayHenTra=ts(as_of), NgayKetThucXuLy=None, NgayTra=None,
         QuaTrinhXuLy=step(stale - timedelta(days=2)))
    case("old receipt, recent step", set(), TrangThaiHoSo=2, NgayTiepNhan=ts(as_of - timedelta(days=60)),
         NgayHenTra=ts(as_of), NgayKetThucXuLy=None, NgayTra=None, QuaTrinhXuLy=step(as_of - timedelta(days=3)))
    case("stale, no time at all", {"INC01"}, TrangThaiHoSo=2, NgayTiepNhan=None, NgayHenTra=None,
         NgayKetThucXuLy=None, NgayTra=None, QuaTrinhXuLy=[])
    case("stale, invalid step time", {"INC05"}, TrangThaiHoSo=4, NgayTiepNhan=ts(as_of - timedelta(days=45)),
         NgayHenTra=ts(as_of), NgayKetThucXuLy=None, NgayTra=None,
         QuaTrinhXuLy=[{"BuocXuLy": 1, "ThoiDiemXuLy": "20230399000000"}, "not an object"])
    # VAL01 at this as-of time only: the next night is past the receipt (a rule flipping with the clock alone).
    case("received later than the as-of time", {"VAL01"}, TrangThaiHoSo=4, NgayTiepNhan=ts(as_of + timedelta(hours=12)),
         NgayHenTra=ts(as_of + timedelta(days=10)), NgayKetThucXuLy=None, NgayTra=None,
         QuaTrinhXuLy=step(as_of + timedelta(hours=13)))
    # Values of the wrong type or range.
    case("status as text", {"VAL04"}, TrangThaiHoSo="10")
    case("status true", {"VAL04"}, TrangThaiHoSo=True)
    case("status 11", {"VAL04"}, TrangThaiHoSo=11)
    case("status 10.0", set(), TrangThaiHoSo=10.0)
    case("channel 4", {"VAL04"}, KenhThucHien=4)
    case("applicant missing", {"VAL04"}, LoaiDoiTuong=None)
    case("unknown unit", {"VAL03"}, DonViXuLy="000.00.99.H47")
    # VAL07: received after the last day of its (closed) unit; on the last day itself is still in time.
    closed = closed_commune(province)["MaDonVi"]
    dates = {"NgayHenTra": "20230322170000", "NgayKetThucXuLy": "20230320100000", "NgayTra": "20230321090000"}
    case("received after its unit closed", {"VAL07"}, DonViXuLy=closed, NgayTiepNhan="20230316080000", **dates)
    case("received on its unit's last day", set(), DonViXuLy=closed, NgayTiepNhan="20230315163000", **dates)
    case("no procedure", {"VAL03"}, MaTTHC="")
    # One dossier breaking many rules at once.
    future = ts(as_of + timedelta(days=2))
    case("many rules", {"VAL01", "VAL02", "VAL03", "VAL04", "VAL05", "INC06", "DIG01"}, MaTTHC="9.999999",
         KenhThucHien=1, LoaiDoiTuong=9, HoSoCoThanhPhanSoHoa=0, TaiLieuNop=[], NgayTiepNhan=future,
         NgayKetThucXuLy=ts(received), NgayHenTra=ts(received), NgayTra=None)
    # A tombstone is never evaluated.
    case("deleted", set(), DaXoa=True, TrangThaiHoSo=None, NgayTiepNhan="garbage", DonViXuLy=None)
    return cases


class SlackCatcher:
    """A local Slack-webhook stand-in: records every message posted to it."""

    def __init__(self):
        self.messages: list[dict] = []
        catcher = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                catcher.messages.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def night(state: dict, run_id: str, as_of: datetime) -> dict:
    """One nightly run's stages up to the data-quality marts (what the DAG does, minus Airflow)."""
    done = run_night(state["settings"], as_of, run_id=run_id, until="quality")
    summary = done["results"]["quality"]
    dbt_vars = json.dumps(state["settings"].dbt_vars(as_of=as_of.isoformat()))
    proc = run_dbt(["build", "--select", *DQ_MARTS, "--vars", dbt_vars], state["url"])
    assert proc.returncode == 0, proc.stdout[-5000:]
    return summary


# The issues open after a validation: its intervals, opened by it or before and not closed by it or before.
OPEN_AFTER = ("SELECT i.dossier_id, i.rule_id, i.unit_code, i.observed_value FROM dq.issue_intervals i, "
              "dq.validation_runs v WHERE v.validation_id = %s AND NOT i.voided AND i.opened_seq <= v.seq "
              "AND (i.closed_seq IS NULL OR i.closed_seq > v.seq)")


def stored(url: str, validation_id: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    with psycopg.connect(url) as conn:
        for key, rule, _, _ in conn.execute(OPEN_AFTER, (validation_id,)):
            out.setdefault(key, set()).add(rule)
    return out


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dq")
    (tmp / "inbox").mkdir()
    province = Province(SCENARIO)
    cases = edge_cases(province, NIGHT1)
    records = list(province.iter_all()) + [rec for rec, _ in cases.values()]
    units = [*province.unit_records(), closed_commune(province)]
    static = StaticProvince(province, records, units=units)
    slack = SlackCatcher()
    mp = pytest.MonkeyPatch()
    # the digest goes to Slack through the alert connection (pipeline.alerts), here the local stand-in
    mp.delenv("ALERT_SLACK_CONN_ID", raising=False)
    mp.setenv("AIRFLOW_CONN_CCHC_SLACK", json.dumps({"conn_type": "slackwebhook", "password": slack.url}))
    try:
        with throwaway_warehouse(tmp / "wh") as wh, running_simulator(static) as sim:
            settings = Settings.from_env({"PROCEDURE_API_URL": sim.url, "PROCEDURE_API_TOKEN": sim.token,
                                          "HISTORY_START": "2023-01-01", "FINANCE_INBOX": str(tmp / "inbox"),
                                          "REPORTS_DIR": str(tmp / "reports"), "GX_PROJECT_DIR": str(tmp / "gx"),
                                          # nights minutes apart: no wall-clock look-back
                                          "INGEST_LOOKBACK_MINUTES": "0", "DBT_INCREMENTAL_LOOKBACK_MINUTES": "0"},
                                         warehouse_url=wh.urls["writer"])
            st = {"settings": settings, "url": wh.urls["writer"], "province": province, "static": static,
                  "units": units, "cases": cases, "records": records, "slack": slack, "wh": wh, "tmp": tmp}
            st["summary1"] = night(st, "night-1", NIGHT1)
            st["truth1"] = findings(records, NIGHT1, province.procedure_records(), units)
            st["messages1"] = list(slack.messages)
            yield st
    finally:
        mp.undo()
        slack.close()


def test_the_scenario_breaks_every_rule(state):
    counts = Counter(rule for rules in state["truth1"].values() for rule in rules)
    assert set(counts) == set(RULE_IDS), f"rules no dossier breaks, the test would prove nothing: {counts}"


def test_edge_cases_are_judged_as_the_spec_says(state):
    """The ground truth itself agrees with the rules written out for each hand-made case."""
    truth = state["truth1"]
    for name, (rec, broken) in state["cases"].items():
        assert set(truth.get(rec["MaHoSo"], [])) == broken, name


def test_each_rule_flags_exactly_the_ground_truth(state):
    got = stored(state["url"], "night-1/dossiers")
    expected = {k: set(v) for k, v in state["truth1"].items()}
    for rule in RULE_IDS:
        want = {k for k, rules in expected.items() if rule in rules}
        have = {k for k, rules in got.items() if rule in rules}
        assert have == want, f"{rule}: {len(have - want)} flagged wrongly {sorted(have - want)[:5]}, " \
                             f"{len(want - have)} missed {sorted(want - have)[:5]}"
    for name, (rec, broken) in state["cases"].items():
        assert got.get(rec["MaHoSo"], set()) == broken, name


# dq.issue_intervals' keys and indexes as warehouse/migrations/V010__dq_issue_intervals.sql creates them.
INTERVALS_INDEXES = {
    "CREATE UNIQUE INDEX issue_intervals_pkey ON dq.issue_intervals USING btree (dossier_id, rule_id, opened_seq)",
    "CREATE UNIQUE INDEX issue_intervals_open ON dq.issue_intervals USING btree (dossier_id, rule_id) "
    "WHERE ((closed_seq IS NULL) AND (NOT voided))",
    "CREATE INDEX issue_intervals_open_unit ON dq.issue_intervals USING btree (unit_code, rule_id, opened_seq) "
    "WHERE ((closed_seq IS NULL) AND (NOT voided))",
    "CREATE INDEX issue_intervals_opened ON dq.issue_intervals USING btree (opened_seq)",
    "CREATE INDEX issue_intervals_closed ON dq.issue_intervals USING btree (closed_seq)",
    "CREATE INDEX issue_intervals_changed ON dq.issue_intervals USING btree (changed_seq)",
}


def test_the_first_validation_leaves_the_intervals_keys_and_indexes_as_they_were(state):
    """The first validation fills the empty intervals with their indexes set aside, then builds them again:
    afterwards the table has exactly the migration's key and indexes, and they hold (a second open interval
    of a dossier and rule is refused)."""
    with psycopg.connect(state["url"]) as conn:
        indexes = {r[0] for r in conn.execute(
            "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'dq.issue_intervals'::regclass")}
        primary = conn.execute("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                               "WHERE conrelid = 'dq.issue_intervals'::regclass AND contype = 'p'").fetchall()
        assert conn.execute("SELECT count(*) FROM dq.issue_intervals").fetchone()[0] > 0
        with pytest.raises(psycopg.errors.UniqueViolation, match="issue_intervals_open"):
            conn.execute("INSERT INTO dq.issue_intervals (dossier_id, rule_id, opened_seq, opened_validation, "
                         "opened_at, changed_seq) SELECT dossier_id, rule_id, opened_seq + 1000, 'again', opened_at, "
                         "changed_seq FROM dq.issue_intervals WHERE closed_seq IS NULL AND NOT voided LIMIT 1")
    assert indexes == INTERVALS_INDEXES
    assert primary == [("issue_intervals_pkey", "PRIMARY KEY (dossier_id, rule_id, opened_seq)")]


def test_findings_name_the_unit_and_what_broke(state):
    records = {r["MaHoSo"]: r for r in state["records"]}
    with psycopg.connect(state["url"]) as conn:
        rows = conn.execute(OPEN_AFTER, ("night-1/dossiers",)).fetchall()
        results = dict(conn.execute("SELECT check_id, unexpected_count FROM dq.expectation_results "
                                    "WHERE validation_id = 'night-1/dossiers'").fetchall())
    for key, rule, unit, observed in rows:
        assert unit == (records[key].get("DonViXuLy") or None), (key, rule)
        assert observed, (key, rule)
    many = state["cases"]["30 February"][0]["MaHoSo"]
    assert ("NgayTiepNhan=20230230080000",) in {(o,) for k, r, _, o in rows if k == many and r == "VAL06"}
    # Great Expectations' count of each rule is the number of findings stored.
    assert results == dict(Counter(rule for _, rule, _, _ in rows)) | {r: 0 for r in RULE_IDS
                                                                        if r not in {x[1] for x in rows}}


def test_data_docs_and_digest_are_written(state):
    reports = state["tmp"] / "reports"
    index = reports / "data-docs" / "index.html"
    assert index.exists()
    assert "dossiers" in index.read_text()
    digest = (reports / "dq-digest" / "latest.txt").read_text()
    total = sum(len(v) for v in state["truth1"].values())
    assert f"{total:,} open" in digest
    assert "(first validation)" in digest
    # One message for the night (not one per rule), sent because everything is new.
    assert len(state["messages1"]) == 1
    assert f"{total:,} new" in state["messages1"][0]["text"]


@pytest.fixture(scope="module")
def second_night(state):
    """Night 2: some dossiers fixed, one newly broken, one deleted; night 3: nothing changes."""
    records = [copy.deepcopy(r) for r in state["records"]]
    by_key = {r["MaHoSo"]: r for r in records}
    updated = ts(NIGHT2 - timedelta(hours=2))
    fixed = []
    for key, rules in sorted(state["truth1"].items()):
        rec = by_key[key]
        if rules == ["INC06"] and len(fixed) < 3 and rec.get("NgayKetThucXuLy"):
            rec["NgayTra"], rec["NgayCapNhat"] = rec["NgayKetThucXuLy"], updated
            fixed.append(key)
    assert len(fixed) == 3
    clean = state["cases"]["clean"][0]["MaHoSo"]
    by_key[clean]["NgayTra"], by_key[clean]["NgayCapNhat"] = None, updated  # now breaks INC06
    deleted = state["cases"]["many rules"][0]["MaHoSo"]
    by_key[deleted].update({"DaXoa": True, "NgayCapNhat": updated})
    state["static"].set_records(records)
    before = len(state["slack"].messages)
    summary = night(state, "night-2", NIGHT2)
    truth2 = findings(records, NIGHT2, state["province"].procedure_records(), state["units"])
    messages2 = state["slack"].messages[before:]
    night(state, "night-3", NIGHT2)  # the same as-of, nothing new landed: nothing to say
    return {"fixed": fixed, "broken": clean, "deleted": deleted, "truth2": truth2, "summary": summary,
            "messages2": messages2, "messages3": state["slack"].messages[before + len(messages2):]}


def test_night_two_flags_exactly_its_ground_truth(state, second_night):
    got = stored(state["url"], "night-2/dossiers")
    assert got == {k: set(v) for k, v in second_night["truth2"].items()}
    # ... evaluating only the night's change set: the changed and deleted dossiers, and those whose rules
    # flip with the clock (a dossier reaching INC05's 30 days, a receipt VAL01 no longer finds in the future).
    cases, t1, t2 = state["cases"], state["truth1"], second_night["truth2"]
    assert "INC05" not in t1.get(cases["stale exactly 30 days"][0]["MaHoSo"], [])
    assert "INC05" in t2[cases["stale exactly 30 days"][0]["MaHoSo"]]
    assert "VAL01" in t1[cases["received later than the as-of time"][0]["MaHoSo"]]
    assert cases["received later than the as-of time"][0]["MaHoSo"] not in t2
    with psycopg.connect(state["url"]) as conn:
        kinds = dict(conn.execute("SELECT validation_id, batch_kind || ' ' || evaluated FROM dq.validation_runs "
                                  "WHERE suite = 'dossiers'"))
    evaluated = {v: int(k.split()[-1]) for v, k in kinds.items()}
    assert kinds["night-1/dossiers"].startswith("full") and kinds["night-2/dossiers"].startswith("changes")
    assert evaluated["night-1/dossiers"] == len([r for r in state["records"] if not r["DaXoa"]])
    assert 0 < evaluated["night-2/dossiers"] < evaluated["night-1/dossiers"] / 10
    assert evaluated["night-3/dossiers"] == 0  # the same as-of time, nothing landed: nothing to evaluate


def test_a_fixed_dossier_closes_its_issue(state, second_night):
    t1, t2 = state["truth1"], second_night["truth2"]
    with psycopg.connect(state["url"]) as conn:
        issues = {(d, r): (u, first, last, is_open) for d, r, u, first, last, is_open in conn.execute(
            "SELECT dossier_id, rule_id, unit_code, first_seen_at, last_seen_at, is_open FROM marts.fct_dq_issue")}
    expected = {}
    for key in set(t1) | set(t2):
        for rule in set(t1.get(key, [])) | set(t2.get(key, [])):
            seen = [n for n, t in ((NIGHT1, t1), (NIGHT2, t2)) if rule in t.get(key, [])]
            expected[(key, rule)] = (min(seen), max(seen), rule in t2.get(key, []))
    assert {k: v[1:] for k, v in issues.items()} == expected
    for key in second_night["fixed"]:
        assert issues[(key, "INC06")][1:] == (NIGHT1, NIGHT1, False)
    assert issues[(second_night["broken"], "INC06")][1:] == (NIGHT2, NIGHT2, True)
    assert not any(is_open for (d, _), (_, _, _, is_open) in issues.items() if d == second_night["deleted"])


def test_daily_backlog_per_unit_and_rule(state, second_night):
    records = {r["MaHoSo"]: r for r in state["records"]}
    expected = Counter()
    for run_date, truth in ((NIGHT1.date(), state["truth1"]), (NIGHT2.date(), second_night["truth2"])):
        for key, rules in truth.items():
            for rule in rules:
                expected[(run_date, records[key].get("DonViXuLy") or None, rule)] += 1
    with psycopg.connect(state["url"]) as conn:
        got = {(d, u, r): n for d, u, r, n in conn.execute(
            "SELECT run_date, unit_code, rule_id, open_issues FROM marts.fct_dq_daily")}
    assert got == dict(expected)


def test_digest_tells_what_changed_and_stays_quiet_otherwise(state, second_night):
    assert len(second_night["messages2"]) == 1
    text = second_night["messages2"][0]["text"]
    t1, t2 = state["truth1"], second_night["truth2"]
    pairs1 = {(k, r) for k, rs in t1.items() for r in rs}
    pairs2 = {(k, r) for k, rs in t2.items() for r in rs}
    assert f"{len(pairs2 - pairs1):,} new and {len(pairs1 - pairs2):,} resolved" in text
    assert second_night["messages3"] == [], "a night with no change must not send a digest"
    with psycopg.connect(state["url"]) as conn:
        changed = dict(conn.execute("SELECT run_id, changed FROM dq.digests").fetchall())
    assert changed == {"night-1": True, "night-2": True, "night-3": False}


def test_nights_state_is_consistent_with_a_clean_rebuild(state, second_night):
    """dq_dossiers built incrementally over the nights equals a rebuild of the current state."""
    with psycopg.connect(state["url"]) as conn:
        incremental = conn.execute("SELECT md5(string_agg(t::text, '|' ORDER BY t.dossier_id)) FROM "
                                   "(SELECT * FROM dq.dq_dossiers) t").fetchone()[0]
    proc = run_dbt(["build", "--select", "dq_dossiers", "--full-refresh", "--vars",
                    json.dumps({"as_of": NIGHT2.isoformat()})], state["url"])
    assert proc.returncode == 0, proc.stdout[-4000:]
    with psycopg.connect(state["url"]) as conn:
        # source_changed_at differs between builds only for rows rebuilt, so compare without it
        full = conn.execute("SELECT md5(string_agg(t::text, '|' ORDER BY t.dossier_id)) FROM "
                            "(SELECT * FROM dq.dq_dossiers) t").fetchone()[0]
    assert incremental == full



def test_a_catalogue_change_re_evaluates_every_dossier_and_a_retry_changes_nothing(state, second_night):
    """The rules join the catalogue and the units: when they change, the night evaluates every dossier — a
    procedure that stops returning a paper result closes its dossiers' DIG02 issues though no dossier changed.
    And a validation run again (a retried task) undoes its earlier attempt first: the same issues, once."""
    from expectations.validate import run_data_quality

    static = state["static"]
    records = list(static.iter_all())
    by_key = {r["MaHoSo"]: r for r in records}
    procedures = copy.deepcopy(static.procedure_records())
    code = Counter(by_key[k]["MaTTHC"] for k, rules in second_night["truth2"].items() if "DIG02" in rules
                   ).most_common(1)[0][0]
    for p in procedures:
        if p["MaTTHC"] == code:
            p["TraKetQuaGiay"] = False
    static.procedures_override = procedures
    night4 = NIGHT2 + timedelta(days=1)
    try:
        night(state, "night-4", night4)
        truth4 = findings(records, night4, procedures, state["units"])
        assert stored(state["url"], "night-4/dossiers") == {k: set(v) for k, v in truth4.items()}
        run_data_quality("night-4", night4, state["settings"], notify=False, finance=False, digest=False)
        assert stored(state["url"], "night-4/dossiers") == {k: set(v) for k, v in truth4.items()}
        with psycopg.connect(state["url"]) as conn:
            kind, evaluated = conn.execute("SELECT batch_kind, evaluated FROM dq.validation_runs "
                                           "WHERE validation_id = 'night-4/dossiers'").fetchone()
            open_twice = conn.execute("SELECT count(*) FROM (SELECT 1 FROM dq.issue_intervals WHERE NOT voided "
                                      "AND closed_seq IS NULL GROUP BY dossier_id, rule_id HAVING count(*) > 1) x"
                                      ).fetchone()[0]
        assert kind == "full" and evaluated == sum(1 for r in records if not r["DaXoa"])
        assert open_twice == 0
        closed = {k for k, rules in second_night["truth2"].items() if "DIG02" in rules and by_key[k]["MaTTHC"] == code}
        assert closed and not any("DIG02" in truth4.get(k, []) for k in closed)
    finally:
        static.procedures_override = None
