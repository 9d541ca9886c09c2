"""Two validations never rewrite Great Expectations' project folder at once (the nightly DAG runs the
dossier and the workbook checks side by side under a scheduler)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from expectations.validate import project_lock
from pipeline.settings import Settings


def test_a_second_validation_waits_for_the_first(tmp_path: Path):
    settings = Settings.from_env({"GX_PROJECT_DIR": str(tmp_path / "gx")}, warehouse_url="postgresql://u:p@h/db")
    events: list[str] = []
    first_in = threading.Event()

    def first():
        with project_lock(settings):
            events.append("first in")
            first_in.set()
            time.sleep(0.5)
            events.append("first out")

    def second():
        first_in.wait()
        with project_lock(settings):
            events.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert events == ["first in", "first out", "second in"]
