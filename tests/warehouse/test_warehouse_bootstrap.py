"""Bootstrap: idempotent migrations, schemas, role privileges, password authentication, the read-only role's
limits, the closed maintenance databases and the key of applicant_key."""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from psycopg import errors
from psycopg.conninfo import conninfo_to_dict

from tests.support.paths import PROJECT_ROOT
from tests.support.postgres import throwaway_warehouse
from warehouse.bootstrap import bootstrap
from warehouse.cli import main
from warehouse.config import SCHEMAS, build_url, replace_url_parts, resolve_urls
from warehouse.errors import WarehouseError
from warehouse.migrate import MIGRATIONS_DIR, load_migrations
from warehouse.psql import libpq_target


@pytest.fixture(scope="module")
def wh(tmp_path_factory):
    with throwaway_warehouse(tmp_path_factory.mktemp("bootstrap")) as warehouse:
        yield warehouse


def query(url: str, statement: str) -> list[tuple]:
    """Run one statement in its own autocommit connection; return its rows, if any."""
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement)
        return cursor.fetchall() if cursor.description else []


def history(wh) -> list[tuple]:
    return query(wh.urls["admin"], "SELECT * FROM audit.schema_migrations ORDER BY version")


def test_all_six_schemas_exist_and_belong_to_the_writer(wh):
    rows = query(
        wh.urls["admin"],
        "SELECT nspname, pg_get_userbyid(nspowner) FROM pg_namespace"
        " WHERE nspname IN ('raw', 'staging', 'intermediate', 'marts', 'dq', 'audit')",
    )
    assert dict(rows) == {schema: "pipeline" for schema in SCHEMAS}


def test_bootstrap_twice_changes_nothing(wh):
    before = history(wh)
    assert [row[1] for row in before] == [m.name for m in load_migrations()]
    assert [row[1] for row in before][:2] == ["schemas_and_roles", "bi_reader_access"]
    assert bootstrap(wh.settings) == []
    assert history(wh) == before


def test_edited_applied_migration_is_rejected(wh, tmp_path):
    edited = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, edited)
    with open(edited / "V002__bi_reader_access.sql", "a") as sql_file:
        sql_file.write("\n-- an innocent-looking edit\n")
    with pytest.raises(WarehouseError, match=r"V002__bi_reader_access.*checksum"):
        bootstrap(wh.settings, migrations_dir=edited)


def test_new_migration_is_applied_once_with_placeholders(wh, tmp_path):
    extended = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, extended)
    (extended / "V900__test_table.sql").write_text(
        "CREATE TABLE marts.placeholder_test (id int);\nALTER TABLE marts.placeholder_test OWNER TO {writer};\n"
    )
    assert bootstrap(wh.settings, migrations_dir=extended) == ["V900__test_table"]
    assert bootstrap(wh.settings, migrations_dir=extended) == []
    owner = query(wh.urls["admin"], "SELECT tableowner FROM pg_tables WHERE tablename = 'placeholder_test'")
    assert owner == [("pipeline",)]


def test_writer_creates_tables_in_marts_and_raw(wh):
    for schema in ("raw", "marts"):
        query(wh.urls["writer"], f"CREATE TABLE {schema}.writer_test (id int)")
        query(wh.urls["writer"], f"INSERT INTO {schema}.writer_test VALUES (1)")
        assert query(wh.urls["writer"], f"SELECT id FROM {schema}.writer_test") == [(1,)]


@pytest.mark.parametrize("payload", ['[]', '"text"', '42', 'null'])
def test_a_dossier_version_that_is_not_a_json_object_is_refused(wh, payload):
    """The decoders read each payload with one jsonb_to_record, which needs an object: the database refuses
    anything else (V011), and names the constraint, so the loader's bisecting COPY quarantines it with that
    reason; an object is accepted."""
    insert = ("INSERT INTO raw.dossier_versions (dossier_id, updated_at, content_hash, is_deleted, payload, run_id) "
              "VALUES ('HS-{key}', '2024-01-31 10:00', '\\x00', false, '{payload}'::jsonb, 'test')")
    with pytest.raises(errors.CheckViolation, match="dossier_versions_payload_is_object"):
        query(wh.urls["writer"], insert.format(key=payload, payload=payload))
    query(wh.urls["writer"], insert.format(key="object-" + payload, payload='{"MaHoSo": "x"}'))
    assert query(wh.urls["writer"], f"SELECT count(*) FROM raw.dossier_versions WHERE dossier_id LIKE 'HS-%{payload}'"
                 ) == [(1,)]


def test_bi_reader_reads_marts_tables_created_after_bootstrap(wh):
    query(wh.urls["writer"], "CREATE TABLE marts.later (id int)")
    query(wh.urls["writer"], "INSERT INTO marts.later VALUES (42)")
    query(wh.urls["writer"], "CREATE VIEW marts.later_view AS SELECT id FROM marts.later")
    assert query(wh.urls["bi_reader"], "SELECT id FROM marts.later") == [(42,)]
    assert query(wh.urls["bi_reader"], "SELECT id FROM later_view") == [(42,)]  # search_path


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM raw.forbidden",
        "CREATE TABLE marts.bi_table (id int)",
        "CREATE TABLE public.bi_table (id int)",
        "CREATE TEMP TABLE bi_temp (id int)",
        "CREATE SCHEMA bi_schema",
    ],
)
def test_bi_reader_cannot_read_other_schemas_or_create(wh, statement):
    query(wh.urls["writer"], "CREATE TABLE IF NOT EXISTS raw.forbidden (id int)")
    with pytest.raises(errors.InsufficientPrivilege):
        query(wh.urls["bi_reader"], statement)


@pytest.mark.parametrize("role", ["admin", "writer", "bi_reader"])
def test_password_is_required(wh, role, monkeypatch, tmp_path):
    # Keep libpq from finding a password elsewhere.
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))
    url = wh.urls[role]
    user = psycopg.conninfo.conninfo_to_dict(url)["user"]
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(replace_url_parts(url, user=user, password="wrong"), connect_timeout=5)
    with pytest.raises(psycopg.OperationalError, match="no password supplied"):
        psycopg.connect(replace_url_parts(url, user=user), connect_timeout=5)


def test_passwords_stay_out_of_logs_and_private_on_disk(wh):
    credentials = wh.settings.credentials_file
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    log_text = wh.cluster.log_file.read_text()
    for role in ("admin", "writer", "bi_reader"):
        assert wh.settings.password(role) not in log_text


def test_external_server_with_non_superuser_admin(wh, tmp_path):
    """WAREHOUSE_URL naming a CREATEROLE user that owns its database (as on managed servers)."""
    admin = wh.urls["admin"]
    query(admin, "CREATE ROLE ext_admin LOGIN CREATEROLE PASSWORD 'ext-secret'")
    query(admin, "CREATE DATABASE ext_wh OWNER ext_admin")
    settings = replace(
        wh.settings,
        external_url=build_url("ext_admin", "ext-secret", "127.0.0.1", wh.port, "ext_wh"),
        writer_role="ext_pipeline",
        bi_reader_role="ext_bi",
        credentials_file=tmp_path / "credentials.json",
    )
    assert bootstrap(settings) == [m.label for m in load_migrations()]
    assert bootstrap(settings) == []

    urls = resolve_urls(settings)
    assert urls["admin"] == settings.external_url
    query(urls["writer"], "CREATE TABLE marts.ext_fact (id int)")
    assert query(urls["bi_reader"], "SELECT count(*) FROM marts.ext_fact") == [(0,)]
    with pytest.raises(errors.InsufficientPrivilege):
        query(urls["bi_reader"], "SELECT * FROM audit.schema_migrations")
    # The read-only role's limits hold on an external server too.
    assert pg_setting(urls["bi_reader"], "statement_timeout") == "60000"
    assert pg_setting(urls["bi_reader"], "idle_in_transaction_session_timeout") == "300000"
    assert connection_limit(wh, "ext_bi") == 20
    assert query(urls["writer"], "SELECT origin FROM raw.applicant_hash_key") == [("generated",)]


def test_cli_up_is_idempotent_and_url_prints_full_urls(wh, monkeypatch, capsys):
    for name in [n for n in os.environ if n.startswith(("WAREHOUSE_", "BI_READER_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("WAREHOUSE_DATA_DIR", str(wh.settings.data_dir))
    monkeypatch.setenv("WAREHOUSE_PORT", str(wh.port))

    assert main(["up"]) == 0
    summary = capsys.readouterr().out
    assert f"port         {wh.port}" in summary
    assert "postgresql://bi_reader:****@" in summary
    for role in ("admin", "writer", "bi_reader"):
        assert wh.settings.password(role) not in summary

    assert main(["status"]) == 0
    capsys.readouterr()
    for role in ("admin", "writer", "bi_reader"):
        assert main(["url", "--role", role]) == 0
        assert capsys.readouterr().out.strip() == wh.urls[role]

    # A shell without WAREHOUSE_PORT still gets the port the cluster is running on (not the default).
    monkeypatch.delenv("WAREHOUSE_PORT")
    assert wh.port != 55432
    assert main(["url", "--role", "writer"]) == 0
    assert capsys.readouterr().out.strip() == wh.urls["writer"]


# --- the read-only role's limits ----------------------------------------------------------------------

def pg_setting(url: str, name: str) -> str:
    """The session's value of setting ``name`` in its base unit (milliseconds for the timeouts)."""
    return query(url, f"SELECT setting FROM pg_settings WHERE name = '{name}'")[0][0]


def connection_limit(wh, role: str) -> int:
    return query(wh.urls["admin"], f"SELECT rolconnlimit FROM pg_roles WHERE rolname = '{role}'")[0][0]


def warehouse_env(wh, monkeypatch, **variables: str) -> None:
    """The process environment of a user whose warehouse is ``wh``, plus ``variables``."""
    for name in [n for n in os.environ if n.startswith(("WAREHOUSE_", "BI_READER_", "APPLICANT_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("WAREHOUSE_DATA_DIR", str(wh.settings.data_dir))
    monkeypatch.setenv("WAREHOUSE_PORT", str(wh.port))
    monkeypatch.setenv("WAREHOUSE_OS_USER", wh.settings.os_user)
    if wh.settings.pg_bin is not None:
        monkeypatch.setenv("WAREHOUSE_PG_BIN", str(wh.settings.pg_bin))
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


def test_bi_reader_has_the_default_limits(wh):
    # 60 s, 5 min and 20 connections: the documented defaults.
    assert pg_setting(wh.urls["bi_reader"], "statement_timeout") == "60000"
    assert pg_setting(wh.urls["bi_reader"], "idle_in_transaction_session_timeout") == "300000"
    assert connection_limit(wh, "bi_reader") == 20
    # The pipeline is not limited.
    assert pg_setting(wh.urls["writer"], "statement_timeout") == "0"
    assert connection_limit(wh, "pipeline") == -1


def test_changed_bi_reader_limits_take_effect_at_the_next_bootstrap(wh, monkeypatch):
    warehouse_env(wh, monkeypatch, BI_READER_STATEMENT_TIMEOUT="300ms", BI_READER_IDLE_TIMEOUT="1s",
                  BI_READER_CONNECTION_LIMIT="3")
    try:
        assert main(["bootstrap"]) == 0
        reader = wh.urls["bi_reader"]
        assert query(reader, "SHOW statement_timeout") == [("300ms",)]
        assert query(reader, "SELECT pg_sleep(0.05)::text") == [("",)]
        started = time.monotonic()
        with pytest.raises(errors.QueryCanceled, match="statement timeout"):
            query(reader, "SELECT pg_sleep(5)")
        assert time.monotonic() - started < 3

        # A transaction left open is ended by the server, and with it the session.
        with psycopg.connect(reader) as conn:
            conn.execute("SELECT 1")  # psycopg opens a transaction: now idle in it
            time.sleep(1.5)
            with pytest.raises(psycopg.Error, match="idle-in-transaction"):
                conn.execute("SELECT 1")

        assert connection_limit(wh, "bi_reader") == 3
        held = [psycopg.connect(reader, autocommit=True) for _ in range(3)]
        try:
            with pytest.raises(psycopg.OperationalError, match="too many connections for role"):
                psycopg.connect(reader, connect_timeout=5)
            assert query(wh.urls["writer"], "SELECT 1") == [(1,)]  # the limit is the reader's alone
        finally:
            for conn in held:
                conn.close()
    finally:
        warehouse_env(wh, monkeypatch)
        assert main(["bootstrap"]) == 0
    assert pg_setting(wh.urls["bi_reader"], "statement_timeout") == "60000"
    assert connection_limit(wh, "bi_reader") == 20


# --- the maintenance databases ------------------------------------------------------------------------

@pytest.mark.parametrize("database", ["postgres", "template1"])
def test_only_the_superuser_reaches_the_maintenance_databases(wh, database):
    for role in ("bi_reader", "writer"):
        with pytest.raises(psycopg.OperationalError, match=f'permission denied for database "{database}"'):
            psycopg.connect(replace_url_parts(wh.urls[role], database=database), connect_timeout=5)
    assert query(replace_url_parts(wh.urls["admin"], database=database), "SELECT current_database()") == \
        [(database,)]
    assert query(wh.urls["admin"], f"SELECT has_database_privilege('public', '{database}', 'CONNECT'), "
                                   f"has_database_privilege('public', '{database}', 'TEMPORARY')") == \
        [(False, False)]
    # The warehouse database itself still serves both roles.
    assert query(wh.urls["bi_reader"], "SELECT current_database()") == [("warehouse",)]
    assert query(wh.urls["writer"], "SELECT current_database()") == [("warehouse",)]


# --- the key of applicant_key -------------------------------------------------------------------------

def stored_pads(wh) -> tuple[bytes, bytes, str]:
    rows = query(wh.urls["writer"], "SELECT inner_pad, outer_pad, origin FROM raw.applicant_hash_key")
    assert len(rows) == 1
    inner, outer, origin = rows[0]
    return bytes(inner), bytes(outer), origin


def sql_hmac(wh, message: str) -> str:
    """HMAC-SHA256 of ``message`` computed by the server from the stored pads, as the staging view does."""
    with psycopg.connect(wh.urls["writer"]) as conn:
        return conn.execute("SELECT encode(sha256(outer_pad || sha256(inner_pad || convert_to(%s, 'UTF8'))), "
                            "'hex') FROM raw.applicant_hash_key", [message]).fetchone()[0]


def test_applicant_hash_key_is_generated_once_then_set_from_the_environment(wh):
    inner, outer, origin = stored_pads(wh)
    assert origin == "generated"
    key = bytes(b ^ 0x36 for b in inner)
    assert bytes(b ^ 0x5C for b in outer) == key  # both pads hold the same key
    assert key[32:] == bytes(32) and len(set(key[:32])) > 8  # 32 random bytes, zero-padded to the block
    assert bootstrap(wh.settings) == []
    assert stored_pads(wh) == (inner, outer, "generated")  # kept, not regenerated

    message = "012345678901,049000000001"
    for configured in ("an-applicant-key-from-the-environment", "k" * 100):  # short and hashed (> 64 bytes)
        bootstrap(replace(wh.settings, applicant_hash_key=configured))
        assert stored_pads(wh)[2] == "environment"
        assert sql_hmac(wh, message) == hmac.new(configured.encode(), message.encode(), hashlib.sha256).hexdigest()
    # Unset again, the last key stays: applicant_key keeps its values.
    before = stored_pads(wh)
    bootstrap(wh.settings)
    assert stored_pads(wh) == before


def test_applicant_hash_key_is_the_writers_alone(wh):
    query(wh.urls["admin"], "ANALYZE raw.applicant_hash_key")
    with pytest.raises(errors.InsufficientPrivilege):
        query(wh.urls["bi_reader"], "SELECT * FROM raw.applicant_hash_key")
    assert query(wh.urls["bi_reader"], "SELECT * FROM pg_stats WHERE tablename = 'applicant_hash_key'") == []
    grantees = query(wh.urls["admin"], "SELECT DISTINCT grantee FROM information_schema.role_table_grants "
                                       "WHERE table_name = 'applicant_hash_key'")
    assert grantees == [("pipeline",)]


# --- psql without a password on its command line --------------------------------------------------------

def command_env(wh) -> dict[str, str]:
    """The environment of a shell whose configured warehouse is ``wh`` (no PG* variable to help libpq)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAREHOUSE_", "BI_READER_", "APPLICANT_", "PG"))}
    env.update(WAREHOUSE_DATA_DIR=str(wh.settings.data_dir), WAREHOUSE_PORT=str(wh.port),
               WAREHOUSE_OS_USER=wh.settings.os_user)
    if wh.settings.pg_bin is not None:
        env["WAREHOUSE_PG_BIN"] = str(wh.settings.pg_bin)
    return env


@pytest.mark.parametrize(("role", "user"), [("writer", "pipeline"), ("bi_reader", "bi_reader"),
                                            ("admin", "warehouse_admin")])
def test_the_documented_psql_command_runs_as_each_role(wh, role, user):
    # As in README.md: .venv/bin/python -m warehouse psql --role writer -c 'SELECT 1'
    proc = subprocess.run([sys.executable, "-m", "warehouse", "psql", "--role", role, "-AtX", "-c",
                           "SELECT current_user, 1"], env=command_env(wh), cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{user}|1"


def test_psql_gets_the_password_in_its_environment_not_its_arguments(wh):
    password = wh.settings.password("writer")
    proc = subprocess.Popen([sys.executable, "-m", "warehouse", "psql", "-AtX", "-c", "SELECT pg_sleep(1)"],
                            env=command_env(wh), cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # The command replaces itself by psql (same pid): wait for the exec.
        deadline = time.monotonic() + 20
        argv: list[bytes] = []
        while time.monotonic() < deadline:
            argv = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
            if os.path.basename(argv[0]) == b"psql":
                break
            time.sleep(0.05)
        assert os.path.basename(argv[0]) == b"psql", argv
        assert password.encode() not in b"\0".join(argv)
        assert any(arg.startswith(b"--dbname=") and b"user=pipeline" in arg for arg in argv), argv
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
        assert f"PGPASSWORD={password}".encode() in environ
        assert stat.S_IMODE(os.stat(f"/proc/{proc.pid}/environ").st_mode) == 0o400  # the owner's alone
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()


def test_libpq_target_keeps_everything_but_the_password():
    conninfo, env = libpq_target("postgresql://pipe%40line:p%3Aw%2Fd@db.example:6543/ware%20house?sslmode=require",
                                 base={"PGPASSFILE": "/elsewhere", "PGPASSWORD": "stale", "HOME": "/home/x"})
    assert conninfo_to_dict(conninfo) == {"user": "pipe@line", "host": "db.example", "port": "6543",
                                          "dbname": "ware house", "sslmode": "require"}
    assert env == {"PGPASSWORD": "p:w/d", "HOME": "/home/x"}
    # Without a password in the URL, none from the caller's environment is slipped in either.
    assert libpq_target("postgresql://u@h/db", base={"PGPASSWORD": "stale"})[1] == {}


def test_only_the_psql_command_takes_extra_arguments():
    with pytest.raises(SystemExit) as exited:
        main(["url", "-c", "SELECT 1"])
    assert exited.value.code == 2
