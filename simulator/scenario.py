"""A scenario: everything that determines the simulated province's records.

The same scenario (seed, period, scale, defect rates) always yields the same dossiers; the clock only
decides how far their lives have progressed. Scenarios come from keyword arguments, or from the settings
(``pipeline.settings.SimulatorSettings``: the ``SIM_*`` variables over a JSON file, ``SIM_SCENARIO``), whose
declared defaults are the defaults here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import date, datetime, timedelta

from pipeline.settings import SimulatorSettings

DEFAULTS = SimulatorSettings()  # the declared defaults of SIM_SEED, SIM_START, SIM_END, SIM_SCALE

# Share of dossiers that carry each injected defect (rule ids of dq-rules.md). DIG01/DIG02 and INC05
# also arise naturally from the digitisation rates and from offices that do not record progress.
DEFAULT_DEFECT_RATES: dict[str, float] = {
    "INC01": 0.004, "INC02": 0.005, "INC03": 0.005, "INC04": 0.008, "INC05": 0.004, "INC06": 0.008,
    "DIG01": 0.0, "DIG02": 0.0,
    "VAL01": 0.002, "VAL02": 0.002, "VAL03": 0.002, "VAL04": 0.002, "VAL05": 0.002, "VAL06": 0.003,
}


@dataclass(frozen=True)
class Scenario:
    """Parameters of a simulated province. ``clock`` defaults to 01:00 the day after ``end``."""

    seed: int = DEFAULTS.seed
    start: date = DEFAULTS.start
    end: date = DEFAULTS.end  # last day on which dossiers are submitted
    scale: float = DEFAULTS.scale  # 1.0 ≈ the province's real volume (about 400k dossiers a year)
    clock: datetime | None = None
    defect_rates: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_DEFECT_RATES))
    fix_share: float = 0.3  # share of defective dossiers corrected later (a late correction)
    delete_rate: float = 0.003  # dossiers soft-deleted (tombstones)
    empty_string_share: float = 0.3  # missing values sent as "" rather than null
    # The 2025 reorganisation (simulator.reorganisation): old units close on 2025-06-30, the merged city's open
    # on 2025-07-01, open dossiers are transferred. Off: the province as it was (Nông Sơn's merger aside).
    reorganisation: bool = False

    @property
    def now(self) -> datetime:
        """The scenario's clock: records reflect their state at this local time."""
        return self.clock or datetime.combine(self.end + timedelta(days=1), datetime.min.time()).replace(hour=1)

    def at(self, clock: datetime) -> Scenario:
        """The same province at another time."""
        return replace(self, clock=clock)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["start"], d["end"] = self.start.isoformat(), self.end.isoformat()
        d["clock"] = self.now.isoformat()
        if not self.reorganisation:
            del d["reorganisation"]  # the other scenarios read as they always did
        return d

    @classmethod
    def from_dict(cls, data: dict) -> Scenario:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown scenario keys: {sorted(unknown)}")
        kw = dict(data)
        for key in ("start", "end"):
            if isinstance(kw.get(key), str):
                kw[key] = date.fromisoformat(kw[key])
        if isinstance(kw.get("clock"), str):
            kw["clock"] = datetime.fromisoformat(kw["clock"])
        if "defect_rates" in kw:
            rates = dict(DEFAULT_DEFECT_RATES)
            bad = set(kw["defect_rates"]) - set(rates)
            if bad:
                raise ValueError(f"unknown defect rules: {sorted(bad)}")
            rates.update(kw["defect_rates"])
            kw["defect_rates"] = rates
        return cls(**kw)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Scenario:
        """The scenario of the settings (``SIM_SCENARIO``'s file, then ``SIM_SEED``, ``SIM_START``, ``SIM_END``,
        ``SIM_SCALE``, ``SIM_CLOCK`` and ``SIM_DEFECT_<RULE>``) in ``environ`` (default: the process's)."""
        return cls.from_dict(SimulatorSettings.from_env(environ).scenario())
