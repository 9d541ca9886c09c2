"""The publication tests' warehouse: a small simulator scenario and its finance workbooks ingested, staging
and the data-quality stage run (so the marts hold data-quality issues), then the full dbt build — what a
night does, without Airflow.

The busiest units are served (``GET /units``) under names a spreadsheet or a browser would execute
(``HOSTILE_NAMES``): whoever keys the procedure system's catalogue controls them, and every output must
show them as text. The two busiest communes are served without a statistics code (``MaHanhChinh``) and with
one no geography knows (``UNMAPPED_CODES``): the report's map must list them beside it. The independent
reference reads the same served records, so every comparison holds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

from pipeline.night import run_night
from pipeline.settings import Settings
from simulator.__main__ import investors
from simulator.finance import write_workbooks
from simulator.province import Province
from simulator.scenario import Scenario
from tests.support.postgres import throwaway_warehouse
from tests.support.simulator import running_simulator

START, END = date(2023, 1, 1), date(2023, 6, 30)
AS_OF = datetime(2023, 7, 1, 1, 0)
SCENARIO = Scenario(seed=42, start=START, end=END, scale=0.02, clock=AS_OF)
RUN_ID = "night-2023-07-01"
# A formula without a URL: the outputs' own checks rightly refuse any "http(s)://" in a self-contained page.
HOSTILE_NAMES = ('=HYPERLINK("ftp.example.vn","Bấm vào đây")', "+1", "-2", "@SUM(A1)", "<script>alert(1)</script>",
                 'Sở "A" & <b>B</b> `x`')
UNMAPPED_CODES = (None, "99999")  # MaHanhChinh of two communes: none, and one the package does not know


class HostileNamesProvince(Province):
    """The scenario's province whose busiest units (most dossiers) are named ``HOSTILE_NAMES``."""

    def __init__(self, scenario: Scenario):
        super().__init__(scenario)
        counts = Counter(r.get("DonViXuLy") for r in self.iter_all())
        busiest = [code for code, _ in counts.most_common() if code in self.unit_index][:len(HOSTILE_NAMES)]
        self.renamed = dict(zip(busiest, HOSTILE_NAMES, strict=True))
        # For the report's map: the two busiest communes without a statistics code, and with one no geography knows.
        communes = [code for code, _ in counts.most_common() if code in self.unit_index
                    and self.units[self.unit_index[code]].level == 3][:len(UNMAPPED_CODES)]
        self.recoded = dict(zip(communes, UNMAPPED_CODES, strict=True))

    def unit_records(self) -> list[dict]:
        return [{**r, "TenDonVi": self.renamed.get(r["MaDonVi"], r["TenDonVi"]),
                 "MaHanhChinh": self.recoded.get(r["MaDonVi"], r["MaHanhChinh"])} for r in super().unit_records()]


@contextmanager
def built_warehouse(tmp: Path) -> Iterator[dict]:
    """Ingest the scenario and its workbooks, build staging and dq, validate, build everything."""
    inbox = tmp / "inbox"
    finance = write_workbooks(inbox, investors(), START, END, seed=42)
    province = HostileNamesProvince(SCENARIO)
    with throwaway_warehouse(tmp) as wh, running_simulator(province) as sim:
        url = wh.urls["writer"]
        settings = Settings.from_env({"PROCEDURE_API_URL": sim.url, "PROCEDURE_API_TOKEN": sim.token,
                                      "HISTORY_START": START.isoformat(), "FINANCE_INBOX": str(inbox),
                                      "REPORTS_DIR": str(tmp / "reports"), "GX_PROJECT_DIR": str(tmp / "gx")},
                                     warehouse_url=url)
        run_night(settings, AS_OF, run_id=RUN_ID, until="marts")
        yield {"url": url, "bi": wh.urls["bi_reader"], "province": province, "finance": finance,
               "settings": settings, "tmp": tmp}
