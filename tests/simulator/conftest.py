"""Shared simulator fixtures: one small province served over HTTP for the whole session."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from simulator.province import Province
from simulator.scenario import Scenario
from tests.support.simulator import running_simulator

SMALL = Scenario(seed=11, start=date(2023, 1, 1), end=date(2023, 3, 31), scale=0.1,
                 clock=datetime(2023, 4, 1, 1, 0, 0))


@pytest.fixture(scope="session")
def small_province() -> Province:
    return Province(SMALL)


@pytest.fixture(scope="session")
def served(small_province):
    with running_simulator(small_province) as sim:
        yield sim
