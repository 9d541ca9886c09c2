"""The scripts the compose stack runs: the image's entrypoint, and the metadata server's init script (Superset's
database; Superset itself, its setup script and the import run for real in tests/bi/)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from urllib.parse import unquote, urlsplit

import psycopg

from tests.support.paths import PROJECT_ROOT as ROOT
from tests.support.postgres import throwaway_warehouse
from warehouse.pgbin import find_pg_bin

DEPLOY = ROOT / "deploy"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"deploy_{name}", DEPLOY / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_entrypoint(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run([sys.executable, str(DEPLOY / "entrypoint.py"), *args], env={**base, **env},
                          capture_output=True, text=True, timeout=60)


# --- deploy/entrypoint.py ----------------------------------------------------------------------------

def test_entrypoint_gives_the_command_the_project_environment():
    proc = run_entrypoint(sys.executable, "-c", "import json, os; print(json.dumps(dict(os.environ)))",
                          WAREHOUSE_WRITER_URL="postgresql://pipeline:s3cret@warehouse:5432/warehouse",
                          AIRFLOW__CORE__EXECUTOR="CeleryExecutor", AIRFLOW_HOME="/opt/airflow")
    assert proc.returncode == 0, proc.stderr
    env = json.loads(proc.stdout)
    # dbt's connection, derived from the writer URL as on one machine (ops.airflow.airflow_env)
    assert (env["DBT_HOST"], env["DBT_PORT"], env["DBT_USER"], env["DBT_PASSWORD"], env["DBT_DBNAME"]) == \
        ("warehouse", "5432", "pipeline", "s3cret", "warehouse")
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(ROOT / "dags")
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT)
    # what the container sets wins over the project's defaults
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"] == "/opt/airflow/logs"


def test_entrypoint_refuses_the_env_examples_placeholders():
    proc = run_entrypoint("true", WAREHOUSE_WRITER_URL="postgresql://pipeline:change-me@warehouse:5432/warehouse",
                          AIRFLOW__CORE__FERNET_KEY="change-me", BI_READER_PASSWORD="a-real-one")
    assert proc.returncode == load("entrypoint").EXIT_CONFIG
    assert "AIRFLOW__CORE__FERNET_KEY, WAREHOUSE_WRITER_URL" in proc.stderr
    assert "a-real-one" not in proc.stderr


def test_entrypoint_without_a_command_prints_its_usage():
    proc = run_entrypoint()
    assert proc.returncode == 2 and "entrypoint" in proc.stderr


# --- deploy/metadata-db/init-superset.sh ------------------------------------------------------------

def test_the_metadata_servers_init_script_creates_supersets_database(tmp_path):
    """Run as the postgres image runs it (/docker-entrypoint-initdb.d, POSTGRES_USER and POSTGRES_DB set),
    against a real throw-away server: then Superset's role logs in to its own database with its password."""
    with throwaway_warehouse(tmp_path) as wh:
        admin = urlsplit(wh.urls["admin"])
        env = {"PATH": f"{find_pg_bin()}{os.pathsep}{os.environ['PATH']}", "PGHOST": admin.hostname,
               "PGPORT": str(admin.port), "PGPASSWORD": unquote(admin.password),
               "POSTGRES_USER": unquote(admin.username), "POSTGRES_DB": admin.path.lstrip("/"),
               "SUPERSET_DB_PASSWORD": "superset-pw-1"}
        proc = subprocess.run(["sh", str(DEPLOY / "metadata-db" / "init-superset.sh")], env=env, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert "superset-pw-1" not in proc.stdout + proc.stderr
        url = f"postgresql://superset:superset-pw-1@{admin.hostname}:{admin.port}/superset"
        with psycopg.connect(url) as conn:
            owner = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'superset'")
            assert owner.fetchone() == ("superset",)
            conn.execute("CREATE TABLE ab_user (id int)")  # what `superset db upgrade` needs: its own schema
