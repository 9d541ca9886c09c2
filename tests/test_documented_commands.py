"""Every command the READMEs and the docs document exists and answers ``--help``, and every ``make`` target they
name is a target of the Makefile. (What the commands do is tested where their module is; this guards the
paths a newcomer types.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.paths import PROJECT_ROOT

DOCS = [PROJECT_ROOT / "README.md", *sorted(PROJECT_ROOT.glob("*/README.md")), *sorted(PROJECT_ROOT.glob("docs/*.md"))]
MODULE_COMMAND = re.compile(r"python -m ([a-z_][a-z_.]*)((?: [a-z][a-z-]+)?)")
SCRIPT_COMMAND = re.compile(r"python (benchmarks/[a-z_]+\.py)")
MAKE_TARGET = re.compile(r"`make ([a-z][a-z-]+)|^make ([a-z][a-z-]+)", re.M)


def documented_commands() -> list[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()
    for doc in DOCS:
        for module, sub in MODULE_COMMAND.findall(doc.read_text()):
            found.add((module, *sub.split()))
    return sorted(found)


def documented_scripts() -> list[str]:
    return sorted({script for doc in DOCS for script in SCRIPT_COMMAND.findall(doc.read_text())})


def documented_targets() -> list[str]:
    found = set()
    for doc in DOCS:
        for a, b in MAKE_TARGET.findall(doc.read_text()):
            found.add(a or b)
    return sorted(found)


def _help(command: tuple[str, ...]) -> tuple[tuple[str, ...], int, str]:
    proc = subprocess.run([sys.executable, "-m", *command, "--help"], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"})
    return command, proc.returncode, (proc.stdout + proc.stderr)[-800:]


def test_the_docs_document_commands_at_all():
    commands = documented_commands()
    assert ("ingestion", "repull") in commands and ("ops.airflow", "test-dag") in commands
    assert {"run", "test", "airflow"} <= set(documented_targets())


def test_every_documented_command_answers_help():
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(_help, documented_commands()))
    failed = {" ".join(c): out for c, code, out in results if code != 0}
    assert failed == {}


def test_every_documented_benchmark_script_answers_help():
    scripts = documented_scripts()
    assert "benchmarks/backfill.py" in scripts
    failed = {}
    for script in scripts:
        proc = subprocess.run([sys.executable, script, "--help"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                              timeout=120)
        if proc.returncode != 0 or "usage:" not in proc.stdout:
            failed[script] = (proc.stdout + proc.stderr)[-800:]
    assert failed == {}


@pytest.mark.parametrize("target", documented_targets())
def test_every_documented_make_target_exists(target):
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"`make {target}` is documented but not a target"


def test_the_manifest_command_works_in_a_fresh_clone_where_dbt_manifest_path_says(tmp_path):
    """`python -m ops.dbt manifest` as a newcomer types it before any warehouse exists: dbt parse needs none,
    and the manifest lands where DBT_MANIFEST_PATH says (the compose image builds it that way)."""
    target = tmp_path / "manifest" / "manifest.json"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("WAREHOUSE_", "DBT_", "BI_READER_", "PUBLICATION_"))}
    env.update(WAREHOUSE_DATA_DIR=str(tmp_path / "no-warehouse" / "pgdata"), DBT_MANIFEST_PATH=str(target),
               DBT_TARGET_PATH=str(tmp_path / "target"), DBT_LOG_PATH=str(tmp_path / "logs"))
    proc = subprocess.run([sys.executable, "-m", "ops.dbt", "manifest"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout.strip() == str(target)
    manifest = json.loads(target.read_text())
    assert "model.cchc.rpt_monthly_ranking" in manifest["nodes"]
    assert not (tmp_path / "no-warehouse").exists(), "nothing of a warehouse was made"
