"""One settings module: the documents' variable tables and ``pipeline.settings.VARIABLES`` say the same, every
documented variable is read by a field of a settings object, and no module but ``pipeline/settings.py`` reads
a documented variable from the environment (the code running in Superset's own Python gets its values from
the environment its callers prepare, and reads nothing else)."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import fields
from datetime import date

import pytest
import yaml

from ops.dbt import DBT_PROJECT_DIR, PARSE_ONLY_URL, dbt_env, dbt_executable, with_settings_vars
from pipeline import settings as S
from pipeline.settings import VARIABLES, DagSettings, Settings, SettingsError, dbt_vars, env_value, variable
from tests.support.paths import PROJECT_ROOT

NAME = re.compile(r"`([A-Z][A-Z0-9_]*(?:<[A-Z]+>)?)`")
CODE_DIRS = ("bi", "dags", "deploy", "expectations", "ingestion", "ops", "pipeline", "publication", "simulator",
             "warehouse", "benchmarks")
DOCS = [PROJECT_ROOT / "README.md", *sorted(PROJECT_ROOT.glob("*/README.md")), *sorted(PROJECT_ROOT.glob("docs/*.md"))]
SETTINGS_CLASSES = (S.Settings, S.AlertSettings, S.PublicationTargets, S.DagSettings, S.WarehouseSettings,
                    S.RunSettings, S.SimulatorSettings, S.CelerySettings, S.FrontDoorSettings, S.SupersetSettings)
# Read by others than a settings field: Airflow reads its connection; SimulatorSettings.from_env the family.
READ_ELSEWHERE = {"AIRFLOW_CONN_PROCEDURE_API", "SIM_DEFECT_<RULE>"}
# Upper-case names the documents show that are nobody's variable.
NOT_VARIABLES = {"PROJECT_ROOT": "a constant of pipeline.settings", "SSL_CERT_FILE": "OpenSSL's",
                 "PHAN_CAP": "a value of the API (delegation kind)", "UY_QUYEN": "a value of the API",
                 "HET_HIEU_LUC": "a value of the API (delegation status)",
                 "DICT_PROVINCE_WARD_NO_DIVIDED": "a table of vietnamadminunits' crosswalk",
                 "DICT_PROVINCE_WARD_DIVIDED": "a table of vietnamadminunits' crosswalk",
                 "DBT_PROFILE": "dbt's --profile, set by ops.dbt", "DBT_TARGET": "dbt's --target, set by ops.dbt"}
# Files run by Superset's own Python (no project module there): they read only what their callers pass.
SUPERSET_SIDE = ("bi/superset_setup.py", "bi/docker/superset_config.py")


def documented() -> set[str]:
    return set(VARIABLES)


def is_documented(name: str) -> bool:
    return name in VARIABLES or any(v.matches(name) for v in VARIABLES.values())


# ------------------------------------------------------------------------------------------ the documents

def variable_tables(path) -> list[tuple[str | None, list[str], str]]:
    """The rows of the variable tables of a document (``| variable … | default | … |``): (its ### section, the
    names in the first cell, the default cell)."""
    rows, section, in_table = [], None, False
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            section = line.lstrip("#").strip() if line.startswith("### ") else None
            in_table = False
        elif line.startswith("| variable"):
            in_table = True
        elif in_table and line.startswith("| `"):
            cells = line.split("|")
            rows.append((section, NAME.findall(cells[1]), cells[2]))
        elif not line.startswith("|"):
            in_table = False
    return rows


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
    declared: dict[str, set[str]] = {}
    for v in VARIABLES.values():
        declared.setdefault(v.section, set()).add(v.name)
    assert readme_tables() == declared


def test_bi_readmes_table_is_the_superset_section():
    names = {n for _, row, _ in variable_tables(PROJECT_ROOT / "bi" / "README.md") for n in row}
    assert names == {v.name for v in VARIABLES.values() if v.section == "Superset"}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_every_variable_table_names_declared_variables_with_their_declared_defaults(doc):
    for _section, names, default_cell in variable_tables(doc):
        for name in names:
            assert is_documented(name), f"{doc.name}: {name} is not declared in pipeline/settings.py VARIABLES"
            declared = variable(name).default
            if declared is not None:
                assert f"`{declared}`" in default_cell, f"{doc.name}: {name}'s default is `{declared}`"


def test_the_documents_name_no_variable_the_settings_do_not_declare():
    """Prose too: an upper-case name in back-quotes is a declared variable, Airflow's configuration or one of
    its connections, a variable of the compose stack's env file, one of dbt's profile (set by ops.dbt), or
    one of a short list of things that are no variables."""
    compose = (PROJECT_ROOT / "docker-compose.yml").read_text() + (PROJECT_ROOT / "deploy" / ".env.example").read_text()
    profile = (PROJECT_ROOT / "dbt_project" / "profiles.yml").read_text()
    unknown = {}
    for doc in DOCS:
        for name in re.findall(r"`([A-Z][A-Z0-9]*_[A-Z0-9_]*(?:<[A-Z]+>)?)[`=]", doc.read_text()):
            if (is_documented(name) or name.startswith(("AIRFLOW__", "AIRFLOW_CONN_")) or name in NOT_VARIABLES
                    or re.search(rf"\b{name}\b", compose) or f"env_var('{name}')" in profile):
                continue
            unknown.setdefault(str(doc.relative_to(PROJECT_ROOT)), set()).add(name)
    assert unknown == {}, "declare these in pipeline/settings.py VARIABLES (and the README's tables)"


# ------------------------------------------------------------------------------------------ the code

def _reads(source: str) -> set[str]:
    """Documented names read from the environment or a mapping of it, by literal: ``.get("X"``, ``getenv("X"``,
    ``["X"]`` (not assigned), ``startswith("X_"``; names built from a documented prefix (``f"SIM_FAULT_{…}"``)."""
    found = set(re.findall(r"""(?:\.get|getenv|pop|setdefault)\(\s*["']([A-Z][A-Z0-9_]+)["']""", source))
    found |= set(re.findall(r"""\[\s*["']([A-Z][A-Z0-9_]+)["']\s*\](?!\s*=[^=])""", source))
    found |= set(re.findall(r"""startswith\(\s*["']([A-Z][A-Z0-9_]+_)["']""", source))
    for prefix in re.findall(r"""f["']([A-Z][A-Z0-9_]*_)\{""", source):
        found |= {v.name for v in VARIABLES.values() if v.name.startswith(prefix)}
    return {n for n in found if is_documented(n) or any(v.name.startswith(n) for v in VARIABLES.values())}


SETTINGS_READERS = re.compile(r"\b(env_value|_family|variable|_given|_field)\(")


def test_no_module_but_the_settings_reads_a_documented_variable():
    offenders = {}
    for folder in CODE_DIRS:
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
            relative = str(path.relative_to(PROJECT_ROOT))
            if relative == "pipeline/settings.py" or relative in SUPERSET_SIDE:
                continue
            source = path.read_text()
            names = _reads(source)
            if SETTINGS_READERS.search(source):
                names.add("(a raw read through pipeline.settings)")
            if names:
                offenders[relative] = sorted(names)
    assert offenders == {}, "take these from a settings object of pipeline.settings (typed fields)"


def test_the_superset_side_reads_only_what_its_callers_pass():
    """``bi/superset_setup.py`` runs in Superset's own Python and imports no project module; the documented
    variables it reads are exactly those ``python -m bi`` passes it (``bi.instance.setup_env``, from the
    settings) and the compose file gives its service."""
    from bi.instance import setup_env

    script = (PROJECT_ROOT / "bi" / "superset_setup.py").read_text()
    assert not re.search(r"^\s*(from|import) (pipeline|bi|ops|warehouse)\b", script, re.M)
    read = _reads(script)
    assert read == set(setup_env("u", "p"))
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    assert read <= set(compose["services"]["superset-init"]["environment"])
    assert _reads((PROJECT_ROOT / "bi" / "docker" / "superset_config.py").read_text()) == set()


def test_every_documented_variable_is_a_field_of_a_settings_object_with_the_declared_default():
    read = set()
    for cls in SETTINGS_CLASSES:
        instance = cls()
        for f in fields(cls):
            name = f.metadata.get("variable")
            if name is None:
                continue
            read.add(name)
            declared = variable(name).default
            if declared is not None and f.name != "credentials_file":
                assert getattr(instance, f.name) == f.metadata["parse"](declared), f"{cls.__name__}.{f.name}"
    assert set(VARIABLES) - read == READ_ELSEWHERE


def test_env_value_reads_only_documented_variables_and_empty_is_unset():
    assert env_value("HISTORY_START", {"HISTORY_START": ""}) is None
    assert env_value("HISTORY_START", {"HISTORY_START": "2024-01-01"}) == "2024-01-01"
    assert variable("SIM_DEFECT_INC02").name == "SIM_DEFECT_<RULE>"
    with pytest.raises(KeyError, match="not a documented variable"):
        env_value("SOMETHING_ELSE", {})


def test_bad_values_are_refused_with_the_variable_named():
    with pytest.raises(ValueError, match="INGEST_PARTITION"):
        Settings.from_env({"INGEST_PARTITION": "county"}, warehouse_url="postgresql://u:p@h/db")
    with pytest.raises(ValueError, match="PUBLICATION_ON_TIME_TARGET"):
        Settings.from_env({"PUBLICATION_ON_TIME_TARGET": "95"}, warehouse_url="postgresql://u:p@h/db")
    with pytest.raises(ValueError, match="DBT_TASK_GRAIN"):
        DagSettings.from_env({"DBT_TASK_GRAIN": "model"})
    for size in ("256", "256mb", "0MB", "256MB; reset all"):  # written into a statement: a size, nothing else
        with pytest.raises(ValueError, match="DBT_FULL_BUILD_WORK_MEM"):
            Settings.from_env({"DBT_FULL_BUILD_WORK_MEM": size}, warehouse_url="postgresql://u:p@h/db")
    with pytest.raises(SettingsError, match="INGEST_WORKERS='many'"):
        Settings.from_env({"INGEST_WORKERS": "many"}, warehouse_url="")
    with pytest.raises(SettingsError) as raised:  # a secret stays out of the message
        S.WarehouseSettings.from_env({"APPLICANT_HASH_KEY": "short-secret"})
    assert "short-secret" not in str(raised.value) and "APPLICANT_HASH_KEY" in str(raised.value)


def test_the_simulators_settings_layer_the_scenario_file_under_the_variables(tmp_path):
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({"seed": 5, "start": "2023-02-01", "scale": 0.5, "fix_share": 0.1,
                                    "defect_rates": {"INC01": 0.2, "INC02": 0.3}}))
    sim = S.SimulatorSettings.from_env({"SIM_SCENARIO": str(scenario), "SIM_SEED": "9", "SIM_DEFECT_INC02": "0.4",
                                        "SIM_FAULTS": "all:0.2", "SIM_FAULT_429": "0.5",
                                        "PROCEDURE_API_TOKEN": "tok"})
    assert (sim.seed, sim.start, sim.end, sim.scale) == (9, date(2023, 2, 1), S.SimulatorSettings.end, 0.5)
    assert sim.defect_rates == {"INC01": 0.2, "INC02": 0.4} and sim.scenario_extra == {"fix_share": 0.1}
    assert (sim.fault_5xx, sim.fault_429, sim.fault_malformed, sim.token) == (0.2, 0.5, 0.0, "tok")


def test_a_night_by_hand_gets_the_readmes_interactive_defaults(tmp_path):
    env = {"SIM_START": "2023-03-01", "REPORTS_DIR": "out"}
    assert S.interactive_defaults(env, simulated=True) == {
        "FINANCE_INBOX": str(PROJECT_ROOT / ".local" / "finance-inbox"), "REPORTS_DIR": str(PROJECT_ROOT / "out"),
        "HISTORY_START": "2023-03-01", "PIPELINE_RETRY_DELAY_SECONDS": S.INTERACTIVE_RETRY_DELAY_SECONDS}
    given = {"HISTORY_START": "2023-01-05", "PIPELINE_RETRY_DELAY_SECONDS": "60", "FINANCE_INBOX": str(tmp_path)}
    assert S.interactive_defaults(given, simulated=True) == {"FINANCE_INBOX": str(tmp_path),
                                                             "REPORTS_DIR": str(PROJECT_ROOT / "reports")}


# ------------------------------------------------------------------------------------------ dbt's vars

def test_the_ranking_target_and_minimum_reach_dbt_as_vars():
    env = {"PUBLICATION_ON_TIME_TARGET": "0.9", "PUBLICATION_MIN_RESOLVED": "25",
           "DBT_INCREMENTAL_LOOKBACK_MINUTES": "0"}
    assert dbt_vars(env, as_of="2023-10-01T01:00:00") == {"on_time_target": 0.9, "min_resolved": 25,
                                                          "incremental_lookback_minutes": 0,
                                                          "full_build_work_mem": "256MB",
                                                          "as_of": "2023-10-01T01:00:00"}
    settings = Settings.from_env({**env, "DBT_FULL_BUILD_WORK_MEM": " 1 GB"}, warehouse_url="postgresql://u:p@h/db")
    assert settings.dbt_vars() == {"on_time_target": 0.9, "min_resolved": 25, "incremental_lookback_minutes": 0,
                                   "full_build_work_mem": "1GB"}
    assert dbt_vars({}) == {"on_time_target": S.PublicationTargets.on_time_target,
                            "min_resolved": S.PublicationTargets.min_resolved,
                            "incremental_lookback_minutes": S.PublicationTargets.incremental_lookback_minutes,
                            "full_build_work_mem": S.PublicationTargets.full_build_work_mem}


def test_the_dbt_models_have_no_default_for_the_settings_vars():
    """The target and the minimum live in the settings only: a model that read them with a default of its own
    would rank against that default wherever the vars were forgotten."""
    used = set()
    for path in (DBT_PROJECT_DIR / "models").rglob("*.sql"):
        text = path.read_text()
        used |= set(re.findall(r"var\(\s*['\"](on_time_target|min_resolved)['\"]\s*\)", text))
        assert not re.search(r"var\(\s*['\"](on_time_target|min_resolved)['\"]\s*,", text), path.name
    assert used == {"on_time_target", "min_resolved"}


def test_every_dbt_command_of_ops_dbt_gets_the_settings_vars_under_its_own():
    env = {"PUBLICATION_ON_TIME_TARGET": "0.9"}
    args = with_settings_vars(["build", "--vars", '{"as_of": "2023-10-01", "min_resolved": 3}', "-s", "x"], env)
    assert args[:3] == ["build", "-s", "x"] and args[3] == "--vars"
    assert json.loads(args[4]) == {"on_time_target": 0.9, "min_resolved": 3, "as_of": "2023-10-01",
                                   "incremental_lookback_minutes": 15, "full_build_work_mem": "256MB"}
    assert json.loads(with_settings_vars(["run", "--vars=as_of: x"], env)[-1])["as_of"] == "x"
    assert json.loads(with_settings_vars(["parse"], {})[-1]) == dbt_vars({})
    assert with_settings_vars(["--version"], env) == ["--version"]
    assert with_settings_vars(["docs", "--help"], env) == ["docs", "--help"]  # a group takes no --vars
    assert with_settings_vars(["docs", "generate"], env)[:3] == ["docs", "generate", "--vars"]


def test_a_dbt_run_without_the_settings_vars_fails_loudly(tmp_path):
    """dbt called without ``ops.dbt`` (and so without the vars) stops at the ranking model."""
    env = {**dbt_env(PARSE_ONLY_URL, {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}),
           "DBT_TARGET_PATH": str(tmp_path / "target"), "DBT_LOG_PATH": str(tmp_path / "logs")}
    proc = subprocess.run([dbt_executable(), "compile", "--select", "rpt_monthly_ranking", "--no-populate-cache"],
                          cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "Required var 'min_resolved' not found" in proc.stdout + proc.stderr
