"""Serving-speed benchmark of the simulator (``make bench-sim``; not a test).

Measures, for a scenario of the given scale: generation time and resident memory, then dossiers/s of
JSON (a) rendered and serialised in-process, one core, pages of 1,000 — the server's own work — and
(b) fetched over HTTP from a server subprocess by a client that reads the raw bytes — what a client
sees. The last line is machine-readable.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from datetime import timedelta

import orjson
import requests

from simulator.province import Province
from simulator.scenario import Scenario
from simulator.server import MAX_WINDOW
from simulator.timefmt import to_secs


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_bench(scale: float, pages: int) -> int:
    t0 = time.perf_counter()
    province = Province(Scenario(scale=scale))
    gen_s = time.perf_counter() - t0
    n = len(province.dossiers)
    print(f"scenario scale={scale}: {n:,} dossiers generated in {gen_s:.1f}s, peak RSS {_rss_mb():,.0f} MB")

    frm = to_secs(province.scenario.start)
    to = frm + MAX_WINDOW
    after, served, nbytes = None, 0, 0
    t0 = time.perf_counter()
    for _ in range(pages):
        recs, after = province.page(frm, to, None, after, 1000)
        nbytes += len(orjson.dumps({"error_code": "00", "data": recs}))
        served += len(recs)
        if after is None:
            frm, to, after = to, to + MAX_WINDOW, None
    inproc = served / (time.perf_counter() - t0)
    print(f"(a) in-process render+serialise: {inproc:,.0f} dossiers/s ({nbytes / served:,.0f} B each)")

    http = {}
    for cached in ("0", "1"):
        http[cached] = _http_rate(scale, pages, cached, province.scenario.start)
        label = "with the render cache" if cached == "1" else "rendering on demand"
        print(f"(b) over HTTP, one server process, {label}: {http[cached]:,.0f} dossiers/s")
    print(f"dossiers={n} generate_s={gen_s:.1f} inprocess_per_s={inproc:.0f} http_per_s={http['0']:.0f} "
          f"peak_rss_mb={_rss_mb():.0f} http_cached_per_s={http['1']:.0f}")
    return 0


def _http_rate(scale: float, pages: int, cached: str, start) -> float:
    """Dossiers/s a client receives from a ``simulator serve`` subprocess, reading raw bytes (the cursor is
    taken from the envelope's head, so the client costs next to nothing)."""
    port = 18000 + (os.getpid() + int(cached)) % 1000
    env = {**os.environ, "SIM_SCALE": str(scale), "SIM_TOKEN": "bench", "PROCEDURE_API_TOKEN": "bench",
           "SIM_RENDER_CACHE": cached}
    server = subprocess.Popen([sys.executable, "-m", "simulator", "serve", "--port", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        while "serving" not in server.stdout.readline():
            pass
        session = requests.Session()
        session.headers["Authorization"] = "Bearer bench"
        params = {"updated_from": start.strftime("%Y%m%d000000"),
                  "updated_to": (start + timedelta(days=31)).strftime("%Y%m%d000000"), "limit": 1000}
        got, t0 = 0, time.perf_counter()
        for _ in range(pages):
            body = session.get(f"http://127.0.0.1:{port}/api/v1/dossiers", params=params).content
            got += body.count(b'"MaHoSo"')
            cursor = orjson.loads(body[:body.index(b',"data":[')] + b"}")["next_cursor"]
            if not cursor:
                break
            params["cursor"] = cursor
        return got / (time.perf_counter() - t0)
    finally:
        server.terminate()
        server.wait()
