"""The suite runs on three workers (``make test``: pytest-xdist, ``--dist loadfile``; ``TEST_WORKERS`` in the
Makefile). Each worker gets its own dbt target and log folders: two dbt processes writing one ``target/`` (its
partial-parse file, its manifest) would corrupt each other's.

Work is handed out in units: a test file, except the files that share the publication scenario's warehouse
(``tests/publication/`` and the Superset tests: the session fixture ``publication_warehouse``, built once a
worker), which go to one worker together. The units start slowest first — a long file starting last would leave
the other workers idle until it ends — by the rough costs below (seconds on two busy cores; only their order
matters), the other files by their number of tests.
"""

from __future__ import annotations

import os

import pytest

from tests.support.paths import PROJECT_ROOT

# Paths (a package or a file) whose tests go to one worker together, under the unit's name.
UNITS = {"tests/publication/": "tests/publication/", "tests/bi/test_superset_dashboards.py": "tests/publication/"}
COSTS = {
    "tests/dags/test_nightly_run.py": 210,
    "tests/dags/test_reorganisation_nights.py": 180,
    "tests/dbt/test_marts.py": 90,
    "tests/dags/test_scheduler.py": 130,
    "tests/publication/": 200,
    "tests/data_quality/test_dossier_rules.py": 110,
    "tests/data_quality/test_held_batches.py": 100,
    "tests/dags/test_dag_integrity.py": 100,
    "tests/data_quality/test_batch_and_finance.py": 55,
    "tests/pipeline/test_lease.py": 50,
    "tests/dbt/test_staging.py": 40,
    "tests/dbt/test_service_index.py": 40,
    "tests/dbt/test_reorganised_marts.py": 40,
    "tests/dbt/test_service_index_nights.py": 40,
    "tests/dbt/test_steps.py": 45,
}


def work_unit(nodeid: str) -> str:
    """The unit of work a test belongs to: its file, or the unit ``UNITS`` names for it."""
    path = nodeid.split("::", 1)[0]
    return next((unit for prefix, unit in UNITS.items() if path.startswith(prefix)), path)


@pytest.fixture(scope="session")
def publication_warehouse(tmp_path_factory):
    """The publication scenario's warehouse (``tests/publication/scenario.py``), built once for the publication
    tests and the Superset tests, which only read it."""
    from tests.publication.scenario import built_warehouse

    with built_warehouse(tmp_path_factory.mktemp("publication")) as env:
        yield env


def pytest_configure(config) -> None:
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(UnitScheduling(), "cchc-unit-scheduling")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        local = PROJECT_ROOT / ".local" / "dbt"
        os.environ.setdefault("DBT_TARGET_PATH", str(local / f"target-{worker}"))
        os.environ.setdefault("DBT_LOG_PATH", str(local / f"logs-{worker}"))


def pytest_collection_modifyitems(session, config, items) -> None:
    """Units in order of cost (the scheduler hands them out in collection order), each unit's tests together
    and in their own order."""
    first: dict[str, int] = {}
    size: dict[str, int] = {}
    for i, item in enumerate(items):
        unit = work_unit(item.nodeid)
        first.setdefault(unit, i)
        size[unit] = size.get(unit, 0) + 1
    items.sort(key=lambda item: (-COSTS.get(work_unit(item.nodeid), 0), -size[work_unit(item.nodeid)],
                                 first[work_unit(item.nodeid)]))


class UnitScheduling:
    """A plugin (registered only when pytest-xdist is loaded): ``--dist loadfile`` with the units of
    ``work_unit``, handed out in collection order."""

    def pytest_xdist_make_scheduler(self, config, log):
        if config.getoption("dist", None) != "loadfile":
            return None
        from xdist.scheduler import LoadFileScheduling

        class Scheduling(LoadFileScheduling):
            def _split_scope(self, nodeid: str) -> str:
                return work_unit(nodeid)

        config.option.loadscopereorder = False
        return Scheduling(config, log)
