"""Command line of the procedure-system simulator.

    python -m simulator serve   [--host H] [--port P]      # foreground
    python -m simulator start   [--host H] [--port P]      # background, idempotent; writes simulator.env
    python -m simulator stop | status
    python -m simulator export  --out DIR                  # records + ground truth of the scenario
    python -m simulator workbooks --out DIR [--problems title_rows,...]
    python -m simulator bench   [--scale S] [--pages N]    # serving speed

The scenario comes from ``SIM_*`` variables (see ``simulator.scenario``), faults from ``SIM_FAULT_*``
(see ``simulator.server.Faults``), both read by ``pipeline.settings.SimulatorSettings``. The token is
``PROCEDURE_API_TOKEN`` (or ``SIM_TOKEN``); ``start`` generates one when neither is set and writes it, with
the URL, to ``<state dir>/simulator.env`` (``read_env_file`` reads it back, for ``make run`` too).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from pipeline.settings import PROJECT_ROOT, RunSettings, SimulatorSettings

SETTINGS = SimulatorSettings.from_env()
STATE_DIR = SETTINGS.state_dir
BASE_PATH = "/api/v1"


def read_env_file(path: Path) -> dict[str, str]:
    """A ``NAME=value`` file such as ``simulator.env``, as a mapping (empty when the file does not exist)."""
    if not path.exists():
        return {}
    return dict(line.partition("=")[::2] for line in path.read_text().splitlines() if line)


def cmd_serve(args: argparse.Namespace) -> int:
    from simulator.province import Province
    from simulator.scenario import Scenario
    from simulator.server import Faults, ProcedureApi, make_server

    token = SETTINGS.token or secrets.token_urlsafe(24)
    t0 = time.perf_counter()
    province = Province(Scenario.from_dict(SETTINGS.scenario()))
    if SETTINGS.render_cache:
        print(f"simulator: {len(province.index.rows):,} records pre-rendered in {province.enable_cache():.1f}s",
              flush=True)
    api = ProcedureApi(province, token, BASE_PATH, Faults.from_settings(SETTINGS))
    server = make_server(api, args.host, args.port, quiet=not args.verbose)
    host, port = server.server_address[:2]
    print(f"simulator: {len(province.dossiers):,} dossiers generated in {time.perf_counter() - t0:.1f}s; "
          f"clock {province.clock:%Y-%m-%d %H:%M}; serving http://{host}:{port}{BASE_PATH}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _health(url: str) -> dict | None:
    try:
        r = requests.get(url.replace(BASE_PATH, "") + "/_sim/health", timeout=2)
        return r.json() if r.ok else None
    except (requests.RequestException, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_state() -> tuple[int | None, str | None]:
    """The running simulator's pid and URL, from its state folder."""
    pid_file = STATE_DIR / "simulator.pid"
    pid = int(pid_file.read_text()) if pid_file.exists() else None
    return pid, RunSettings.from_env(read_env_file(STATE_DIR / "simulator.env")).api_url


def cmd_start(args: argparse.Namespace) -> int:
    pid, running_url = _read_state()
    if pid and _pid_alive(pid) and running_url and _health(running_url):
        print(f"simulator already running (pid {pid}) at {running_url}")
        return 0
    if pid and not _pid_alive(pid):
        print(f"simulator: removing stale pid file (pid {pid} is gone)")
        (STATE_DIR / "simulator.pid").unlink(missing_ok=True)
    with socket.socket() as s:
        if s.connect_ex((args.host, args.port)) == 0:
            print(f"simulator: port {args.port} on {args.host} is already in use by another program; "
                  f"set SIM_PORT to a free port", file=sys.stderr)
            return 1
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    token = SETTINGS.token or secrets.token_urlsafe(24)
    url = f"http://{args.host}:{args.port}{BASE_PATH}"
    log = (STATE_DIR / "simulator.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", "serve", "--host", args.host, "--port", str(args.port)],
        cwd=PROJECT_ROOT, env={**os.environ, "SIM_TOKEN": token, "PROCEDURE_API_TOKEN": token},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    (STATE_DIR / "simulator.pid").write_text(str(proc.pid))
    env_file = STATE_DIR / "simulator.env"
    env_file.write_text(f"PROCEDURE_API_URL={url}\nPROCEDURE_API_TOKEN={token}\n")
    env_file.chmod(0o600)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        health = _health(url)
        if health:
            print(f"simulator running (pid {proc.pid}) at {url}; clock {health['clock']}; "
                  f"{health['dossiers']:,} dossiers; token in {env_file}")
            return 0
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    print(f"simulator did not become ready; see {STATE_DIR / 'simulator.log'}", file=sys.stderr)
    proc.terminate()
    return 1


def cmd_stop(_: argparse.Namespace) -> int:
    pid, _url = _read_state()
    if not pid or not _pid_alive(pid):
        print("simulator is not running")
        (STATE_DIR / "simulator.pid").unlink(missing_ok=True)
        return 0
    os.killpg(pid, signal.SIGTERM)
    for _ in range(50):
        if not _pid_alive(pid):
            break
        time.sleep(0.1)
    else:
        os.killpg(pid, signal.SIGKILL)
    (STATE_DIR / "simulator.pid").unlink(missing_ok=True)
    print(f"simulator stopped (pid {pid})")
    return 0


def cmd_status(_: argparse.Namespace) -> int:
    pid, running_url = _read_state()
    health = _health(running_url) if running_url else None
    if pid and _pid_alive(pid) and health:
        print(f"simulator running (pid {pid}) at {running_url}; clock {health['clock']}")
        return 0
    print("simulator is not running")
    return 3


def cmd_export(args: argparse.Namespace) -> int:
    from simulator.province import Province
    from simulator.scenario import Scenario
    from simulator.truth import export

    summary = export(Province(Scenario.from_dict(SETTINGS.scenario())), Path(args.out))
    print(json.dumps(summary, indent=2))
    return 0


def cmd_workbooks(args: argparse.Namespace) -> int:
    from simulator.finance import write_workbooks
    from simulator.scenario import Scenario

    scenario = Scenario.from_dict(SETTINGS.scenario())
    problems = frozenset(p for p in (args.problems or "").split(",") if p)
    truth = write_workbooks(Path(args.out), investors(scenario.reorganisation), scenario.start,
                            min(scenario.end, scenario.now.date()), scenario.seed, problems,
                            handover=investor_handover() if scenario.reorganisation else None)
    truth.to_json(Path(args.out) / "finance-truth.json")
    print(f"wrote {len(truth.files)} workbooks to {args.out}")
    return 0


def investors(reorganisation: bool = False):
    """Investor units of the disbursement workbooks: departments with capital plans and districts (in the
    reorganisation scenario, those of before 2025-07-01; ``investor_handover`` says who reports their projects
    from then on)."""
    from simulator.finance import Investor
    from simulator.reorganisation import LAST_DAY, REORGANISED_ON
    from simulator.units import build_units

    return [Investor(u.code, u.name, u.level) for u in build_units(reorganisation)
            if u.kind in ("SO_NGANH", "UBND_HUYEN") and u.valid_from < REORGANISED_ON
            and (u.valid_to is None or u.valid_to >= LAST_DAY)]


def investor_handover():
    """``(2025-07-01, {investor: successor})``: from that day the departments' projects are reported by the
    city's department that took them over, a district's by its main successor commune."""
    from simulator.reorganisation import REORGANISED_ON
    from simulator.units import build_units

    units = {u.code: u for u in build_units(True)}
    return REORGANISED_ON, {inv.code: units[inv.code].merged_into for inv in investors(True)}


def cmd_bench(args: argparse.Namespace) -> int:
    from simulator.bench import run_bench

    return run_bench(args.scale, args.pages)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("serve", "start"):
        p = sub.add_parser(name)
        p.add_argument("--host", default=SETTINGS.host)
        p.add_argument("--port", type=int, default=SETTINGS.port)
        p.add_argument("--verbose", action="store_true")
        p.add_argument("--timeout", type=float, default=SETTINGS.start_timeout)
    sub.add_parser("stop")
    sub.add_parser("status")
    p = sub.add_parser("export")
    p.add_argument("--out", required=True)
    p = sub.add_parser("workbooks")
    p.add_argument("--out", required=True)
    p.add_argument("--problems", default="")
    p = sub.add_parser("bench")
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--pages", type=int, default=200)
    args = parser.parse_args(argv)
    handler = {"serve": cmd_serve, "start": cmd_start, "stop": cmd_stop, "status": cmd_status,
               "export": cmd_export, "workbooks": cmd_workbooks, "bench": cmd_bench}[args.cmd]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
