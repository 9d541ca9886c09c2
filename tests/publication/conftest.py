"""Fixtures of the publication tests: the warehouse (built once for the package, see ``scenario.py``), the
marts computed independently, and test artifacts kept under ``<project>/.local/test-artifacts``."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.publication.scenario import AS_OF
from tests.support.paths import PROJECT_ROOT
from tests.support.reference import compute_marts

ARTIFACTS_DIR = PROJECT_ROOT / ".local" / "test-artifacts"
_kept: list[tuple[str, Path]] = []  # (what, where): listed at the end of the test run


@pytest.fixture(scope="package")
def built(publication_warehouse):
    """The warehouse, built once for every test of this package (and the Superset tests)."""
    return publication_warehouse


@pytest.fixture(scope="package")
def reference(built) -> dict[str, list[dict]]:
    """The marts computed independently in plain Python from the scenario's records (tests/support/reference.py)."""
    province = built["province"]
    return compute_marts(list(province.iter_all()), province.unit_records(), province.procedure_records(),
                         province.delegation_records(), built["finance"].effective_rows(), AS_OF)


@pytest.fixture
def keep_artifact() -> Callable[[str, Path, str], Path]:
    """``keep_artifact(what, path, name)`` copies ``path`` to ``<project>/.local/test-artifacts/<name>`` and lists
    it at the end of the test run."""

    def keep(what: str, path: Path, name: str) -> Path:
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        kept = ARTIFACTS_DIR / name
        shutil.copyfile(path, kept)
        _kept.append((what, kept))
        return kept

    return keep


def pytest_terminal_summary(terminalreporter):
    if _kept:
        terminalreporter.write_sep("-", "publication test artifacts")
        for what, path in _kept:
            terminalreporter.write_line(f"{what}: {path}")
