"""Bootstrap: idempotent migrations, schemas, role privileges and password authentication."""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import replace

import psycopg
import pytest
from psycopg import errors

from tests.support.postgres import throwaway_warehouse
from warehouse.bootstrap import bootstrap
from warehouse.cli import main
from warehouse.config import SCHEMAS, build_url, replace_url_parts, resolve_urls
from warehouse.errors import WarehouseError
from warehouse.migrate import MIGRATIONS_DIR, load_migrations


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
