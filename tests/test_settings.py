"""One settings module: the README's variable tables and ``pipeline.settings.VARIABLES`` say the same, and no
module but ``pipeline/settings.py`` reads a documented variable from the environment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.settings import VARIABLES, DagSettings, Settings, dbt_vars, env_value, variable

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NAME = re.compile(r"`([A-Z][A-Z0-9_]*(?:<[A-Z]+>)?)`")
CODE_DIRS = ("bi", "dags", "deploy", "expectations", "ingestion", "ops", "pipeline", "publication", "simulator",
             "warehouse", "benchmarks")


def readme_tables() -> dict[str, set[str]]:
    """The variables of the README's "Configuration" tables, by section (### heading)."""
    text = (PROJECT_ROOT / "README.md").read_text()
    part = text[text.index("## Configuration"):]
    part = part[:part.index("\n## ", 3)]
    sections: dict[str, set[str]] = {}
    current = None
    for line in part.splitlines():
        if line.startswith("### "):
            current = line[4:].strip()
            sections[current] = set()
        elif line.startswith("| `") and current:
            sections[current] |= set(NAME.findall(line.split("|")[1]))
    return sections


def test_the_readme_tables_and_the_settings_declare_the_same_variables():
    documented = readme_tables()
    declared: dict[str, set[str]] = {}
    for v in VARIABLES.values():
        declared.setdefault(v.section, set()).add(v.name)
    assert documented == declared


def _reads(source: str) -> set[str]:
    """Names read from a mapping or the environment by literal: ``.get("X"``, ``["X"]`` (not assigned),
    ``getenv("X"``."""
    found = set(re.findall(r"""(?:\.get|getenv)\(\s*["']([A-Z][A-Z0-9_]+)["']""", source))
    found |= set(re.findall(r"""\[\s*["']([A-Z][A-Z0-9_]+)["']\s*\](?!\s*=[^=])""", source))
    found |= set(re.findall(r"""startswith\(\s*["']([A-Z][A-Z0-9_]+_)["']""", source))
    return found


def test_no_module_but_the_settings_reads_a_documented_variable():
    documented = {v.name for v in VARIABLES.values()}
    families = [v.name.split("<", 1)[0] for v in VARIABLES.values() if "<" in v.name]
    offenders = {}
    for folder in CODE_DIRS:
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
            if path == PROJECT_ROOT / "pipeline" / "settings.py":
                continue
            names = {n for n in _reads(path.read_text())
                     if n in documented or any(n.startswith(f) for f in families)}
            if names:
                offenders[str(path.relative_to(PROJECT_ROOT))] = sorted(names)
    assert offenders == {}, "read these through pipeline.settings.env_value (or Settings)"


def test_env_value_reads_only_documented_variables_and_empty_is_unset():
    assert env_value("HISTORY_START", {"HISTORY_START": ""}) is None
    assert env_value("HISTORY_START", {"HISTORY_START": "2024-01-01"}) == "2024-01-01"
    assert variable("SIM_DEFECT_INC02").name == "SIM_DEFECT_<RULE>"
    with pytest.raises(KeyError, match="not a documented variable"):
        env_value("SOMETHING_ELSE", {})


def test_the_ranking_target_and_minimum_reach_dbt_as_vars():
    env = {"PUBLICATION_ON_TIME_TARGET": "0.9", "PUBLICATION_MIN_RESOLVED": "25"}
    assert dbt_vars(env, as_of="2023-10-01T01:00:00") == {"on_time_target": 0.9, "min_resolved": 25,
                                                          "as_of": "2023-10-01T01:00:00"}
    settings = Settings.from_env(env, warehouse_url="postgresql://u:p@h/db")
    assert settings.dbt_vars() == {"on_time_target": 0.9, "min_resolved": 25}
    assert dbt_vars({}) == {"on_time_target": 0.95, "min_resolved": 10}
    ranking = (PROJECT_ROOT / "dbt_project" / "models" / "marts" / "rpt_monthly_ranking.sql").read_text()
    assert "var('on_time_target'" in ranking and "var('min_resolved'" in ranking


def test_bad_values_are_refused_with_the_variable_named():
    with pytest.raises(ValueError, match="INGEST_PARTITION"):
        Settings.from_env({"INGEST_PARTITION": "county"}, warehouse_url="postgresql://u:p@h/db")
    with pytest.raises(ValueError, match="PUBLICATION_ON_TIME_TARGET"):
        Settings.from_env({"PUBLICATION_ON_TIME_TARGET": "95"}, warehouse_url="postgresql://u:p@h/db")
    with pytest.raises(ValueError, match="DBT_TASK_GRAIN"):
        DagSettings.from_env({"DBT_TASK_GRAIN": "model"})
