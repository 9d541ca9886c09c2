"""dbt staging against a throw-away warehouse holding a small simulated province, landed by the real ingestion.

Expectations come from the simulator's records as served, evaluated here in plain Python (timestamps with
``simulator.truth.parse_timestamp``, the ground truth of the data-quality rule VAL06), never from the SQL
under test. One ``dbt build --select staging`` runs for the module (its unit tests included).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import os
import random
import time
from datetime import date, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from ops.dbt import DBT_PROJECT_DIR, MANIFEST_PATH, TARGET_PATH, dbt_env, ensure_manifest, run_dbt
from pipeline.night import run_night
from pipeline.settings import Settings
from simulator.__main__ import investors
from simulator.finance import write_workbooks
from simulator.province import Province
from simulator.scenario import DEFAULT_DEFECT_RATES, Scenario
from simulator.truth import TIMESTAMP_FIELDS, parse_timestamp
from tests.support.postgres import throwaway_warehouse
from tests.support.simulator import running_simulator

# The default defects, with more invalid timestamps (VAL06) so that every kind the simulator sends shows up.
SCENARIO = Scenario(seed=11, start=date(2023, 1, 1), end=date(2023, 3, 31), scale=0.03,
                    clock=datetime(2023, 4, 1, 1, 0), defect_rates={**DEFAULT_DEFECT_RATES, "VAL06": 0.03})
NIGHT = datetime(2023, 4, 1, 1, 0)
# The warehouse's HMAC key of applicant_key (APPLICANT_HASH_KEY), kept by the bootstrap in raw.applicant_hash_key.
APPLICANT_HASH_KEY = "staging-test-applicant-hash-key"
STAGED = dict(zip(TIMESTAMP_FIELDS, ("submitted_at", "received_at", "due_at", "finished_at", "returned_at",
                                     "refused_at"), strict=True))
PERSONAL_FIELDS = ("ChuHoSo", "SoDienThoai", "Email", "DinhDanhCHS", "TrichYeuHoSo", "NguoiXuLy")
# Column names that would carry personal data or the whole payload past staging.
FORBIDDEN_COLUMNS = {name.lower() for name in PERSONAL_FIELDS} | {
    "payload", "raw_row", "applicant_name", "phone", "phone_number", "email_address", "identity_number",
    "identity_numbers", "summary", "official", "official_name", "handled_by"}


@pytest.fixture(scope="module")
def landed(tmp_path_factory):
    """A warehouse with the scenario's reference lists, dossiers and finance workbooks landed in ``raw``;
    yields ``(writer_url, province, records, bi_reader_url)``."""
    tmp = tmp_path_factory.mktemp("staging")
    inbox = tmp / "inbox"
    write_workbooks(inbox, investors(), date(2023, 1, 1), date(2023, 3, 31), 11, frozenset(), 0.05)
    province = Province(SCENARIO)
    with throwaway_warehouse(tmp / "wh", env={"APPLICANT_HASH_KEY": APPLICANT_HASH_KEY}) as wh:
        writer = wh.urls["writer"]
        with running_simulator(province) as sim:
            settings = Settings.from_env({"PROCEDURE_API_URL": sim.url, "PROCEDURE_API_TOKEN": sim.token,
                                          "HISTORY_START": "2023-01-01", "FINANCE_INBOX": str(inbox)},
                                         warehouse_url=writer)
            run_night(settings, NIGHT, run_id="staging-test", until="land", lease=False)
        yield writer, province, list(province.iter_all()), wh.urls["bi_reader"]


def dbt(args: list[str], writer: str):
    """``run_dbt`` in the test's environment (the same every time, so dbt parses partially)."""
    return run_dbt(args, writer)


@pytest.fixture(scope="module")
def built(landed):
    """``dbt build --select staging`` (views, data tests, unit tests)."""
    writer, province, records, _ = landed
    return dbt(["build", "--select", "staging"], writer), writer, province, records


def rows(writer: str, sql: str, params=()) -> list[dict]:
    with psycopg.connect(writer) as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, params).fetchall()


def present(value) -> bool:
    return value is not None and value != ""


def integer(value):
    """The JSON integer semantics of staging: an int (or integral float), never a bool or a string."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        return None
    return int(value)


def expected_dossier(rec: dict) -> dict:
    """The staged row of a record, computed in plain Python."""
    components = rec.get("TaiLieuNop") or []
    results = rec.get("DanhSachGiayToKetQua") or []
    steps = rec.get("QuaTrinhXuLy") or []
    identities = sorted({i["SoDinhDanh"] for i in rec.get("DinhDanhCHS") or [] if present(i.get("SoDinhDanh"))})
    row = {
        "is_deleted": rec["DaXoa"],
        "updated_at": datetime.strptime(rec["NgayCapNhat"], "%Y%m%d%H%M%S"),
        "procedure_code": rec.get("MaTTHC") or None,
        "unit_code": rec.get("DonViXuLy") or None,
        "field_code": rec.get("MaLinhVuc") or None,
        "status": integer(rec.get("TrangThaiHoSo")),
        "channel": integer(rec.get("KenhThucHien")),
        "applicant_type": integer(rec.get("LoaiDoiTuong")),
        "has_digitised_components": rec.get("HoSoCoThanhPhanSoHoa") == 1,
        "component_count": len(components),
        "digitised_component_count": sum(c.get("DuocSoHoa") == 1 for c in components),
        "result_count": len(results),
        "electronic_result_count": sum(present(r.get("DuongDanTepTinKetQua")) for r in results),
        "supplement_count": len(rec.get("DanhSachHoSoBoSung") or []),
        "step_count": len(steps),
        "applicant_key": hmac.new(APPLICANT_HASH_KEY.encode(), ",".join(identities).encode(),
                                  hashlib.sha256).hexdigest() if identities else None,
    }
    for field, column in STAGED.items():
        row[column] = parse_timestamp(rec.get(field))
        row[f"{column}_raw"] = rec.get(field)
    row["latest_step_at"] = latest_step_time(rec)
    return row


def latest_step_time(rec: dict) -> datetime | None:
    """The latest valid ThoiDiemXuLy of a dossier in processing (TrangThaiHoSo 2 or 4, the dossiers INC05
    judges), else None: the valid step times of the items that are objects."""
    steps = rec.get("QuaTrinhXuLy")
    if integer(rec.get("TrangThaiHoSo")) not in (2, 4) or not isinstance(steps, list):
        return None
    return max((t for s in steps if isinstance(s, dict) and (t := parse_timestamp(s.get("ThoiDiemXuLy")))),
               default=None)


def test_dbt_build_of_staging_succeeds(built):
    proc = built[0]
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert " ERROR=0 " in proc.stdout and " SKIP=0 " in proc.stdout
    assert "stg_api__dossiers_parses_timestamps_strictly" in proc.stdout  # the unit tests ran


def test_every_dossier_is_staged_once_with_its_values(built):
    _, writer, _, records = built
    staged = {r["dossier_id"]: r for r in rows(writer, "SELECT * FROM staging.stg_api__dossiers")}
    assert len(staged) == len(rows(writer, "SELECT dossier_id FROM staging.stg_api__dossiers"))
    assert set(staged) == {rec["MaHoSo"] for rec in records}
    assert sum(r["is_deleted"] for r in staged.values()) == sum(rec["DaXoa"] for rec in records) > 0
    mismatches = []
    for rec in records:
        expected = expected_dossier(rec)
        actual = {k: staged[rec["MaHoSo"]][k] for k in expected}
        if actual != expected:
            mismatches.append((rec["MaHoSo"], {k: (actual[k], v) for k, v in expected.items() if actual[k] != v}))
    assert not mismatches, mismatches[:5]


def test_a_table_staged_before_the_latest_step_time_gains_it_on_its_next_build(built):
    """A deployed stg_api__dossiers without latest_step_at (built before it had the column) gains it on its next
    incremental build, filled from the landed payloads for the dossiers in processing (the pre-hook
    dossiers_add_latest_step_at), instead of failing on the schema change; with nothing changed since and no
    look-back, no dossier is decoded again, so the values are the hook's."""
    _, writer, _, records = built
    expected = {rec["MaHoSo"]: latest_step_time(rec) for rec in records}
    assert sum(t is not None for t in expected.values()) >= 20
    with psycopg.connect(writer) as conn:
        conn.execute("ALTER TABLE staging.stg_api__dossiers DROP COLUMN latest_step_at")
    proc = dbt(["run", "--select", "stg_api__dossiers", "--vars", json.dumps({"incremental_lookback_minutes": 0})],
               writer)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "INSERT 0 0" in proc.stdout, proc.stdout[-2000:]  # nothing decoded again
    staged = rows(writer, "SELECT dossier_id, latest_step_at FROM staging.stg_api__dossiers")
    assert {r["dossier_id"]: r["latest_step_at"] for r in staged} == expected


def test_invalid_timestamps_are_null_and_kept_as_received(built):
    _, writer, _, records = built
    bad = {(rec["MaHoSo"], STAGED[f]): rec[f] for rec in records for f in TIMESTAMP_FIELDS
           if present(rec.get(f)) and parse_timestamp(rec[f]) is None}
    assert len(bad) >= 20  # the scenario injects VAL06 defects of every kind
    assert {len(v) for v in bad.values()} != {14}  # wrong lengths, separators …
    assert any(len(v) == 14 and v.isdigit() for v in bad.values())  # … and impossible dates
    staged = {r["dossier_id"]: r for r in rows(writer, "SELECT * FROM staging.stg_api__dossiers")}
    for (dossier, column), text in bad.items():
        assert staged[dossier][column] is None
        assert staged[dossier][f"{column}_raw"] == text
    # "" (the other spelling of a missing value) is kept as received and parsed to NULL.
    empty = [(r, c) for r in staged.values() for c in STAGED.values() if r[f"{c}_raw"] == ""]
    assert empty and all(r[c] is None for r, c in empty)


def test_list_items_are_staged_for_live_dossiers_only(built):
    _, writer, _, records = built
    live = [rec for rec in records if not rec["DaXoa"]]
    components = rows(writer, "SELECT * FROM staging.stg_api__dossier_components ORDER BY dossier_id, position")
    assert [(r["dossier_id"], r["position"], r["file_id"], r["component_code"], r["is_digitised"], r["is_reused"],
             r["from_national_repository"]) for r in components] == sorted(
        (rec["MaHoSo"], i, c["TepDinhKemId"], c["MaThanhPhanHoSo"], c["DuocSoHoa"] == 1, c["DuocTaiSuDung"] == 1,
         c["DuocLayTuKhoDMQG"] == 1) for rec in live for i, c in enumerate(rec["TaiLieuNop"] or [], 1))
    results = rows(writer, "SELECT * FROM staging.stg_api__dossier_results ORDER BY dossier_id, position")
    assert [(r["dossier_id"], r["position"], r["result_id"], r["has_electronic_file"]) for r in results] == sorted(
        (rec["MaHoSo"], i, g["GiayToId"], present(g["DuongDanTepTinKetQua"]))
        for rec in live for i, g in enumerate(rec["DanhSachGiayToKetQua"] or [], 1))
    supplements = rows(writer, "SELECT * FROM staging.stg_api__dossier_supplements ORDER BY dossier_id, position")
    assert [(r["dossier_id"], r["supplement_id"], r["requested_at"], r["due_after"], r["supplement_status"])
            for r in supplements] == sorted(
        (rec["MaHoSo"], s["HoSoBoSungId"], parse_timestamp(s["NgayYeuCauBoSung"]), parse_timestamp(s["NgayHenTraMoi"]),
         s["TrangThaiBoSung"]) for rec in live for s in rec["DanhSachHoSoBoSung"] or [])
    steps = rows(writer, "SELECT * FROM staging.stg_api__dossier_steps ORDER BY dossier_id, position")
    assert [(r["dossier_id"], r["step_no"], r["processed_at"], r["position_title"], r["legal_end_at"])
            for r in steps] == sorted(
        (rec["MaHoSo"], s["BuocXuLy"], parse_timestamp(s["ThoiDiemXuLy"]), s["ChucDanh"],
         parse_timestamp(s["NgayKetThucTheoQuyDinh"])) for rec in live for s in rec["QuaTrinhXuLy"] or [])
    assert components and results and supplements and steps


def test_reference_lists_and_disbursement_rows(built):
    _, writer, province, _ = built
    units = {r["unit_code"]: r for r in rows(writer, "SELECT * FROM staging.stg_api__units")}
    assert units.keys() == {u["MaDonVi"] for u in province.unit_records()}
    for u in province.unit_records():
        staged = units[u["MaDonVi"]]
        assert (staged["unit_name"], staged["level"], staged["unit_type"], staged["parent_code"],
                staged["valid_from"], staged["is_listed"]) == (
            u["TenDonVi"], u["CapDonVi"], u["LoaiDonVi"], u["MaDonViCha"],
            datetime.strptime(u["HieuLucTu"], "%Y%m%d").date(), True)
    procedures = {r["procedure_code"]: r for r in rows(writer, "SELECT * FROM staging.stg_api__procedures")}
    assert {code: (r["levels"], r["online_level"], float(r["legal_duration"]), r["returns_paper_result"],
                   r["has_fees"]) for code, r in procedures.items()} == {
        p["MaTTHC"]: (p["CapThucHien"], p["MucDo"], float(p["ThoiHanGiaiQuyet"]), p["TraKetQuaGiay"],
                      p["CoPhiLePhi"]) for p in province.procedure_records()}
    delegations = {r["delegation_id"]: r for r in rows(writer, "SELECT * FROM staging.stg_api__delegations")}
    assert {k: (r["status"], r["decision_date"], r["planned_date"], r["updated_at"])
            for k, r in delegations.items()} == {
        d["MaUyQuyen"]: (d["TrangThai"], d["NgayQuyetDinh"] and datetime.strptime(d["NgayQuyetDinh"], "%Y%m%d").date(),
                         datetime.strptime(d["NgayKeHoach"], "%Y%m%d").date(), parse_timestamp(d["NgayCapNhat"]))
        for d in province.delegation_records()}
    staged = rows(writer, "SELECT report_date, row_number, investor_unit_code, plan_pm, disbursed_cumulative "
                          "FROM staging.stg_finance__disbursement_rows ORDER BY report_date, row_number")
    landed = rows(writer, "SELECT report_date, row_number, investor_code AS investor_unit_code, plan_pm, "
                          "disbursed_cumulative FROM raw.disbursement_rows ORDER BY report_date, row_number")
    assert staged == landed and staged


def test_no_personal_data_passes_staging(built):
    _, writer, _, records = built
    columns = rows(writer, "SELECT table_name, column_name, data_type FROM information_schema.columns "
                           "WHERE table_schema = 'staging'")
    assert {c["table_name"] for c in columns} >= {"stg_api__dossiers", "stg_api__dossier_steps"}
    assert not [c for c in columns if c["column_name"].lower() in FORBIDDEN_COLUMNS]
    # Nor do their values, under any name: no text in staging equals a name, phone, e-mail, identity number,
    # dossier summary or official's name the API sent.
    personal = set()
    for rec in records:
        personal |= {rec[f] for f in ("ChuHoSo", "SoDienThoai", "Email", "TrichYeuHoSo") if present(rec.get(f))}
        personal |= {i["SoDinhDanh"] for i in rec.get("DinhDanhCHS") or []}
        personal |= {s["NguoiXuLy"] for s in rec.get("QuaTrinhXuLy") or []}
    assert len(personal) > 1000
    with psycopg.connect(writer) as conn:
        for c in columns:
            if c["data_type"] == "text":
                values = {v for (v,) in conn.execute(
                    f'SELECT DISTINCT "{c["column_name"]}" FROM staging."{c["table_name"]}"')}
                assert not values & personal, (c["table_name"], c["column_name"])


def test_no_catalogue_text_holds_the_applicant_hash_key(built, landed):
    """The catalogue every role reads (view and function bodies, comments, settings) holds no secret, and
    no md5 of identity numbers is left; the key table itself is the writer's alone."""
    _, writer, _, records = built
    reader = landed[3]
    key = APPLICANT_HASH_KEY.encode()
    padded = key.ljust(64, b"\0")
    secrets = {APPLICANT_HASH_KEY, key.hex(), bytes(b ^ 0x36 for b in padded).hex(),
               bytes(b ^ 0x5C for b in padded).hex()}
    with psycopg.connect(reader) as conn:
        views = dict(conn.execute("SELECT schemaname || '.' || viewname, definition FROM pg_views"))
        assert "staging.stg_api__dossier_steps" in views  # bi_reader does see every view's definition
        texts = [*views.values(),
                 *(d for (d,) in conn.execute("SELECT definition FROM pg_matviews")),
                 *(d for (d,) in conn.execute("SELECT prosrc FROM pg_proc")),
                 *(d for (d,) in conn.execute("SELECT description FROM pg_description")),
                 *(d for (d,) in conn.execute("SELECT concat_ws(' ', setting, reset_val, boot_val) FROM pg_settings")),
                 *(d for (d,) in conn.execute("SELECT array_to_string(setconfig, ' ') FROM pg_db_role_setting"))]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM raw.applicant_hash_key")
    text = "\n".join(t or "" for t in texts).lower()
    assert len(text) > 20_000
    assert not [s for s in secrets if s.lower() in text]
    assert "staging.stg_api__dossiers" not in views  # a table: its SQL (which reads the key table) is nowhere
    assert not [name for name, definition in views.items() if "md5(" in definition]
    # The key the values were computed with is the one configured: applicant_key counts applicants as before.
    keys = rows(writer, "SELECT count(DISTINCT applicant_key) AS n FROM staging.stg_api__dossiers")[0]["n"]
    assert keys == len({",".join(sorted({i["SoDinhDanh"] for i in rec.get("DinhDanhCHS") or []
                                        if present(i.get("SoDinhDanh"))})) for rec in records} - {""}) > 100


def _timestamp_cases() -> list[str]:
    """Strings around every boundary of yyyyMMddHHmmss, plus random corruptions of valid ones."""
    cases = [f"{y}{m:02d}{d:02d}120000" for y, m, d in itertools.product(
        ("2023", "2024", "1900", "2000", "2100", "0000", "0001", "9999"), range(14), range(33))]
    cases += [f"20230615{h:02d}{mi:02d}{s:02d}" for h, mi, s in itertools.product(
        (0, 9, 23, 24, 25, 99), (0, 30, 59, 60, 99), (0, 30, 59, 60, 61, 99))]
    rng = random.Random(5)
    alphabet = "0123456789 -:T.a+"
    for _ in range(2000):
        text = list(f"{rng.randint(1990, 2030)}{rng.randint(1, 12):02d}{rng.randint(1, 31):02d}"
                    f"{rng.randint(0, 23):02d}{rng.randint(0, 59):02d}{rng.randint(0, 59):02d}")
        for _ in range(rng.randint(0, 2)):
            position = rng.randrange(len(text) + 1)
            action = rng.choice(("replace", "insert", "delete"))
            if action == "delete" and position < len(text):
                del text[position]
            elif action == "insert":
                text.insert(position, rng.choice(alphabet))
            else:
                text[min(position, len(text) - 1)] = rng.choice(alphabet)
        cases.append("".join(text))
    return [*cases, "", " 20230101000000", "20230101000000 ", "2023-01-01T00:00"]


def test_parse_ts_and_parse_date_agree_with_python_on_every_boundary(built):
    _, writer, _, _ = built
    proc = dbt(["compile", "--quiet", "--inline",
                    "select value, {{ parse_ts('value') }} as ts, {{ parse_date('left(value, 8)') }} as day "
                    "from cases"], writer)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    cases = _timestamp_cases()
    with psycopg.connect(writer) as conn:
        conn.execute("CREATE TEMPORARY TABLE cases (value text NOT NULL)")
        with conn.cursor().copy("COPY cases (value) FROM STDIN") as copy:
            for case in cases:
                copy.write_row((case,))
        got = conn.execute(proc.stdout.strip()).fetchall()

    def python_date(text: str):
        try:
            return datetime.strptime(text, "%Y%m%d").date() if len(text) == 8 and text.isascii() \
                and text.isdigit() else None
        except ValueError:
            return None

    assert len(got) == len(cases)
    wrong = [(v, ts, day) for v, ts, day in got
             if ts != parse_timestamp(v) or day != python_date(v[:8])]
    assert not wrong, wrong[:10]
    assert sum(ts is not None for _, ts, _ in got) > 1000 and sum(ts is None for _, ts, _ in got) > 1000


def test_source_freshness_is_configured_and_fresh(built):
    _, writer, _, _ = built
    proc = dbt(["source", "freshness"], writer)
    assert proc.returncode == 0, proc.stdout[-4000:]
    sources = json.loads((Path(dbt_env(writer)["DBT_TARGET_PATH"]) / "sources.json").read_text())
    checked = {r["unique_id"].split(".", 2)[2] for r in sources["results"]}
    assert checked >= {"api.dossier_current", "api.dossier_versions", "api.units", "api.procedures",
                       "api.delegations", "audit.ingest_runs", "finance.disbursement_rows", "finance.finance_files"}
    assert {r["status"] for r in sources["results"]} == {"pass"}


def test_a_new_night_costs_dbt_no_new_parse(built):
    """The run's as-of time and run id change every night, the incremental look-back from one caller to
    another; dbt re-parses the whole project when its vars change, so they reach the models as the run
    context (macro run_var), read when the models compile."""
    _, writer, _, _ = built
    compiled = Path(dbt_env(writer)["DBT_TARGET_PATH"]) / "compiled" / "cchc" / "models"
    for night, lookback in (("2023-03-30T01:00:00", 15), ("2023-03-31T01:00:00", 0)):
        proc = dbt(["compile", "--select", "fct_pending_overdue", "stg_api__dossiers", "--vars",
                    json.dumps({"as_of": night, "pipeline_run_id": f"run-{night}",
                                "incremental_lookback_minutes": lookback})], writer)
        assert proc.returncode == 0, proc.stdout[-4000:]
        assert f"'{night}'::timestamp" in (compiled / "marts" / "fct_pending_overdue.sql").read_text()
        assert f"interval '{float(lookback)} minutes'" in (compiled / "staging" / "stg_api__dossiers.sql").read_text()
        assert "Unable to do partial parsing" not in proc.stdout, proc.stdout[-2000:]


def test_dbt_parse_writes_the_manifest_cosmos_loads(built):
    """ensure_manifest writes the manifest Cosmos loads, in a folder no dbt command rewrites."""
    _, writer, _, _ = built
    ensure_manifest(writer)  # a fresh clone has none yet
    # Stale (older than every project file): rewritten, by a rename, so DAG parses meanwhile read a whole one.
    os.utime(MANIFEST_PATH, (0, 0))
    started = time.time()
    assert ensure_manifest(writer) == MANIFEST_PATH
    assert MANIFEST_PATH.is_relative_to(DBT_PROJECT_DIR.parent / ".local" / "dbt")
    assert MANIFEST_PATH.stat().st_mtime >= started - 1
    written = MANIFEST_PATH.stat().st_mtime_ns
    proc = dbt(["parse"], writer)  # any dbt command writes its own target folder, not Cosmos' manifest
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert MANIFEST_PATH.stat().st_mtime_ns == written
    assert ensure_manifest(writer) == MANIFEST_PATH and MANIFEST_PATH.stat().st_mtime_ns == written  # fresh
    manifest = json.loads(MANIFEST_PATH.read_text())
    staged = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    assert {n["schema"] for name, n in staged.items() if name.startswith("stg_")} == {"staging"}
    assert "nightly" in staged["stg_api__dossiers"]["tags"]
    assert manifest["nodes"]["model.cchc.stg_api__dossiers"]["contract"]["enforced"]


def test_dbt_env_derives_the_profile_from_the_writer_url():
    env = dbt_env("postgresql://pipe%40line:p%3Aw%2Fd@db.example:6543/ware%20house?sslmode=require", base={})
    assert {k: env[k] for k in ("DBT_HOST", "DBT_PORT", "DBT_USER", "DBT_PASSWORD", "DBT_DBNAME", "DBT_SSLMODE")} == {
        "DBT_HOST": "db.example", "DBT_PORT": "6543", "DBT_USER": "pipe@line", "DBT_PASSWORD": "p:w/d",
        "DBT_DBNAME": "ware house", "DBT_SSLMODE": "require"}
    assert env["DBT_PROFILES_DIR"] == str(DBT_PROJECT_DIR)
    assert env["DBT_TARGET_PATH"] == str(TARGET_PATH)
    assert dbt_env("postgresql://u:p@h/db", base={"DBT_TARGET_PATH": "/w1"})["DBT_TARGET_PATH"] == "/w1"
    assert dbt_env("postgresql://u:p@h/db", base={})["DBT_PORT"] == "5432"
    with pytest.raises(ValueError):
        dbt_env("mysql://u:p@h/db", base={})
    assert "password: \"{{ env_var('DBT_PASSWORD') }}\"" in (DBT_PROJECT_DIR / "profiles.yml").read_text()

