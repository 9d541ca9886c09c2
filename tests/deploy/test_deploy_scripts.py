"""The scripts the compose stack runs: the image's entrypoint and the Metabase pre-wiring (against a fake
Metabase speaking the same API, since no Metabase runs here)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
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


# --- deploy/metabase_setup.py ------------------------------------------------------------------------

class FakeMetabase:
    """Metabase's setup, session and database endpoints, as metabase_setup.py uses them."""

    def __init__(self):
        self.setup_token = "setup-token-1"
        self.admin: dict | None = None
        self.sessions: set[str] = set()
        self.databases: list[dict] = []
        self.synced: list[int] = []
        self.calls: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body=None):
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self):
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"null")

            def _authed(self) -> bool:
                return self.headers.get("X-Metabase-Session") in fake.sessions

            def do_GET(self):
                fake.calls.append(f"GET {self.path}")
                if self.path == "/api/health":
                    return self._send(200, {"status": "ok"})
                if self.path == "/api/session/properties":
                    return self._send(200, {"has-user-setup": fake.admin is not None,
                                            "setup-token": None if fake.admin else fake.setup_token})
                if self.path == "/api/database":
                    if not self._authed():
                        return self._send(401, "Unauthenticated")
                    return self._send(200, {"data": fake.databases, "total": len(fake.databases)})
                return self._send(404, "Not found")

            def do_POST(self):
                fake.calls.append(f"POST {self.path}")
                body = self._body()
                if self.path == "/api/setup":
                    if fake.admin is not None or body.get("token") != fake.setup_token:
                        return self._send(403, "setup done or wrong token")
                    user = body["user"]
                    assert body["prefs"]["site_name"]
                    fake.admin = {"email": user["email"], "password": user["password"]}
                    fake.sessions.add("s-setup")
                    return self._send(200, {"id": "s-setup"})
                if self.path == "/api/session":
                    if fake.admin != {"email": body["username"], "password": body["password"]}:
                        return self._send(401, {"errors": {"password": "did not match stored password"}})
                    fake.sessions.add("s-login")
                    return self._send(200, {"id": "s-login"})
                if not self._authed():
                    return self._send(401, "Unauthenticated")
                if self.path == "/api/database":
                    db = {"id": len(fake.databases) + 1, "name": body["name"], "engine": body["engine"],
                          "details": body["details"]}
                    fake.databases.append(db)
                    return self._send(200, db)
                if self.path.endswith("/sync_schema"):
                    fake.synced.append(int(self.path.split("/")[3]))
                    return self._send(200, {"status": "ok"})
                return self._send(404, "Not found")

            def do_PUT(self):
                fake.calls.append(f"PUT {self.path}")
                body = self._body()
                if not self._authed():
                    return self._send(401, "Unauthenticated")
                db = next(d for d in fake.databases if d["id"] == int(self.path.rsplit("/", 1)[1]))
                db["details"] = body["details"]
                return self._send(200, db)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def metabase():
    fake = FakeMetabase()
    yield fake
    fake.close()


def setup_env(metabase: FakeMetabase, reader_password: str = "reader-pw-1") -> dict[str, str]:
    return {"METABASE_URL": metabase.url, "METABASE_ADMIN_EMAIL": "bi-admin@example.org",
            "METABASE_ADMIN_PASSWORD": "admin-pw-Quang-Nam-2023",
            "BI_READER_URL": f"postgresql://bi_reader:{reader_password}@warehouse:5432/warehouse",
            "METABASE_SETUP_TIMEOUT": "5"}


def test_metabase_setup_creates_the_admin_and_the_marts_connection_then_is_idempotent(metabase, capsys):
    setup = load("metabase_setup")
    assert setup.main(setup_env(metabase)) == 0
    assert metabase.admin == {"email": "bi-admin@example.org", "password": "admin-pw-Quang-Nam-2023"}
    [db] = metabase.databases
    assert db["engine"] == "postgres"
    assert db["details"] == {"host": "warehouse", "port": 5432, "dbname": "warehouse", "user": "bi_reader",
                             "password": "reader-pw-1", "ssl": False, "schema-filters-type": "inclusion",
                             "schema-filters-patterns": "marts"}
    assert metabase.synced == [db["id"]]

    # A second `up` (here with a rotated bi_reader password): log in, update the same connection.
    assert setup.main(setup_env(metabase, "reader-pw-2")) == 0
    assert len(metabase.databases) == 1 and metabase.databases[0]["details"]["password"] == "reader-pw-2"
    assert "POST /api/session" in metabase.calls and metabase.calls.count("POST /api/setup") == 1
    assert metabase.synced == [db["id"], db["id"]]

    out = capsys.readouterr()
    for secret in ("admin-pw-Quang-Nam-2023", "reader-pw-1", "reader-pw-2"):
        assert secret not in out.out + out.err


def test_metabase_setup_fails_clearly_on_a_wrong_admin_password(metabase, capsys):
    setup = load("metabase_setup")
    assert setup.main(setup_env(metabase)) == 0
    env = {**setup_env(metabase), "METABASE_ADMIN_PASSWORD": "not-the-one"}
    assert setup.main(env) == 1
    assert "POST /api/session: HTTP 401" in capsys.readouterr().err


def test_metabase_setup_needs_its_variables(capsys):
    assert load("metabase_setup").main({"METABASE_URL": "http://127.0.0.1:9"}) == 2
    assert "METABASE_ADMIN_EMAIL, METABASE_ADMIN_PASSWORD, BI_READER_URL" in capsys.readouterr().err
