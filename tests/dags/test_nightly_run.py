"""Real nights of the nightly DAG with ``airflow dags test``, against a throw-away warehouse, a dirty source
served through the contract and a finance inbox — the night always finishes, publishes everything good and
names precisely what is not:

1. The source sends records no parser expects and one page no parser can read; the inbox holds a zip bomb
   beside the good workbooks. The night succeeds ``incomplete``: everything good is landed and published,
   the bad records and the page are kept with their reason, the digest and the alert lead with the window.
   The monthly DAG publishes March.
2. The source is fixed — the window is pulled again — and sends a tombstone with broken fields; the inbox
   is unmounted. The dossier marts are rebuilt, the disbursement marts keep the last workbooks; the run
   is ``partial`` and the alert says what the failure means.
3. The API stops sending a field on a third of the records: the batch is stopped before the marts, and
   yesterday's marts stay exactly as they were (that the stop holds on the next nights while the broken
   versions are current: tests/data_quality/test_held_batches.py).

The dbt groups run at the default grain (one ``dbt build`` per group).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from datetime import date, datetime, timedelta
from pathlib import Path

import orjson
import psycopg
import pytest

from simulator.__main__ import investors
from simulator.finance import write_workbooks
from simulator.province import Province
from simulator.scenario import Scenario
from simulator.server import Faults
from simulator.static import RawRecord, StaticProvince
from tests.support.airflow_home import premigrated_home
from tests.support.dirty import Reply, dirty_source
from tests.support.paths import PROJECT_ROOT
from tests.support.postgres import throwaway_warehouse

NIGHT = datetime(2023, 4, 1, 1, 0)
SCENARIO = Scenario(seed=21, start=date(2023, 1, 1), end=date(2023, 3, 31), scale=0.02, clock=NIGHT)
PAGE = 500
BROKEN_WINDOW = "20230304000000"  # the third 31-day window of the first load: [2023-03-04, 2023-04-01 01:00)
GARBAGE = b'{"error_code":"00","total":12'
FINANCE_MARTS = ("fct_disbursement", "rpt_disbursement_by_investor")


def ts(when: datetime) -> str:
    return when.strftime("%Y%m%d%H%M%S")


def _break_window(request):
    """Every page but the first of the broken window: bytes no parser can read."""
    if request.path == "/dossiers" and request.params.get("updated_from") == BROKEN_WINDOW \
            and request.params.get("cursor"):
        return Reply(200, GARBAGE)
    return None


def zip_bomb(path: Path) -> None:
    """A file named like a workbook whose one entry inflates far beyond the cap the test sets."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/worksheets/sheet1.xml", b"0" * (12 * 2**20))


def check_front_door(env: dict, tmp_path: Path) -> None:
    """`make serve` over the night's outputs: the index links the report, the publication, the digest, the
    Data Docs and the dbt docs, every link answers, the night's state is on it, and nothing is writable."""
    import re
    import socket
    import time
    import urllib.error
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (tmp_path / "serve.log").open("w")
    serve = subprocess.Popen(["make", "-s", "serve"], cwd=PROJECT_ROOT, env={**env, "SERVE_PORT": str(port)},
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                index = urllib.request.urlopen(base + "/", timeout=10).read().decode("utf-8")
                break
            except OSError:
                assert serve.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.3)
        links = set(re.findall(r'href="(/[^"]*)"', index))
        assert {"/report/latest.html", "/report/bao-cao-2023-04-01.html", "/cong-khai/cong-khai-2023-03.html",
                "/cong-khai/cong-khai-2023-03.xlsx", "/dq-digest/latest.txt", "/data-docs/index.html",
                "/dbt-docs/index.html", "/alerts.log"} <= links
        for link in links:
            with urllib.request.urlopen(base + link, timeout=30) as resp:
                assert resp.status == 200 and resp.read(), link
        assert "INCOMPLETE" in index
        digest = urllib.request.urlopen(base + "/dq-digest/latest.txt", timeout=10).read().decode("utf-8")
        assert digest.startswith("[INCOMPLETE]")
        try:
            urllib.request.urlopen(urllib.request.Request(base + "/report/latest.html", data=b"x", method="POST"))
            raise AssertionError("the front door must be read-only")
        except urllib.error.HTTPError as exc:
            assert exc.code == 405
    finally:
        os.killpg(serve.pid, 15)
        serve.wait(timeout=30)
        log.close()


@pytest.mark.slow
def test_the_night_always_finishes_and_names_what_it_could_not_do(tmp_path):
    inbox = tmp_path / "inbox"
    finance = write_workbooks(inbox, investors(), date(2023, 1, 1), date(2023, 3, 31), seed=21)
    zip_bomb(inbox / "giai-ngan-2023-02-15.xlsx")
    base = Province(SCENARIO)
    records = list(base.iter_all())
    template = next(r for r in records if not r["DaXoa"] and r["NgayCapNhat"] < "20230201000000")
    code = template["MaHoSo"][:-5]
    when = ts(datetime(2023, 1, 20, 9))
    dirty = [
        RawRecord(orjson.dumps({**template, "MaHoSo": code + "90001", "NgayCapNhat": when})[:-1]
                  + b',"TrichYeuHoSo":"Cap giay \\ud800"}', code + "90001", when),
        RawRecord(orjson.dumps({**template, "MaHoSo": code + "90002", "NgayCapNhat": when})[:-1]
                  + b',"ChuHoSo":"Nguy\\u0000n"}', code + "90002", when),
        RawRecord(b'"ERROR: record could not be serialised"', code + "90003", when),
        RawRecord(b'"ERROR: record could not be serialised"', code + "90004", when),
    ]
    windows = {**template, "MaHoSo": code + "90005", "NgayCapNhat": when,
               "TaiLieuNop": [{"TepDinhKemId": "9", "DuongDanTaiTepTin": "C:\\u0000\\ho-so\\don.pdf"}]}
    province = StaticProvince(base, [*records, windows, *dirty])
    with throwaway_warehouse(tmp_path / "wh") as wh, dirty_source(province, rules=[_break_window]) as source:
        env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "WAREHOUSE_WRITER_URL": wh.urls["writer"],
               "PROCEDURE_API_URL": source.url, "PROCEDURE_API_TOKEN": source.token, "FINANCE_INBOX": str(inbox),
               "HISTORY_START": "2023-01-01", "REPORTS_DIR": str(tmp_path / "reports"),
               "PROCEDURE_API_PAGE_SIZE": str(PAGE), "PROCEDURE_API_MAX_RETRY_SECONDS": "3",
               "FINANCE_MAX_UNCOMPRESSED_BYTES": str(8 * 2**20),
               "PIPELINE_TASK_RETRIES": "0", "PIPELINE_RETRY_DELAY_SECONDS": "1", "PIPELINE_LOCK_WAIT_SECONDS": "5"}
        env.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", None)
        premigrated_home(tmp_path / "airflow")
        url = wh.urls["writer"]

        # --- night 1: dirty records, an unreadable page, a zip bomb --------------------------------------
        first = dags_test(env, "2023-04-01", tmp_path / "night-1.log")
        assert first.returncode == 0, f"night 1 must finish; see {tmp_path / 'night-1.log'}"
        in_broken = sorted((r for r in [*records, windows] if r["NgayCapNhat"] >= BROKEN_WINDOW),
                           key=lambda r: (r["NgayCapNhat"], r["MaHoSo"]))
        missed = {r["MaHoSo"] for r in in_broken[PAGE:]}
        assert missed, "the broken page must hold records for the test to prove anything"
        expected = {r["MaHoSo"]: r for r in [*records, windows] if r["MaHoSo"] not in missed}
        with psycopg.connect(url) as conn:
            night1 = {
                "run": conn.execute("SELECT run_id, status FROM audit.pipeline_runs").fetchone(),
                "current": dict(conn.execute("SELECT dossier_id, payload FROM raw.dossiers_current")),
                "quarantine": {bytes(b): (r, n) for b, r, n in conn.execute(
                    "SELECT raw_bytes, split_part(reason, ':', 1), times_seen FROM raw.quarantine")},
                "page": conn.execute("SELECT request, body FROM raw.quarantined_pages").fetchall(),
                "issues": conn.execute("SELECT kind FROM audit.window_issues WHERE resolved_at IS NULL").fetchall(),
                "facts": conn.execute("SELECT count(*) FROM marts.fct_dossier").fetchone()[0],
                "digest": conn.execute("SELECT body FROM dq.digests").fetchone()[0],
                "rejected": conn.execute("SELECT path, reason FROM raw.finance_files WHERE status = 'rejected'"
                                         ).fetchall(),
                "disbursement": conn.execute("SELECT count(*) FROM raw.disbursement_rows").fetchone()[0],
                "lease": conn.execute("SELECT count(*) FROM audit.run_lease").fetchone()[0],
            }
        assert night1["run"][1] == "incomplete"
        assert night1["current"] == expected  # everything good landed, byte for byte as JSON
        assert {night1["quarantine"][d.body] for d in dirty} == {
            ("cannot be stored", 1), ("not a JSON object", 2)}
        assert len(night1["quarantine"]) == 3
        (request, body), = night1["page"]
        assert f"updated_from={BROKEN_WINDOW}" in request and "cursor=" in request and bytes(body) == GARBAGE
        assert night1["issues"] == [("incomplete",)]
        assert night1["facts"] == sum(1 for r in expected.values() if not r["DaXoa"])
        assert night1["digest"].startswith("[INCOMPLETE]")
        head = night1["digest"].split("\n\n", 2)[1]
        assert head.startswith("NOT COMPLETE") and f"updated_from={BROKEN_WINDOW}" in head
        (path, reason), = night1["rejected"]
        assert path == "giai-ngan-2023-02-15.xlsx" and reason
        assert night1["disbursement"] == sum(len(v) for v in finance.effective_rows().values())
        assert night1["lease"] == 0, "the night released the warehouse"
        alerts = [json.loads(line) for line in (tmp_path / "reports" / "alerts.log").read_text().splitlines()]
        (alert,) = [a for a in alerts if a["event"] == "night_incomplete"]
        assert alert["message"].startswith(f"Nightly run {night1['run'][0]}: dossiers incomplete")
        assert not any(a["event"] == "task_failed" for a in alerts)
        # What the data team receives names where the bad records are, never what they hold.
        sent = night1["digest"] + (tmp_path / "reports" / "alerts.log").read_text(encoding="utf-8")
        for content in ("Cap giay", "Nguy", "could not be serialised", template["ChuHoSo"],
                        template["TrichYeuHoSo"], "ho-so"):
            assert content not in sent, f"record content in the digest or an alert: {content!r}"
        assert (tmp_path / "reports" / "report" / "latest.html").exists()
        docs = (tmp_path / "reports" / "dbt-docs" / "index.html").read_text(encoding="utf-8")
        assert "model.cchc.fct_dossier" in docs and "rpt_monthly_ranking" in docs  # the night's dbt docs site
        assert "report:" in first.stdout + first.stderr
        # The monthly publication DAG (scheduled on the ranking's asset): the latest complete month, March.
        monthly = dags_test(env, "2023-04-01", tmp_path / "monthly.log", "cchc_monthly_publication")
        assert monthly.returncode == 0, f"the monthly DAG failed; see {tmp_path / 'monthly.log'}"
        assert {p.name for p in (tmp_path / "reports" / "cong-khai").iterdir()} >= {"cong-khai-2023-03.html",
                                                                                   "cong-khai-2023-03.xlsx"}
        # The weekly DAG (cchc_weekly_integrity, Sundays): the tests the nights leave to it — the staging keys
        # and relationships over every payload, the large tables' key, not-null and value scans, the staged
        # dossiers against the landed ones — run through Airflow and pass on what the night built.
        weekly = dags_test(env, "2023-04-02", tmp_path / "weekly.log", "cchc_weekly_integrity")
        assert weekly.returncode == 0, f"the weekly DAG failed; see {tmp_path / 'weekly.log'}"
        assert all(f"PASS {t}" in weekly.stdout + weekly.stderr for t in (
            "not_null_int_dossiers__steps_office", "staged_equals_landed", "unique_fct_dossier_dossier_id"))
        # What a user opens next: `make status` names the night's state, `make serve` links it all.
        status = subprocess.run(["make", "-s", "status"], cwd=PROJECT_ROOT, env=env, text=True,
                                capture_output=True, timeout=120)
        assert f"last run: {night1['run'][0]} (night of 2023-04-01): INCOMPLETE" in status.stdout, status.stdout
        assert "NOT COMPLETE: dossiers incomplete" in status.stdout
        check_front_door(env, tmp_path)
        with psycopg.connect(url) as conn:
            finance_before = checksums(conn, FINANCE_MARTS)

        # --- night 2: the source is fixed, a broken tombstone, the inbox unmounted, the units list lost ----
        source.rules.clear()
        units = base.unit_records()
        province.units_override = units[: int(len(units) * 0.6)]
        province.set_clock(NIGHT + timedelta(days=1))
        gone = next(r for r in expected.values() if not r["DaXoa"] and r["MaHoSo"] not in missed)
        deleted_at = ts(NIGHT + timedelta(hours=6))
        tombstone = RawRecord(b'{"MaHoSo":"%s","NgayCapNhat":"%s","DaXoa":true,"TrichYeuHoSo":"\\udc00",'
                              b'"TrangThaiHoSo":NaN}' % (gone["MaHoSo"].encode(), deleted_at.encode()),
                              gone["MaHoSo"], deleted_at)
        province.set_records([r for r in [*records, windows, *dirty] if not isinstance(r, dict)
                              or r["MaHoSo"] != gone["MaHoSo"]] + [tombstone])
        second = dags_test({**env, "FINANCE_INBOX": str(tmp_path / "unmounted")}, "2023-04-02",
                           tmp_path / "night-2.log")
        assert second.returncode != 0, "a failed task shows: the run is marked failed"
        # The second night's dbt commands (its Cosmos tasks, the docs site) start from the parse state the first
        # night left: none parses the whole project again.
        assert "Unable to do partial parsing" not in second.stdout + second.stderr
        truth = {r["MaHoSo"]: r for r in [*records, windows] if r["MaHoSo"] != gone["MaHoSo"]}
        with psycopg.connect(url) as conn:
            status = conn.execute("SELECT status FROM audit.pipeline_runs WHERE run_date = '2023-04-02'").fetchone()
            current = dict(conn.execute("SELECT dossier_id, payload FROM raw.dossiers_current WHERE NOT is_deleted"))
            open_issues = conn.execute("SELECT count(*) FROM audit.window_issues WHERE resolved_at IS NULL"
                                       ).fetchone()[0]
            facts = conn.execute("SELECT count(*) FROM marts.fct_dossier").fetchone()[0]
            as_of = {d for (d,) in conn.execute("SELECT DISTINCT as_of_date FROM marts.fct_pending_overdue")}
            finance_after = checksums(conn, FINANCE_MARTS)
            marts_before = checksums(conn)
            units_current = {u for (u,) in conn.execute("SELECT unit_code FROM raw.units")}
            digest2 = conn.execute("SELECT d.body FROM dq.digests d JOIN audit.pipeline_runs p USING (run_id) "
                                   "WHERE p.run_date = '2023-04-02'").fetchone()[0]
        assert status == ("partial",)
        # the units list that lost 40% of its records was refused: yesterday's stays, the night went on with it,
        # and both the digest and the alert say so first
        assert units_current == {u["MaDonVi"] for u in units}
        assert digest2.startswith("[INCOMPLETE]")
        head = digest2.split("\n\n")[1:3]  # after the subject: the failed task, then what was not taken in
        assert head[0].startswith("FAILED TASKS: load_workbooks") and head[1].startswith("NOT COMPLETE")
        assert "units refused" in head[1] and "missing from the list" in head[1]
        assert current == {k: v for k, v in truth.items() if not v["DaXoa"]}  # the missed window is in
        assert open_issues == 0
        assert facts == len(current) and as_of == {date(2023, 4, 1), date(2023, 4, 2)}
        assert finance_after == finance_before, "the disbursement marts keep the last workbooks"
        alerts = [json.loads(line) for line in (tmp_path / "reports" / "alerts.log").read_text().splitlines()]
        failed = [a for a in alerts if a["event"] == "task_failed"]
        assert {a["task_id"] for a in failed} >= {"load_workbooks"}
        workbooks = next(a for a in failed if a["task_id"] == "load_workbooks")
        assert "dossier marts still build and publish" in workbooks["consequence"]
        assert "unmounted" in workbooks["exception"]
        night2 = [a for a in alerts if a["event"] == "night_incomplete" and a["run_id"] != night1["run"][0]]
        assert len(night2) == 1 and "units refused" in night2[0]["message"]
        province.units_override = None

        def serve_day(days: int) -> None:
            """The province as it stands ``days`` after the first night (its records move on)."""
            province.set_clock(NIGHT + timedelta(days=days))
            province.set_records([r for r in base.iter_all() if r["MaHoSo"] != gone["MaHoSo"]]
                                 + [windows, *dirty, tombstone])

        # --- night 3: the API stops sending a field on a third of the records ---------------------------
        serve_day(2)
        source.api.faults = Faults(omit_fields=("TrangThaiHoSo",), omit_share=0.35)
        # (That the stop holds, night after night, while the broken versions are current, until they are fixed
        # or released: tests/data_quality/test_held_batches.py.)
        third = dags_test(env, "2023-04-03", tmp_path / "night-3.log")
        with psycopg.connect(url) as conn:
            nights = {str(d): (s, v) for d, s, v in conn.execute(
                "SELECT p.run_date, p.status, v.status FROM audit.pipeline_runs p LEFT JOIN dq.validation_runs v "
                "ON v.run_id = p.run_id AND v.suite = 'batch' WHERE p.run_date >= '2023-04-03'")}
            digests = dict(conn.execute("SELECT p.run_date::text, d.body FROM dq.digests d JOIN audit.pipeline_runs p "
                                        "USING (run_id) WHERE p.run_date >= '2023-04-03'"))
            marts_after = checksums(conn)
    assert third.returncode != 0
    assert nights == {"2023-04-03": ("failed", "failed")}
    assert all(body.startswith("[CRITICAL]") and "BAT03" in body for body in digests.values()) and digests
    assert marts_after == marts_before, "a stopped batch leaves yesterday's marts untouched"


def checksums(conn: psycopg.Connection, tables: tuple[str, ...] | None = None) -> dict[str, str]:
    """A digest of every marts table's content (or of ``tables``)."""
    tables = tables or tuple(t for (t,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'marts'"))
    return {t: conn.execute(f"SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') "
                            f"FROM marts.{t} x").fetchone()[0] for t in sorted(tables)}


def dags_test(env: dict, run_date: str, log, dag_id: str = "cchc_nightly") -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "ops.airflow", "test-dag", "--run-date", run_date, "--dag-id", dag_id],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    log.write_text(proc.stdout + proc.stderr)
    return proc
