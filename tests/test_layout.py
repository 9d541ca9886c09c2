"""The flow is in the tree: the later stages never reach back into ``ingestion/`` (source → ``raw`` only),
and the marts read the sources through staging (fast, static: the files are read, nothing runs)."""

from __future__ import annotations

import ast
import re

import pytest

from tests.support.paths import PROJECT_ROOT

LATER_STAGES = ("expectations", "publication", "bi")
DBT = PROJECT_ROOT / "dbt_project"
SOURCE_CALL = re.compile(r"\bsource\(")


def ingestion_imports(source: str) -> list[str]:
    """The modules of ``ingestion`` a Python source imports, at the top or inside a function."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
    return sorted(m for m in found if m.split(".")[0] == "ingestion")


@pytest.mark.parametrize("stage", LATER_STAGES)
def test_the_later_stages_never_import_from_ingestion(stage):
    offenders = {}
    for path in sorted((PROJECT_ROOT / stage).rglob("*.py")):
        if imports := ingestion_imports(path.read_text()):
            offenders[str(path.relative_to(PROJECT_ROOT))] = imports
    assert offenders == {}, "what the stages share lives in pipeline/"


def test_the_import_guard_sees_lazy_and_plain_imports():
    assert ingestion_imports("def f():\n    from ingestion.loads import pull_dossiers\n") == ["ingestion.loads"]
    assert ingestion_imports("import ingestion.client as c\nimport pipeline\n") == ["ingestion.client"]


def test_only_staging_models_call_source():
    """Every source has its staging model; intermediate, dq and mart models and snapshots read staging through
    ref(), so a source's quirks are handled once."""
    callers = []
    for folder in ("models", "snapshots"):
        for path in sorted((DBT / folder).rglob("*")):
            relative = path.relative_to(DBT).as_posix()
            if path.suffix in (".sql", ".yml") and SOURCE_CALL.search(path.read_text()) \
                    and not relative.startswith("models/staging/"):
                callers.append(relative)
    assert callers == []
    assert any(SOURCE_CALL.search(p.read_text()) for p in (DBT / "models" / "staging").glob("*.sql"))
