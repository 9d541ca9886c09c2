"""Run a set of long-lived processes together, and fail loudly as soon as one of them stops.

``Supervisor(components, env).run()`` starts every component, each in a process group of its own (so
that its whole tree — an Airflow scheduler's task workers, an api-server's uvicorn workers — can be
stopped at once, and so that a Ctrl-C in the terminal reaches only the supervisor, which then stops
everything in order), with its output appended to its own log file. Then it watches them:

- a component exits (whatever its exit code: these are services, none is expected to finish): the
  supervisor prints which one, its exit code (or the signal that killed it) and the last lines of its
  log, stops all the others and returns ``COMPONENT_DIED`` (1);
- SIGINT, SIGTERM or SIGHUP reach the supervisor: it stops every component and returns 0.

Stopping a component sends SIGTERM to its process group, waits up to ``stop_timeout`` seconds for
every process of that group to go, then sends SIGKILL to the group. What a dead component leaves behind
in its group (an Airflow scheduler's executor workers and log server) gets SIGKILL at once: with their
leader gone nothing stops them in order, and they ignore SIGTERM. On Linux each component's main
process also gets SIGTERM from the kernel should the supervisor itself be killed with SIGKILL
(``PR_SET_PDEATHSIG``), so no component outlives it unnoticed.

A component may carry environment variables of its own (on top of the shared ones: e.g. one Celery worker's
name and log-server port) and a readiness check (e.g. a broker answering): the supervisor then waits for it
to answer before starting the next component, and a component that dies or does not get ready within its
``ready_timeout`` fails the start the same loud way.

Decisions: exit code 1 for a dead component (the caller, e.g. systemd with ``Restart=on-failure``,
decides whether to restart the whole set — restarting one component here would hide a crash loop);
a log file is rotated once (to ``.1``) when it is over ``LOG_ROTATE_BYTES`` at start, so months of
nightly runs keep at most two files of bounded size per component.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TextIO

COMPONENT_DIED = 1
LOG_ROTATE_BYTES = 50 * 1024 * 1024
TAIL_LINES = 40
_PR_SET_PDEATHSIG = 1


@dataclass
class Component:
    """One long-lived process: a name, its command line and the file its output goes to."""

    name: str
    argv: Sequence[str]
    log_file: Path
    env: Mapping[str, str] = field(default_factory=dict)  # on top of the supervisor's environment
    ready: Callable[[], bool] | None = field(default=None, repr=False)  # True once it serves
    ready_timeout: float = 60.0
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        """The main process' id (also its process group's id), once started."""
        return self.process.pid if self.process else None


def describe_exit(returncode: int) -> str:
    """``exit code 3`` or ``killed by signal SIGKILL (exit code -9)``."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name} (exit code {returncode})"
    return f"exit code {returncode}"


def tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of a text file (reads at most its last 256 KiB)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 256 * 1024))
            data = handle.read()
    except FileNotFoundError:
        return []
    return data.decode("utf-8", errors="replace").splitlines()[-lines:]


def group_alive(pgid: int) -> bool:
    """True while a live (non-zombie) process belongs to process group ``pgid``."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces or parentheses, so split after the last ')'
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


def _die_with_parent(parent: int) -> Callable[[], None]:
    """A ``preexec_fn``: SIGTERM this child when the supervisor dies (Linux), or exit if it already has."""
    def preexec() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):  # not Linux: the supervisor's own stop() is all there is
            pass
        if os.getppid() != parent:
            os._exit(1)
    return preexec


class Supervisor:
    """Start ``components`` with ``env`` in ``cwd``; :meth:`run` watches them until one dies or a
    stop signal arrives. Messages go to ``out``."""

    def __init__(self, components: Sequence[Component], env: Mapping[str, str], cwd: Path | None = None,
                 stop_timeout: float = 30.0, poll_interval: float = 0.5, out: TextIO | None = None):
        self.components = list(components)
        self.env = dict(env)
        self.cwd = cwd
        self.stop_timeout = stop_timeout
        self.poll_interval = poll_interval
        self.out = out or sys.stdout
        self._stop_signal: int | None = None

    def say(self, message: str) -> None:
        """One line of the supervisor's own output, time-stamped."""
        print(f"[{datetime.now():%Y-%m-%d %H:%M:%S}] {message}", file=self.out, flush=True)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._stop_signal = signum

    def start(self) -> Component | None:
        """Start every component (in order), each in a new session and process group; one with a readiness
        check is waited for before the next starts. Returns the component that died or did not get ready in
        time (the ones after it are not started), else None."""
        for component in self.components:
            log_file = component.log_file
            log_file.parent.mkdir(parents=True, exist_ok=True)
            if log_file.exists() and log_file.stat().st_size > LOG_ROTATE_BYTES:
                log_file.replace(log_file.with_name(log_file.name + ".1"))
            with log_file.open("ab") as log:
                log.write(f"\n===== {datetime.now():%Y-%m-%d %H:%M:%S} starting: {' '.join(component.argv)}\n"
                          .encode())
                log.flush()
                component.process = subprocess.Popen(
                    list(component.argv), env={**self.env, **component.env}, cwd=self.cwd,
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                    preexec_fn=_die_with_parent(os.getpid()))
            self.say(f"started {component.name} (pid {component.pid}), log: {log_file}")
            if component.ready is not None and not self._wait_ready(component):
                return component
        return None

    def _wait_ready(self, component: Component) -> bool:
        """Wait until ``component`` answers its readiness check; False when it died, did not answer within
        its ``ready_timeout``, or a stop signal arrived meanwhile."""
        deadline = time.monotonic() + component.ready_timeout
        while component.process.poll() is None and self._stop_signal is None:
            if component.ready():
                self.say(f"{component.name} is ready")
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(self.poll_interval)
        return self._stop_signal is not None  # a stop request is handled by run(), not as a failure

    def run(self, on_tick: Callable[[], None] | None = None) -> int:
        """Start the components and watch them. ``on_tick`` is called every poll (e.g. a readiness
        check); returns 0 after a requested stop, ``COMPONENT_DIED`` when a component exited."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            try:
                failed = self.start()
            except BaseException:
                self.stop()
                raise
            if failed is not None:
                return self._died(failed)
            while True:
                if self._stop_signal is not None:
                    self.say(f"{signal.Signals(self._stop_signal).name} received: stopping every component")
                    self.stop()
                    self.say("stopped")
                    return 0
                dead = next((c for c in self.components if c.process and c.process.poll() is not None), None)
                if dead is not None:
                    return self._died(dead)
                if on_tick is not None:
                    on_tick()
                time.sleep(self.poll_interval)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _died(self, dead: Component) -> int:
        code = dead.process.poll()
        if code is None:
            self.say(f"FAILED: component {dead.name} (pid {dead.pid}) not ready after {dead.ready_timeout:.0f}s")
        else:
            self.say(f"FAILED: component {dead.name} (pid {dead.pid}) died: {describe_exit(code)}")
        self.say(f"last lines of {dead.log_file}:")
        for line in tail(dead.log_file):
            print(f"  | {line}", file=self.out, flush=True)
        self.say("stopping the other components")
        if code is not None:
            # What the dead one left behind (its workers, its log server) has no leader to stop it in order.
            _signal_group(dead.pid, signal.SIGKILL)
        self.stop()
        self.say(f"stopped; exiting with code {COMPONENT_DIED} because {dead.name} "
                 + ("died" if code is not None else "did not get ready"))
        return COMPONENT_DIED

    def stop(self) -> None:
        """SIGTERM every component's process group, wait for them all, SIGKILL what is left."""
        started = [c for c in self.components if c.process is not None]
        for component in started:
            _signal_group(component.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        pending = list(started)
        while pending and time.monotonic() < deadline:
            for component in pending:
                component.process.poll()  # reap the leader, so that only live processes count
            pending = [c for c in pending if group_alive(c.pid)]
            if pending:
                time.sleep(0.2)
        for component in pending:
            self.say(f"{component.name} still running after {self.stop_timeout:.0f}s: SIGKILL to its process group")
            _signal_group(component.pid, signal.SIGKILL)
        for component in started:
            try:
                component.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.say(f"{component.name} (pid {component.pid}) did not exit after SIGKILL")


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)
