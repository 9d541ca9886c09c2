"""Start the procedure-system simulator for a test: its own scenario, a free port, stopped afterwards."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from simulator.province import Province
from simulator.scenario import Scenario
from simulator.server import Faults, ProcedureApi, make_server
from simulator.static import StaticProvince


@dataclass
class RunningSimulator:
    url: str  # base URL, e.g. http://127.0.0.1:PORT/api/v1
    token: str
    api: ProcedureApi

    @property
    def province(self) -> Province:
        return self.api.province


@contextmanager
def running_simulator(scenario: Scenario | Province | StaticProvince,
                      faults: Faults | None = None) -> Iterator[RunningSimulator]:
    """Serve ``scenario`` (or an already generated ``Province``, or a ``StaticProvince`` of given records) on
    127.0.0.1:<free port> in a thread."""
    province = Province(scenario) if isinstance(scenario, Scenario) else scenario
    token = secrets.token_urlsafe(16)
    api = ProcedureApi(province, token, "/api/v1", faults or Faults())
    server = make_server(api, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield RunningSimulator(f"http://{host}:{port}/api/v1", token, api)
    finally:
        server.shutdown()
        server.server_close()
