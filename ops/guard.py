"""Run a command so that nothing it starts outlives the process that asked for it:
``python -m ops.guard <command> …``.

The guard is started as a new session leader by ``ops.airflow.dags_test`` (``start_new_session``) with the
Linux parent-death signal set, so it gets SIGTERM when its parent dies — even by SIGKILL, as when a test's
timeout or an operator kills ``python -m ops.airflow test-dag``. It runs the command in its own process
group and, on SIGTERM, SIGINT or SIGHUP, stops that whole group (SIGTERM, then SIGKILL after a grace period):
``airflow dags test`` runs its tasks in child processes, which the parent-death signal alone would leave
running as orphans. Otherwise it exits with the command's exit code.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

GRACE_SECONDS = 10


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    child = subprocess.Popen(argv)  # same process group as the guard, the session's leader

    def stop(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(os.getpgrp(), signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        while child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(os.getpgrp(), signal.SIGKILL)  # the guard itself included
        sys.exit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    return child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
