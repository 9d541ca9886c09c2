"""Where dossiers are held up (metrics.md, processing steps) on hand-made dossiers served through the API
contract, over two nights.

The first night's dossiers are made for the edge cases: a step without NgayBatDau, one whose NgayBatDau is
later than its ThoiDiemXuLy, one at exactly its legal end and one a second past it, ties in BuocXuLy (the
first in the list wins) and a lower BuocXuLy later in the list, a late dossier with no late step and one
with no steps at all (an empty list, null, not a list), a step without ThoiDiemXuLy, an office missing, ""
or not a string, invalid timestamps (30 February, month 13, a number), a deleted dossier, a unit code no
unit has and a missing one, steps in two months. The second night changes some of them — a new step, a
dossier that lost its steps, one whose steps are all invalid now, a deletion, a change of unit, a new
dossier, a new version whose steps are as they were — and the marts are built incrementally (only the
changed dossiers' steps decoded again), then in full: the same rows each time.

They are served by the contract server (``simulator/static.py``), pulled, staged and built by dbt into a real
PostgreSQL warehouse — only the models the two marts need. Expected rows come from
``tests/support/reference_steps.py`` (the independent reading of the spec) and, for the cases named, from
figures worked out by hand.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime

import psycopg
import pytest

from ops.dbt import run_dbt
from pipeline.night import run_night
from pipeline.settings import Settings
from simulator.province import Province
from simulator.scenario import Scenario
from simulator.static import StaticProvince
from tests.support import reference
from tests.support.marts import compare, fetch, norm
from tests.support.postgres import throwaway_warehouse
from tests.support.reference_steps import COLUMNS, KEYS, NOT_NAMED, NOT_RECORDED, compute_steps
from tests.support.simulator import running_simulator

NIGHT1, NIGHT2 = datetime(2023, 5, 1, 1, 0), datetime(2023, 5, 2, 1, 0)
JANUARY, FEBRUARY, MARCH, APRIL = date(2023, 1, 1), date(2023, 2, 1), date(2023, 3, 1), date(2023, 4, 1)
COUNT_MARTS = ("fct_timeliness_monthly", "fct_online_monthly", "fct_digitisation_monthly")
SELECT = ["+fct_step_monthly", "+fct_late_origin_monthly", "+fct_step_monthly_by_field",
          "+fct_late_origin_monthly_by_field", *COUNT_MARTS]

PROVINCE = "000.00.00.H47"
D1, D2 = "000.00.41.H47", "000.00.42.H47"  # districts
UNKNOWN = "000.99.99.H47"  # a DonViXuLy the unit list does not have
LAND = "1.000001"
DESK, REGISTRY, ENVIRONMENT, LEAD = ("Bộ phận Tiếp nhận và Trả kết quả", "Chi nhánh Văn phòng Đăng ký đất đai",
                                     "Phòng Tài nguyên và Môi trường", "Lãnh đạo UBND huyện")

UNITS = [
    {"MaDonVi": PROVINCE, "TenDonVi": "UBND tỉnh Thử nghiệm", "CapDonVi": 1, "LoaiDonVi": "UBND_TINH",
     "MaDonViCha": None, "MaHanhChinh": None, "HieuLucTu": "20080101", "HieuLucDen": None},
    *({"MaDonVi": code, "TenDonVi": name, "CapDonVi": 2, "LoaiDonVi": "UBND_HUYEN", "MaDonViCha": PROVINCE,
       "MaHanhChinh": None, "HieuLucTu": "20080101", "HieuLucDen": None}
      for code, name in ((D1, "UBND huyện Một"), (D2, "UBND huyện Hai"))),
]
PROCEDURES = [{"MaTTHC": LAND, "TenTTHC": "Đăng ký biến động đất đai", "MaLinhVuc": "DAT_DAI", "TenLinhVuc": "Đất đai",
               "CapThucHien": [2], "MucDo": 3, "ThoiHanGiaiQuyet": 10, "DonViThoiHan": "NGAY_LAM_VIEC",
               "TraKetQuaGiay": True, "CoPhiLePhi": True}]


def ts(value):
    """``MMddHHmm`` in 2023 → a contract timestamp (seconds 00); anything else as given."""
    return f"2023{value}00" if isinstance(value, str) and len(value) == 8 and value.isdigit() else value


def step(no, office, processed, start=None, legal_end=None) -> dict:
    return {"BuocXuLy": no, "ThoiDiemXuLy": ts(processed), "NguoiXuLy": "Trần Thị C", "ChucDanh": "Chuyên viên",
            "PhongBanXuLy": office, "NoiDungXuLy": "Thẩm định hồ sơ", "TrangThai": 1, "NgayBatDau": ts(start),
            "NgayKetThucTheoQuyDinh": ts(legal_end)}


def dossier(n: int, steps, *, unit: str = D1, updated: str = "04281000", due: str | None = "03201700",
            finished: str | None = "03171000", status: int = 10, field: str | None = "DAT_DAI") -> dict:
    """A land dossier received on 1 March (its own field ``field``: a land procedure's dossier may name
    another); resolved early (finished 17 March, due 20 March) unless told."""
    return {
        "MaHoSo": f"{D1}-230301-{n:05d}", "NgayCapNhat": ts(updated), "DaXoa": False, "MaTTHC": LAND,
        "TenTTHC": "", "MaLinhVuc": field,
        "TenLinhVuc": "Đất đai" if field == "DAT_DAI" else "", "DonViXuLy": unit, "KenhThucHien": 1,
        "LoaiDoiTuong": 1, "ChuHoSo": "Nguyễn Văn Thử", "SoDienThoai": None, "Email": None, "DinhDanhCHS": [],
        "TrichYeuHoSo": "", "NgayNopHoSo": ts("03010800"), "NgayTiepNhan": ts("03010800"), "NgayHenTra": ts(due),
        "NgayKetThucXuLy": ts(finished), "NgayTra": ts(finished) if status == 10 else None, "NgayTuChoi": None,
        "TrangThaiHoSo": status, "HoSoCoThanhPhanSoHoa": 0, "DuocThanhToanTrucTuyen": 0, "TaiLieuNop": [],
        "DanhSachGiayToKetQua": [], "DanhSachHoSoBoSung": [], "QuaTrinhXuLy": steps,
    }


def late(n: int, steps, **kw) -> dict:
    """Resolved late: due 10 March, finished 17 March."""
    return dossier(n, steps, due="03101700", **kw)


def tombstone(n: int, updated: str) -> dict:
    return {"MaHoSo": f"{D1}-230301-{n:05d}", "NgayCapNhat": ts(updated), "DaXoa": True, "DonViXuLy": D1,
            "MaTTHC": None, "TrangThaiHoSo": None}


ON_TIME = {"start": "03010800", "legal_end": "03031700"}  # processed before: on time
LATE = {"start": "03010800", "legal_end": "03021700"}  # processed on 3 March or later: late

NIGHT1_RECORDS = [
    # 1: a step without NgayBatDau (no duration), one starting after it was processed (no duration), a desk
    #    step of 1 h 30; the registry's step is the only late one (the dossier is on time).
    dossier(1, [step(1, DESK, "03010930", start="03010800", legal_end="03011700"),
                step(2, REGISTRY, "03061000", legal_end="03031700"),
                step(3, ENVIRONMENT, "03061100", start="03071100", legal_end="03091700"),
                step(4, LEAD, "03171000", start="03061100", legal_end="03201700")]),
    # 2: late; ties at BuocXuLy 2: the first in the list (the environment office) is where its delay began.
    late(2, [step(1, DESK, "03010900", **ON_TIME), step(2, ENVIRONMENT, "03060900", **LATE),
             step(2, REGISTRY, "03060900", **LATE), step(3, LEAD, "03171000", **LATE)]),
    # 3: late; the lower BuocXuLy comes later in the list: the registry.
    late(3, [step(3, LEAD, "03171000", **LATE), step(2, REGISTRY, "03080900", **LATE),
             step(1, DESK, "03010900", **ON_TIME)]),
    # 4: late with no late step: exactly at its legal end is not after it; no legal end; an invalid one.
    late(4, [step(1, DESK, "03031700", **ON_TIME), step(2, REGISTRY, "03101000", start="03031700"),
             step(3, LEAD, "03171000", start="03101000", legal_end="20230230170000")]),
    # 5, 6, 7: late, no steps at all: an empty list, null, not a list.
    late(5, []), late(6, None), late(7, {"BuocXuLy": 1}),
    # 8: late; a step without ThoiDiemXuLy and one with an invalid one (30 February) are no steps; the first
    #    late step is then the one without a number (after the numbered ones, but the only late one).
    late(8, [step(1, REGISTRY, None, **LATE), step(1, REGISTRY, "20230230100000", **LATE),
             step(None, ENVIRONMENT, "03090900", **LATE),
             step(2, LEAD, "03090800", start="03060800", legal_end="03101700")]),
    # 9: late; offices missing, "" and not a string: '(không ghi)'; the first late step has none.
    late(9, [step(1, "", "03060900", **LATE), step(2, None, "03070900", **LATE), step(3, 42, "03080900", **LATE)]),
    # 10: a second past its legal end is late; NgayBatDau invalid (month 13) and a number: no duration.
    dossier(10, [step(1, DESK, "20230303170001", start="20231301080000", legal_end="03031700"),
                 step(2, REGISTRY, "03061000", start=20230303170001, legal_end="03101700")]),
    # 11: to be deleted tonight already: a tombstone counts nowhere.
    tombstone(11, "04281000"),
    # 12: a unit code no unit has; 13: no unit at all; both resolved late in April, steps in March and April.
    late(12, [step(1, DESK, "03010900", **ON_TIME), step(2, REGISTRY, "04100900", **LATE)], unit=UNKNOWN,
         finished="04111000"),
    late(13, [step(1, DESK, "03010900", **ON_TIME), step(2, "", "04100900", **LATE)], unit="",
         finished="04111000"),
    # 14: still in processing, a late step: a late step, but no late dossier.
    dossier(14, [step(1, DESK, "03010900", **ON_TIME), step(2, REGISTRY, "03200900", **LATE)], status=4,
            finished=None),
    # 15..18: changed on the second night.
    late(15, [step(1, DESK, "03010900", **ON_TIME), step(2, REGISTRY, "03060900", **LATE)]),
    late(16, [step(1, ENVIRONMENT, "03060900", **LATE)]),
    late(17, [step(1, DESK, "03010900", **ON_TIME), step(2, LEAD, "03060900", **LATE)]),
    dossier(18, [step(1, DESK, "03010900", **ON_TIME), step(2, REGISTRY, "03060900", **LATE)], unit=D2),
    dossier(19, [step(1, DESK, "03010900", **ON_TIME)], status=4, finished=None),
    # 21: the only steps of February, deleted tonight: the month leaves fct_step_monthly. 22: the only D1 steps
    #     of January; a new version of it tonight keeps its steps as they were: the month is not recomputed.
    dossier(21, [step(1, DESK, "02200900", start="02200800", legal_end="02201700")], status=4, finished=None),
    dossier(22, [step(1, DESK, "01200900", start="01200800", legal_end="01201700")], status=4, finished=None),
    # 23, 24: D2's late dossiers of other fields, by their own MaLinhVuc: civil status (its first late step the
    #     desk's), and none at all (no late step). 23's field changes on the second night.
    late(23, [step(1, DESK, "03060900", **LATE), step(2, ENVIRONMENT, "03070900", **LATE)], unit=D2,
         field="HO_TICH"),
    late(24, [step(1, DESK, "03010900", **ON_TIME)], unit=D2, field=""),
    # 25: D2's only late dossier of January, its delay begun at the desk; no night changes it or its month.
    {**late(25, [step(1, DESK, "01060900", start="01020800", legal_end="01031700")], unit=D2, finished="01171000"),
     "NgayNopHoSo": ts("01020800"), "NgayTiepNhan": ts("01020800"), "NgayHenTra": ts("01101700")},
]

NIGHT2_CHANGES = [
    late(15, [], updated="05011000"),  # lost its steps
    tombstone(16, "05011000"),  # deleted
    late(17, [step(1, DESK, "03010900", **ON_TIME), step(2, LEAD, "20231306090000", **LATE)],
         updated="05011000"),  # its only late step's time is invalid now: no late step, no step of LEAD
    dossier(18, [step(1, DESK, "03010900", **ON_TIME), step(2, REGISTRY, "03060900", **LATE)], unit=D1,
            updated="05011000"),  # moved to D1
    dossier(19, [step(1, DESK, "03010900", **ON_TIME), step(2, ENVIRONMENT, "04300900", start="03010900",
                                                                 legal_end="04281700")],
            status=4, finished=None, updated="05011000"),  # a new step
    late(20, [step(1, DESK, "04030900", start="04030800", legal_end="04031700"),
              step(2, REGISTRY, "04200900", start="04030900", legal_end="04171700")],
         finished="04281000", updated="05011000"),  # a new dossier, late in April
    tombstone(21, "05011000"),
    dossier(22, [step(1, DESK, "01200900", start="01200800", legal_end="01201700")], status=4, finished=None,
            updated="05011000"),  # a new version, its steps unchanged
    late(23, [step(1, DESK, "03060900", **LATE), step(2, ENVIRONMENT, "03070900", **LATE)], unit=D2,
         field="CHUNG_THUC", updated="05011000"),  # only its field changed
]
CHANGED = {r["MaHoSo"] for r in NIGHT2_CHANGES}
NIGHT2_RECORDS = [r for r in NIGHT1_RECORDS if r["MaHoSo"] not in CHANGED] + NIGHT2_CHANGES
HAND_DELETED = f"{D1}-230301-00012"  # taken out of fct_dossier by hand after the second night


def _inserted(log: str, *models: str) -> dict[str, int]:
    """The rows each model's build inserted, from dbt's log."""
    return {model: int(re.search(model + r" [ .]*\[\S*INSERT 0 (\d+)", log).group(1)) for model in models}


def _build(url: str, *extra: str, lookback_minutes: float = 0) -> str:
    dbt_vars = json.dumps({"as_of": NIGHT2.isoformat(), "incremental_lookback_minutes": lookback_minutes})
    proc = run_dbt(["build", "--select", *SELECT, "--indirect-selection", "cautious", "--vars", dbt_vars, *extra],
                   url)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return proc.stdout


def _indexes(url: str, schema: str, table: str) -> set[str]:
    """A table's indexes, each as its columns and condition."""
    with psycopg.connect(url) as conn:
        return {re.sub(r"^.* USING btree ", "", d) for (d,) in conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s", (schema, table))}


def _keys(url: str, schema: str, table: str) -> tuple[set[str], set[tuple[str, str]]]:
    """A table's indexes (``_indexes``) and its primary key and unique constraints, as (name, definition)."""
    with psycopg.connect(url) as conn:
        constraints = {(name, definition) for name, definition in conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = format('%%I.%%I', %s::text, %s::text)::regclass AND contype IN ('p', 'u')",
            (schema, table))}
    return _indexes(url, schema, table), constraints


# Tables this module's builds make (one per materialisation the project has here: incremental, table).
ANALYZED = (("staging", "stg_api__dossiers"), ("intermediate", "int_dossiers__steps"), ("marts", "fct_dossier"),
            ("marts", "fct_step_monthly"), ("marts", "fct_step_monthly_by_field"),
            ("marts", "fct_late_origin_monthly_by_field"), ("marts", "fct_late_origin_monthly"),
            *(("marts", t) for t in COUNT_MARTS))


def _analyzed(url: str) -> dict[tuple[str, str], datetime | None]:
    """When each of ``ANALYZED`` was last analysed by a statement (not by autovacuum: ``last_autoanalyze``)."""
    with psycopg.connect(url) as conn:
        found = {(schema, table): at for schema, table, at in conn.execute(
            "SELECT schemaname, relname, last_analyze FROM pg_stat_user_tables")}
    return {t: found[t] for t in ANALYZED}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Night 1 pulled and built; night 2 pulled and built incrementally, then in full; each build's marts."""
    tmp = tmp_path_factory.mktemp("steps")
    base = Province(Scenario(seed=3, start=date(2023, 3, 1), end=date(2023, 3, 2), scale=0.001, clock=NIGHT1))
    province = StaticProvince(base, NIGHT1_RECORDS, units=UNITS, procedures=PROCEDURES)
    out = {}
    with throwaway_warehouse(tmp) as wh, running_simulator(province) as sim:
        url = wh.urls["writer"]
        settings = Settings.from_env({"PROCEDURE_API_URL": sim.url, "PROCEDURE_API_TOKEN": sim.token,
                                      "HISTORY_START": "2023-03-01", "FINANCE_INBOX": str(tmp)}, warehouse_url=url)
        run_night(settings, NIGHT1, run_id="steps-1", until="land", checks=False, lease=False)
        _build(url)
        out["analyzed_first"] = _analyzed(url)
        out["night1"] = {t: fetch(url, t, COLUMNS[t]) for t in COLUMNS}
        out["fct_dossier_first"] = _keys(url, "marts", "fct_dossier")
        province.set_records(NIGHT2_RECORDS)
        province.set_clock(NIGHT2)
        run_night(settings, NIGHT2, run_id="steps-2", until="land", checks=False, lease=False)
        log = _build(url)
        out["analyzed_night2"] = _analyzed(url)
        out["inserted"] = _inserted(log, "int_dossiers__steps", "fct_step_monthly", "fct_late_origin_monthly_by_field",
                                    *COUNT_MARTS)
        out["night2"] = {t: fetch(url, t, reference.COLUMNS[t]) for t in (*COLUMNS, *COUNT_MARTS)}
        with psycopg.connect(url) as conn:  # an upgrade: steps without their field, the marts' builds forgotten
            conn.execute("ALTER TABLE intermediate.int_dossiers__steps DROP COLUMN field_code")
            for mart in ("fct_step_monthly", "fct_step_monthly_by_field"):  # the marts as they were: with a stamp
                conn.execute(f"ALTER TABLE marts.{mart} ADD source_changed_at timestamptz NOT NULL DEFAULT now()")
            conn.execute("DELETE FROM intermediate.step_month_builds")
            conn.execute("DELETE FROM intermediate.dossier_fact_builds")
        log = _build(url)
        out["forgotten"] = {t: fetch(url, t, reference.COLUMNS[t]) for t in (*COLUMNS, *COUNT_MARTS)}
        out["inserted_forgotten_counts"] = _inserted(log, *COUNT_MARTS)
        out["indexes_upgraded"] = _indexes(url, "intermediate", "int_dossiers__steps")
        with psycopg.connect(url) as conn:
            out["stamp_upgraded"] = conn.execute(
                "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'marts' "
                "AND table_name LIKE 'fct_step_monthly%%' AND column_name = 'source_changed_at'").fetchone()[0]
            out["not_null_upgraded"] = {c for (c,) in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = 'intermediate.int_dossiers__steps'::regclass "
                "AND attnotnull")}
        out["inserted_forgotten"] = int(re.search(r"fct_step_monthly \.+ \[\S*INSERT 0 (\d+)", log).group(1))
        out["inserted_forgotten_late"] = _inserted(log, "fct_late_origin_monthly_by_field")
        log = _build(url)  # nothing changed since: nothing rebuilt
        out["unchanged"] = {t: fetch(url, t, reference.COLUMNS[t]) for t in (*COLUMNS, *COUNT_MARTS)}
        out["inserted_unchanged"] = int(re.search(r"fct_step_monthly \.+ \[\S*INSERT 0 (\d+)", log).group(1))
        out["inserted_unchanged_late"] = _inserted(log, "fct_late_origin_monthly_by_field")
        out["inserted_unchanged_counts"] = _inserted(log, *COUNT_MARTS)
        with psycopg.connect(url) as conn:  # every mart has read the log: the next fct_dossier build trimmed it
            [(out["log_rows_unchanged"],)] = conn.execute("SELECT count(*) FROM intermediate.dossier_fact_changes")
            [(first_last, second_first)] = conn.execute(
                "SELECT max(changed_at) FILTER (WHERE NOT dossier_id = ANY(%(keys)s)),"
                " min(changed_at) FILTER (WHERE dossier_id = ANY(%(keys)s)) FROM raw.dossier_current",
                {"keys": sorted(CHANGED)}).fetchall()
        # A build with a look-back reaching into the second night's loads, not the first's: it reads the second
        # night's dossiers again, and only them, even though removing their steps takes the table's newest
        # stamps out (the next newest is the first night's).
        out["lookback_gap_s"] = (second_first - first_last).total_seconds()
        log = _build(url, lookback_minutes=out["lookback_gap_s"] / 2 / 60)
        out["inserted_lookback"] = _inserted(log, "int_dossiers__steps", "fct_late_origin_monthly_by_field")
        out["lookback"] = {t: fetch(url, t, reference.COLUMNS[t]) for t in COLUMNS}
        with psycopg.connect(url) as conn:  # a correction by hand is logged too: the next build counts it
            conn.execute("DELETE FROM marts.fct_dossier WHERE dossier_id = %s", (HAND_DELETED,))
        _build(url)
        out["corrected"] = {t: fetch(url, t, reference.COLUMNS[t]) for t in COUNT_MARTS}
        _build(url, "--full-refresh")
        out["analyzed_full"] = _analyzed(url)
        out["full"] = {t: fetch(url, t, reference.COLUMNS[t]) for t in (*COLUMNS, *COUNT_MARTS)}
        out["indexes_full"] = _indexes(url, "intermediate", "int_dossiers__steps")
        out["fct_dossier_full"] = _keys(url, "marts", "fct_dossier")
        with psycopg.connect(url) as conn:
            try:
                conn.execute("INSERT INTO marts.fct_dossier SELECT * FROM marts.fct_dossier LIMIT 1")
            except psycopg.errors.UniqueViolation as exc:
                out["fct_dossier_duplicate"] = exc.diag.constraint_name
    yield out


@pytest.mark.parametrize("table", list(COLUMNS))
@pytest.mark.parametrize(("build", "records"), [("night1", NIGHT1_RECORDS), ("night2", NIGHT2_RECORDS),
                                                ("forgotten", NIGHT2_RECORDS), ("unchanged", NIGHT2_RECORDS),
                                                ("full", NIGHT2_RECORDS)])
def test_the_step_marts_match_the_reference(built, build, records, table):
    expected = compute_steps(records)[table]
    assert expected
    compare(table, built[build][table], expected, KEYS[table])


def test_late_origins_by_hand(built):
    rows = {(r["month"], r["unit_code"], r["office"]): r["late_dossiers"]
            for r in built["night1"]["fct_late_origin_monthly"]}
    assert rows == {
        (MARCH, D1, ENVIRONMENT): 3,  # 2 (tie: the first in the list), 8 (the only late step), 16
        (MARCH, D1, REGISTRY): 2,  # 3 (BuocXuLy 2 before 3, though later in the list), 15
        (MARCH, D1, LEAD): 1,  # 17
        (MARCH, D1, NOT_RECORDED): 4,  # 4 (no late step), 5, 6, 7 (no steps)
        (MARCH, D1, NOT_NAMED): 1,  # 9
        (APRIL, UNKNOWN, REGISTRY): 1,  # 12
        (APRIL, None, NOT_NAMED): 1,  # 13
        (MARCH, D2, DESK): 1,  # 23
        (MARCH, D2, NOT_RECORDED): 1,  # 24
        (JANUARY, D2, DESK): 1,  # 25
    }
    rows = {(r["month"], r["unit_code"], r["office"]): r["late_dossiers"]
            for r in built["night2"]["fct_late_origin_monthly"]}
    assert rows[(MARCH, D1, NOT_RECORDED)] == 6  # + 15 (lost its steps), 17 (its late step's time is invalid)
    assert rows[(MARCH, D1, ENVIRONMENT)] == 2 and (MARCH, D1, LEAD) not in rows  # 16 deleted, 17 above
    assert rows[(APRIL, D1, REGISTRY)] == 1  # 20, new


def test_late_origins_and_steps_by_field_by_hand(built):
    """The dossier's own field splits the rows: D2's late dossiers of March are 23 (civil status, the desk) and
    24 (no field, no late step); every D1 dossier is a land one. 23's field changes on the second night, and
    nothing else of it: its rows move to the new field."""
    rows = {(r["unit_code"], r["field_code"], r["office"]): r["late_dossiers"]
            for r in built["night1"]["fct_late_origin_monthly_by_field"] if r["month"] == MARCH}
    assert {k: n for k, n in rows.items() if k[0] == D2} == {(D2, "HO_TICH", DESK): 1, (D2, None, NOT_RECORDED): 1}
    assert {field for unit, field, _ in rows if unit == D1} == {"DAT_DAI"}
    steps = {(r["unit_code"], r["field_code"], r["office"]): (r["steps"], r["late_steps"])
             for r in built["night1"]["fct_step_monthly_by_field"] if r["month"] == MARCH}
    assert steps[(D2, "HO_TICH", DESK)] == (1, 1) and steps[(D2, None, DESK)] == (1, 0)
    assert steps[(D2, "DAT_DAI", DESK)] == (1, 0)  # 18's
    night2 = {(r["unit_code"], r["field_code"], r["office"]) for r in built["night2"]["fct_step_monthly_by_field"]
              if r["month"] == MARCH}
    assert (D2, "CHUNG_THUC", ENVIRONMENT) in night2 and (D2, "HO_TICH", ENVIRONMENT) not in night2
    origins = {(r["unit_code"], r["field_code"], r["office"])
               for r in built["night2"]["fct_late_origin_monthly_by_field"] if r["month"] == MARCH}
    assert (D2, "CHUNG_THUC", DESK) in origins and (D2, "HO_TICH", DESK) not in origins


def test_step_figures_by_hand(built):
    rows = {(r["month"], r["unit_code"], r["office"]): r for r in built["night1"]["fct_step_monthly"]}
    desk = rows[(MARCH, D1, DESK)]
    # D1's desk steps in March: dossiers 1, 2, 3, 4, 10, 14, 15, 17, 19 (12's and 13's are another unit's and
    # no unit's, 18's D2's). Durations: 1 h 30 (1), 57 h (4: 1 March 08:00 to 3 March 17:00, exactly at its
    # legal end, on time), 1 h for the six others; 10's has none. Sorted, eight values: the median is 1, the
    # 90th percentile at position 0.9 × 7 = 6.3 is 1.5 + 0.3 × (57 − 1.5).
    assert (desk["steps"], desk["late_steps"]) == (9, 1)  # dossier 10's, a second late
    assert norm(desk["median_hours"]) == 1.0 and norm(desk["p90_hours"]) == pytest.approx(1.5 + 0.3 * 55.5)
    assert rows[(MARCH, D2, REGISTRY)]["steps"] == 1
    night2 = {(r["month"], r["unit_code"], r["office"]) for r in built["night2"]["fct_step_monthly"]}
    assert (MARCH, D2, REGISTRY) not in night2 and (APRIL, D1, ENVIRONMENT) in night2


def test_the_second_night_decodes_only_the_changed_dossiers_and_recomputes_only_their_months(built):
    changed = [r for r in NIGHT2_CHANGES if not r.get("DaXoa")]
    steps = compute_steps(changed)["fct_step_monthly"]
    assert built["inserted"]["int_dossiers__steps"] == sum(r["steps"] for r in steps) < sum(
        r["steps"] for r in compute_steps(NIGHT2_RECORDS)["fct_step_monthly"]) / 2
    # March and April changed, February lost its only steps; January's row stays as the first night built it:
    # its only dossier came in a new version tonight, but its steps did not change.
    months = compute_steps(NIGHT2_RECORDS)["fct_step_monthly"]
    assert built["inserted"]["fct_step_monthly"] == sum(r["month"] in (MARCH, APRIL) for r in months)
    assert {r["month"] for r in built["night1"]["fct_step_monthly"]} == {JANUARY, FEBRUARY, MARCH, APRIL}
    assert {r["month"] for r in built["night2"]["fct_step_monthly"]} == {JANUARY, MARCH, APRIL}
    # After an upgrade (steps without their field, which the next build adds; the marts' builds forgotten, as
    # when int_dossiers__steps is rebuilt whole) a mart rebuilds every month; with nothing changed since, none.
    assert built["inserted_forgotten"] == len(months) and built["inserted_unchanged"] == 0
    # The upgraded table (rewritten with the field) has its indexes and constraints again, and so has the
    # table a full refresh builds anew.
    assert built["indexes_upgraded"] == built["indexes_full"] == {
        "(dossier_id, \"position\")", "(source_changed_at)", "(month)", "(dossier_id) WHERE is_first_late"}
    assert {"dossier_id", "position", "office", "month", "is_first_late"} <= built["not_null_upgraded"]
    # fct_dossier's primary key, added after a first build's insert and after a full refresh's (whose former
    # table still held the key's name while the post-hook ran), and its indexes, the same both times.
    assert built["fct_dossier_first"] == built["fct_dossier_full"]
    indexes, constraints = built["fct_dossier_full"]
    assert constraints == {("fct_dossier_pkey", "PRIMARY KEY (dossier_id)")}
    assert indexes == {"(dossier_id)", "(source_changed_at)", "(resolved_month) WHERE (timeliness = 'late'::text)",
                       "(unit_code, due_at) WHERE is_in_processing", "(procedure_code) WHERE is_received"}
    assert built["fct_dossier_duplicate"] == "fct_dossier_pkey"
    # The step marts built with their newest step's stamp lost it: it changed with versions whose steps did not.
    assert built["stamp_upgraded"] == 0


def test_a_table_built_anew_has_its_statistics_before_the_build_ends(built):
    """A first build and a full refresh analyse every table they make (the post-hook analyze_when_new), so the
    next night is not planned without statistics; an incremental night leaves an analysed table to autovacuum,
    while a table materialisation, built anew every night, is analysed again."""
    first, night2, full = built["analyzed_first"], built["analyzed_night2"], built["analyzed_full"]
    assert all(first.values()), [t for t, at in first.items() if at is None]
    tables = {("marts", "fct_late_origin_monthly")}  # materialized='table': a new table each build
    for t in ANALYZED:
        if t in tables:
            assert night2[t] > first[t], t
        else:
            assert night2[t] == first[t], f"{t}: an incremental night analysed it again"
        assert full[t] > night2[t], f"{t}: the full refresh's new table was not analysed"


def test_a_look_back_re_reads_the_last_night_not_the_one_before(built):
    """With a look-back that reaches into the last night's loads but not the night before's, a build with
    nothing new re-reads the last night's dossiers (metrics.md's steps, only theirs) and changes nothing:
    the pre-hook's removal of their steps, the newest of the table, does not move the cursor back a night."""
    assert built["lookback_gap_s"] > 1  # the two nights' loads apart, so the look-back can fall between them
    changed = [r for r in NIGHT2_CHANGES if not r.get("DaXoa")]
    assert built["inserted_lookback"]["int_dossiers__steps"] == sum(
        r["steps"] for r in compute_steps(changed)["fct_step_monthly"])
    # fct_dossier re-reads them too, so the late origins' months they are in are rebuilt again
    assert built["inserted_lookback"]["fct_late_origin_monthly_by_field"] == built["inserted"][
        "fct_late_origin_monthly_by_field"]
    for table in COLUMNS:
        compare(table, built["lookback"][table], compute_steps(NIGHT2_RECORDS)[table], KEYS[table])


def test_a_night_rebuilds_the_late_origins_of_the_months_its_late_dossiers_left_or_entered(built):
    """fct_late_origin_monthly_by_field rebuilds the resolution months of the changed dossiers that were late
    before the night or are after it (its rows match the definitions after every build, above); every month
    after its builds were forgotten, none after a build with nothing new."""
    def late_months(records: list[dict]) -> set[date]:
        return {f["finished_at"].date().replace(day=1) for f in reference.fct_dossier_rows(records, PROCEDURES)
                if f["dossier_id"] in CHANGED and f["timeliness"] == "late"}

    rows = compute_steps(NIGHT2_RECORDS)["fct_late_origin_monthly_by_field"]
    months = late_months(NIGHT1_RECORDS) | late_months(NIGHT2_RECORDS)
    assert 0 < built["inserted"]["fct_late_origin_monthly_by_field"] == sum(r["month"] in months for r in rows) < len(
        rows)
    assert built["inserted_forgotten_late"]["fct_late_origin_monthly_by_field"] == len(rows)
    assert built["inserted_unchanged_late"]["fct_late_origin_monthly_by_field"] == 0


def _count_marts(records: list[dict]) -> dict[str, list[dict]]:
    return reference.compute_marts(records, UNITS, PROCEDURES, [], {}, NIGHT2)


def _groups(facts: list[dict], mart: str) -> set[tuple]:
    """The groups of ``mart`` the fct_dossier rows ``facts`` count in (metrics.md), read off the definitions."""
    groups = set()
    for f in facts:
        if mart == "fct_timeliness_monthly" and f["is_resolved"]:
            groups.add((f["finished_at"].date().replace(day=1), f["unit_code"], f["field_code"]))
        if mart == "fct_online_monthly" and f["is_received"]:
            groups.add((f["received_at"].date().replace(day=1), f["unit_code"]))
        if mart == "fct_digitisation_monthly" and f["is_paper_intake"]:
            groups.add((f["received_at"].date().replace(day=1), f["unit_code"]))
        if mart == "fct_digitisation_monthly" and f["result_digitised"] is not None:
            groups.add((f["finished_at"].date().replace(day=1), f["unit_code"]))
    return groups


@pytest.mark.parametrize("table", COUNT_MARTS)
@pytest.mark.parametrize(("build", "records"), [
    ("night2", NIGHT2_RECORDS), ("forgotten", NIGHT2_RECORDS), ("unchanged", NIGHT2_RECORDS),
    ("corrected", [r for r in NIGHT2_RECORDS if r["MaHoSo"] != HAND_DELETED]), ("full", NIGHT2_RECORDS)])
def test_the_count_marts_kept_from_the_change_log_match_the_reference(built, build, records, table):
    """fct_timeliness_monthly, fct_online_monthly and fct_digitisation_monthly are kept from fct_dossier's
    change log: after a night of changes (a unit and a field changed, deletions, a new month), after their
    builds were forgotten, after a build with nothing new, after a row taken out of fct_dossier by hand, and
    after a full rebuild, the same rows as the definitions give."""
    expected = _count_marts(records)[table]
    assert expected
    compare(table, built[build][table], expected, reference.KEYS[table])


def test_a_night_rewrites_only_the_groups_its_dossiers_touch(built):
    """The second night writes back the groups of the changed dossiers' old and new rows that still hold a
    dossier — not the groups no changed dossier is in (the unknown unit's, the dossier without a unit) —;
    forgotten builds count every group again, a build with nothing new none, and the log is emptied once every
    mart has read it."""
    before = reference.fct_dossier_rows(NIGHT1_RECORDS, PROCEDURES)
    after = reference.fct_dossier_rows(NIGHT2_RECORDS, PROCEDURES)
    expected = _count_marts(NIGHT2_RECORDS)
    for mart in COUNT_MARTS:
        touched = _groups([f for f in before + after if f["dossier_id"] in CHANGED], mart)
        left = {tuple(r[k] for k in reference.KEYS[mart]) for r in expected[mart]}
        assert built["inserted"][mart] == len(touched & left) < len(left), mart
        assert built["inserted_forgotten_counts"][mart] == len(left), mart
        assert built["inserted_unchanged_counts"][mart] == 0, mart
    assert built["log_rows_unchanged"] == 0
