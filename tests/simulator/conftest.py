"""Shared simulator fixtures: one small province served over HTTP for the whole session, and the default
scenario at a quarter of the province's volume (the calibration to the seed)."""

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


@pytest.fixture(scope="session")
def calibrated_province() -> Province:
    """The default scenario (Jan–Sep 2023) at a quarter of the province's volume."""
    return Province(Scenario(scale=0.25))


@pytest.fixture(scope="session")
def calibrated(calibrated_province) -> dict:
    """The same, as plain records."""
    province = calibrated_province
    return {"records": list(province.iter_all()), "units": province.unit_records(),
            "procedures": province.procedure_records(), "delegations": province.delegation_records(),
            "clock": province.clock, "scale": province.scenario.scale}
