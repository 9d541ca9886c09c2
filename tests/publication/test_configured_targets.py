"""The pages' copy follows the on-time target and the ranking's minimum when they are configured
(``PUBLICATION_ON_TIME_TARGET``, ``PUBLICATION_MIN_RESOLVED``): they are read when the publication's modules
are imported, so the pages are rendered in a process of its own, from inline figures (no warehouse)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from html.parser import HTMLParser

from tests.support.paths import PROJECT_ROOT

RENDER = """
import json
from datetime import date, datetime
from publication import monthly, report
fig = {"as_of": date(2023, 7, 1), "month": date(2023, 6, 1), "target": 0.9, "province_name": "Tỉnh",
       "generated_at": datetime(2023, 7, 1, 1, 5), "timeliness": None, "ranking": {}, "online": [],
       "digitisation": [],
       "pending_overdue": {"as_of_date": None, "in_processing": 0, "pending_overdue": 0, "overdue_share": None,
                           "by_level": [], "units": []},
       "delegation": {"as_of_date": None, "total": None, "by_plan": [], "by_type": [], "by_receiving_unit": []},
       "disbursement": {"report_date": None, "plan_year": None, "plan_years": [], "total": None, "by_source": [],
                        "by_investor": []},
       "dq": {"validated_at": None, "open": 0, "by_rule": {}, "by_unit": []}}
print(json.dumps({"report": report.render(fig), "below": monthly.BELOW, "minimum": monthly.MIN_RESOLVED}))
"""


class Text(HTMLParser):
    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.text = ""
        self.feed(html)

    def handle_data(self, data):
        self.text += data


def test_the_copy_follows_the_configured_target_and_minimum():
    env = {**os.environ, "PUBLICATION_ON_TIME_TARGET": "0.9", "PUBLICATION_MIN_RESOLVED": "5",
           "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run([sys.executable, "-c", RENDER], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=120, check=True)
    out = json.loads(done.stdout)
    text = Text(out["report"]).text
    assert "Đơn vị có tỷ lệ giải quyết đúng hạn dưới 90% (tháng 06/2023)" in text
    assert "đơn vị có từ 5 hồ sơ đã giải quyết trở lên" in text
    assert "Cấp huyện (UBND cấp huyện): 0/0 đơn vị dưới 90%" in text
    assert "Không có đơn vị nào đủ 5 hồ sơ đã giải quyết trong tháng." in text
    assert "95%" not in text and "10 hồ sơ" not in text
    assert (out["below"], out["minimum"]) == ("Dưới 90%", 5)
