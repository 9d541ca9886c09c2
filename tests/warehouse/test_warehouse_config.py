"""Settings from the environment and the URLs derived from them (no server needed)."""

from __future__ import annotations

import stat

import pytest

from tests.support.paths import PROJECT_ROOT
from warehouse.config import Settings, mask_url, resolve_urls
from warehouse.credentials import CredentialStore
from warehouse.errors import WarehouseError


def test_defaults_keep_data_in_the_git_ignored_local_folder():
    settings = Settings.from_env({})
    assert settings.data_dir == PROJECT_ROOT / ".local" / "warehouse" / "pgdata"
    assert settings.credentials_file == PROJECT_ROOT / ".local" / "warehouse" / "credentials.json"
    assert (settings.port, settings.host, settings.database) == (55432, "127.0.0.1", "warehouse")
    assert (settings.writer_role, settings.bi_reader_role) == ("pipeline", "bi_reader")
    assert not settings.external


@pytest.mark.parametrize("port", ["0", "70000", "abc"])
def test_invalid_port_is_rejected(port):
    with pytest.raises(WarehouseError, match="WAREHOUSE_PORT"):
        Settings.from_env({"WAREHOUSE_PORT": port})


def test_private_urls_come_from_env_passwords_and_the_credentials_file(tmp_path):
    settings = Settings.from_env(
        {
            "WAREHOUSE_DATA_DIR": str(tmp_path / "pgdata"),
            "WAREHOUSE_PORT": "55555",
            "WAREHOUSE_ADMIN_PASSWORD": "adm:in/pw",
            "WAREHOUSE_WRITER_ROLE": "loader",
        }
    )
    with pytest.raises(WarehouseError, match="warehouse up"):
        resolve_urls(settings)
    writer_pw = settings.password("writer", create=True)
    settings.password("bi_reader", create=True)

    urls = resolve_urls(settings)
    assert urls["admin"] == "postgresql://warehouse_admin:adm%3Ain%2Fpw@127.0.0.1:55555/warehouse"
    assert urls["writer"] == f"postgresql://loader:{writer_pw}@127.0.0.1:55555/warehouse"
    stored = CredentialStore(tmp_path / "credentials.json")
    assert stored.get("admin") is None  # environment passwords are never written down
    assert stat.S_IMODE(stored.path.stat().st_mode) == 0o600


def test_external_url_keeps_host_port_and_query(tmp_path):
    settings = Settings.from_env(
        {
            "WAREHOUSE_URL": "postgresql://boss:s3cret@db.example.com:6543/dwh?sslmode=require",
            "WAREHOUSE_DATA_DIR": str(tmp_path / "pgdata"),
            "BI_READER_PASSWORD": "reader-pw",
        }
    )
    assert settings.external and settings.target_database == "dwh"
    assert settings.role_name("admin") == "boss"
    settings.password("writer", create=True)
    urls = resolve_urls(settings)
    assert urls["admin"] == "postgresql://boss:s3cret@db.example.com:6543/dwh?sslmode=require"
    assert urls["bi_reader"] == ("postgresql://bi_reader:reader-pw@db.example.com:6543/dwh?sslmode=require")
    assert mask_url(urls["admin"]) == "postgresql://boss:****@db.example.com:6543/dwh?sslmode=require"
    assert "s3cret" not in repr(settings)


def test_external_url_must_be_postgresql():
    with pytest.raises(WarehouseError, match="postgresql://"):
        Settings.from_env({"WAREHOUSE_URL": "mysql://x@y/z"})


def test_bi_reader_limits_default_and_come_from_the_environment():
    defaults = Settings.from_env({})
    assert (defaults.bi_reader_statement_timeout, defaults.bi_reader_idle_timeout,
            defaults.bi_reader_connection_limit) == ("60s", "5min", 20)
    settings = Settings.from_env({"BI_READER_STATEMENT_TIMEOUT": " 2 min", "BI_READER_IDLE_TIMEOUT": "0",
                                  "BI_READER_CONNECTION_LIMIT": "-1"})
    assert (settings.bi_reader_statement_timeout, settings.bi_reader_idle_timeout,
            settings.bi_reader_connection_limit) == ("2min", "0", -1)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BI_READER_STATEMENT_TIMEOUT", "60"),  # PostgreSQL would read 60 ms
        ("BI_READER_STATEMENT_TIMEOUT", "1 minute"),
        ("BI_READER_IDLE_TIMEOUT", "-5s"),
        ("BI_READER_IDLE_TIMEOUT", "5min; DROP ROLE x"),
        ("BI_READER_CONNECTION_LIMIT", "-2"),
        ("BI_READER_CONNECTION_LIMIT", "many"),
    ],
)
def test_invalid_bi_reader_limits_are_rejected(name, value):
    with pytest.raises(WarehouseError, match=name):
        Settings.from_env({name: value})


def test_applicant_hash_key_is_a_secret_of_some_length():
    key = "0123456789abcdef-key"
    settings = Settings.from_env({"APPLICANT_HASH_KEY": key})
    assert settings.applicant_hash_key == key and key not in repr(settings)
    assert Settings.from_env({}).applicant_hash_key is None
    with pytest.raises(WarehouseError, match="at least 16 characters") as raised:
        Settings.from_env({"APPLICANT_HASH_KEY": "short-key"})
    assert "short-key" not in str(raised.value)
    assert Settings.from_env({"APPLICANT_SALT": "old"}).legacy_applicant_salt
