"""Superset's own virtual environment, built once from ``bi/requirements.txt`` and cached outside the
working tree.

Superset 6.1 pins SQLAlchemy < 2 and pandas < 2.2; the project's ``.venv`` has SQLAlchemy 2.x, so Superset
cannot live there. ``ensure_environment()`` creates ``<cache>/cchc/superset-<hash of the lock file>`` with the
project's ``uv`` (``uv venv``, then ``uv pip sync bi/requirements.txt``: exactly the lock, from PyPI) and
returns it; when that folder is already complete it returns at once. ``<cache>`` is ``$XDG_CACHE_HOME`` or
``~/.cache``, so a fresh clone (CI) of the same commit on the same machine reuses the environment, and a
changed lock file gets a new one beside it. ``SUPERSET_VENV`` (``SupersetSettings.venv``) names another
folder instead. uv's own
download cache makes a rebuild fast too. Modules are compiled to bytecode at install time: Superset imports
thousands of them at every start.

The environment also keeps a metadata template: an SQLite database already migrated to this Superset's
schema with its roles and permissions (``superset db upgrade`` + ``superset init``, about 15-40 s), which a
new instance copies instead of migrating again. It holds no user and no secret (the admin is created per
instance; nothing in it is encrypted with a SECRET_KEY).

Builds are serialised by a lock file beside the environment (``fcntl.flock``): a test and ``make superset``
starting together build it once. A folder left half-built by a killed build has no ``.complete`` stamp and
is rebuilt. Without network and without a cached environment, ``EnvironmentUnavailable`` says so.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bi import BI_DIR, LOCK_FILE
from pipeline.settings import SupersetSettings

STAMP = ".complete"
TEMPLATE = "metadata-template.db"
INSTALL_TIMEOUT = 1800
MIGRATE_TIMEOUT = 900


class EnvironmentUnavailable(RuntimeError):
    """Superset's environment could not be built: ``offline`` when the package index could not be reached and
    uv's cache does not hold every wheel of the lock; otherwise a failed install (a real error)."""

    def __init__(self, message: str, offline: bool = False):
        super().__init__(message)
        self.offline = offline


# What uv prints when it cannot reach the index (DNS, connection, TLS, timeouts).
NETWORK_ERRORS = re.compile(r"error sending request|dns error|failed to lookup address|Network is unreachable|"
                            r"Connection refused|connection (?:reset|closed)|timed out|Could not connect|"
                            r"tcp connect error|failed to fetch|offline", re.I)


@dataclass(frozen=True)
class SupersetEnvironment:
    """A complete Superset environment: its folder and what it holds."""

    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def gunicorn(self) -> Path:
        return self.path / "bin" / "gunicorn"

    @property
    def template(self) -> Path:
        """The migrated, empty metadata database new instances copy."""
        return self.path / TEMPLATE


def lock_hash(lock_file: Path = LOCK_FILE) -> str:
    """The first 16 hex digits of the lock file's SHA-256: the environment's name changes with the lock."""
    return hashlib.sha256(lock_file.read_bytes()).hexdigest()[:16]


def cache_root(env=os.environ) -> Path:
    """``$XDG_CACHE_HOME/cchc`` or ``~/.cache/cchc`` (the XDG base directory rule, not a project setting)."""
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cchc"


def environment_path(settings: SupersetSettings | None = None, lock_file: Path = LOCK_FILE) -> Path:
    """Where the environment of this lock file lives (``settings.venv``, ``SUPERSET_VENV``, overrides)."""
    settings = settings or SupersetSettings.from_env()
    return settings.venv or cache_root() / f"superset-{lock_hash(lock_file)}"


def find_uv() -> str:
    """The project's uv (beside the running Python, i.e. in ``.venv``), else one on PATH."""
    beside = Path(sys.executable).parent / "uv"
    if beside.is_file():
        return str(beside)
    found = shutil.which("uv")
    if not found:
        raise EnvironmentUnavailable("no uv: run `make venv` (the project's .venv has uv) or put uv on PATH")
    return found


def base_python() -> str:
    """The interpreter the project's .venv was made from (Superset's environment uses the same Python)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def _run(cmd: list[str], timeout: float, what: str, env: dict | None = None, log: Callable[[str], None] = print):
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if proc.returncode != 0:
        output = (proc.stderr or proc.stdout)[-4000:]
        raise EnvironmentUnavailable(f"{what} failed (exit {proc.returncode}):\n{output}",
                                     offline=bool(NETWORK_ERRORS.search(output)))
    log(f"bi: {what} in {time.monotonic() - started:.0f}s")
    return proc


def _install(uv: str, python: Path, log: Callable[[str], None]) -> None:
    """``uv pip sync`` the lock; when the index cannot be reached, once more from uv's cache alone."""
    sync = [uv, "pip", "sync", "--quiet", "--compile-bytecode", "--python", str(python), str(LOCK_FILE)]
    try:
        _run(sync, INSTALL_TIMEOUT, "uv pip sync bi/requirements.txt", log=log)
    except EnvironmentUnavailable as exc:
        if not exc.offline:
            raise
        log("bi: the package index does not answer: trying uv's cache alone (--offline)")
        try:
            _run([*sync, "--offline"], INSTALL_TIMEOUT, "uv pip sync --offline bi/requirements.txt", log=log)
        except EnvironmentUnavailable as again:
            raise EnvironmentUnavailable(f"no network to the package index and uv's cache lacks wheels of "
                                         f"bi/requirements.txt:\n{again}", offline=True) from None


def _build(path: Path, log: Callable[[str], None]) -> None:
    uv = find_uv()
    if path.exists():
        shutil.rmtree(path)  # a half-built folder from a killed build
    path.parent.mkdir(parents=True, exist_ok=True)
    log(f"bi: building Superset's environment in {path} (once per lock file)")
    _run([uv, "venv", "--quiet", "--python", base_python(), str(path)], 300, "uv venv", log=log)
    _install(uv, path / "bin" / "python", log)
    _make_template(SupersetEnvironment(path), log)
    (path / STAMP).write_text(json.dumps({"lock": lock_hash(), "built_at": time.strftime("%Y-%m-%dT%H:%M:%S")}))


def _make_template(environment: SupersetEnvironment, log: Callable[[str], None]) -> None:
    """Migrate an empty SQLite metadata database to this Superset's schema: the template instances copy."""
    with tempfile.TemporaryDirectory(prefix="superset-template-") as tmp:
        db = Path(tmp) / TEMPLATE
        config = Path(tmp) / "superset_config.py"
        # A throw-away key: the template holds nothing encrypted with it.
        config.write_text(render_config(os.urandom(32).hex(), db))
        env = superset_process_env(config, Path(tmp))
        _run([str(environment.python), str(BI_DIR / "superset_setup.py"), "migrate"], MIGRATE_TIMEOUT,
             "Superset metadata template (db upgrade + init)", env=env, log=log)
        shutil.copyfile(db, environment.template)


def ensure_environment(log: Callable[[str], None] = print,
                       settings: SupersetSettings | None = None) -> SupersetEnvironment:
    """The complete environment for ``bi/requirements.txt``, built first when missing (see the module docstring)."""
    path = environment_path(settings)
    if (path / STAMP).exists():
        return SupersetEnvironment(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f"{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another build of the same environment finishes first
        if not (path / STAMP).exists():
            _build(path, log)
    return SupersetEnvironment(path)


def render_config(secret_key: str, metadata_db: Path, extra: str = "") -> str:
    """A ``superset_config.py``: the shared settings (``bi/superset_settings.py``), this instance's key and its
    SQLite metadata database."""
    return (
        "# Superset's configuration for this instance, written by `python -m bi` (keep it private: mode 0600).\n"
        "import sys\n\n"
        f"sys.path.insert(0, {str(BI_DIR)!r})\n"
        "from superset_settings import *  # noqa: E402,F403  (bi/superset_settings.py)\n\n"
        f"SECRET_KEY = {secret_key!r}\n"
        f"SQLALCHEMY_DATABASE_URI = {('sqlite:///' + str(Path(metadata_db).resolve()))!r}\n"
        + extra
    )


def superset_process_env(config: Path, home: Path, base: dict | None = None) -> dict[str, str]:
    """The environment of a Superset process: its configuration and home, nothing of the project's venv."""
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env.update(SUPERSET_CONFIG_PATH=str(config), SUPERSET_HOME=str(home), FLASK_APP="superset.app:create_app()")
    return env
