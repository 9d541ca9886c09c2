"""``make run``: bring up what is not configured externally, then say where everything is.

- The warehouse: ``WAREHOUSE_URL`` if set (bootstrapped), else the private PostgreSQL cluster.
- The procedure-system API: ``PROCEDURE_API_URL``/``PROCEDURE_API_TOKEN`` if set, else the simulator
  (scenario from ``SIM_*``), started in the background.
- The finance inbox: ``FINANCE_INBOX``; with the simulator, it receives the scenario's workbooks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOCAL = PROJECT_ROOT / ".local"


def _run(*args: str, env: dict | None = None) -> str:
    proc = subprocess.run([sys.executable, *args], cwd=PROJECT_ROOT, env=env or os.environ.copy(),
                          text=True, capture_output=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"make run: `python {' '.join(args)}` failed (exit {proc.returncode})")
    return proc.stdout.strip()


def _env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        out[key] = value
    return out


def bring_up() -> dict[str, str]:
    """Start or reach every service; returns the environment the pipeline runs with."""
    env = os.environ.copy()
    warehouse = _run("-m", "warehouse", "up")
    env.setdefault("WAREHOUSE_WRITER_URL", _run("-m", "warehouse", "url", "--role", "writer"))
    if not env.get("PROCEDURE_API_URL"):
        print(_run("-m", "simulator", "start"))
        env.update(_env_file(LOCAL / "simulator" / "simulator.env"))
        api = f"simulator at {env['PROCEDURE_API_URL']} (token in .local/simulator/simulator.env)"
    else:
        api = f"external procedure-system API at {env['PROCEDURE_API_URL']}"
    inbox = Path(env.get("FINANCE_INBOX") or LOCAL / "finance-inbox")
    env["FINANCE_INBOX"] = str(inbox)
    if not os.environ.get("PROCEDURE_API_URL") and not any(inbox.glob("giai-ngan-*.xlsx")):
        print(_run("-m", "simulator", "workbooks", "--out", str(inbox)))
    print("\n== Warehouse ==\n" + warehouse)
    print(f"\n== Source ==\n{api}\nfinance workbooks: {inbox}")
    return env


def main() -> int:
    bring_up()
    return 0


if __name__ == "__main__":
    sys.exit(main())
