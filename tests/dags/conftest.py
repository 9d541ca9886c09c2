"""The nightly DAG's dbt task groups are rendered from the dbt manifest: make sure it exists."""

import pytest

from ops.dbt import ensure_manifest


@pytest.fixture(scope="session", autouse=True)
def dbt_manifest():
    return ensure_manifest()
