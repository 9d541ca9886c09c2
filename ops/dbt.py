"""Run the project's dbt (``dbt_project/``) against the warehouse as the writer role.

    python -m ops.dbt build --select staging     # any dbt command and arguments
    python -m ops.dbt manifest                   # writes DBT_MANIFEST_PATH (Cosmos reads it); no warehouse needed
    python -m ops.dbt docs-site                  # writes <REPORTS_DIR>/dbt-docs/index.html (every night does)

Every dbt command gets the settings' vars (``pipeline.settings.PublicationTargets``: ``on_time_target``,
``min_resolved``), merged under any ``--vars`` of its own: the models have no default for them, so a dbt run
that bypasses this module without them fails instead of ranking against another target.

The connection comes from the writer role's ``postgresql://`` URL — ``WAREHOUSE_WRITER_URL`` if set, else
``warehouse.resolve_url("writer")`` (the private cluster or ``WAREHOUSE_URL``) — turned into the variables
``dbt_project/profiles.yml`` reads, so no secret is ever written to a file:

| variable | value |
|---|---|
| ``DBT_HOST``, ``DBT_PORT``, ``DBT_USER``, ``DBT_PASSWORD``, ``DBT_DBNAME`` | from the URL (port 5432 when absent) |
| ``DBT_SSLMODE`` | the URL's ``sslmode`` query parameter, else ``prefer`` |
| ``DBT_PROFILES_DIR`` | ``<repo>/dbt_project`` |
| ``DBT_PROFILE``, ``DBT_TARGET`` | ``cchc``, ``warehouse`` (as Cosmos names them: one parse state for both) |
| ``DBT_TARGET_PATH``, ``DBT_LOG_PATH`` | ``<repo>/.local/dbt/target``, ``<repo>/.local/dbt/logs``, unless set |
| ``DBT_SEND_ANONYMOUS_USAGE_STATS`` | ``False`` (no network calls at run time) |
| ``BI_READER_ROLE`` | the role granted ``select`` on the marts, from ``pipeline.settings.WarehouseSettings`` |
| ``CCHC_DBT_<NAME>`` | the run-context vars given in ``--vars`` (``RUN_CONTEXT_VARS``), moved out of them |

The run-context values change every night (the as-of time, the run), or from one caller to another (the
incremental look-back: a test's nights are seconds apart); dbt re-parses the whole project whenever ``--vars``
change, so they travel as environment variables that the models read when they run (macro ``run_var``), and
the vars dbt sees stay the same night after night: a night parses only what changed in the project.

(Two dbt processes at once — e.g. test workers — each need their own ``DBT_TARGET_PATH``.)
``DBT_EXECUTABLE`` overrides the dbt binary (default: the ``dbt`` beside this Python, i.e. the project's
``.venv``). ``profiles.yml`` and ``dbt_project.yml`` have no defaults of their own for these.
``applicant_key``'s HMAC key is read by the model from the warehouse itself (``raw.applicant_hash_key``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from importlib.metadata import version
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from pipeline.settings import (
    LOCAL_DIR,
    PROJECT_ROOT,
    DagSettings,
    RunSettings,
    WarehouseSettings,
    dbt_vars,
    writer_url,
)

log = logging.getLogger(__name__)

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
DBT_LOCAL_DIR = LOCAL_DIR / "dbt"
TARGET_PATH = DBT_LOCAL_DIR / "target"
LOG_PATH = DBT_LOCAL_DIR / "logs"
# For Cosmos' LoadMode.DBT_MANIFEST: a folder of its own, which no dbt run rewrites (every dbt command
# rewrites target/manifest.json, and a DAG parsed while a task writes it would read half a file). The DAG
# reads the same setting (DBT_MANIFEST_PATH).
MANIFEST_PATH = DagSettings.from_env().dbt_manifest_path
MANIFEST_DIR = MANIFEST_PATH.parent
# The profile and target of dbt_project/profiles.yml.
PROFILE_NAME = "cchc"
TARGET_NAME = "warehouse"
# dbt parse connects to nothing, but its profile must name a connection: this one, when no writer URL can be
# told (a fresh clone, a build without a warehouse).
PARSE_ONLY_URL = "postgresql://parse:parse@127.0.0.1:5432/parse"


def dbt_executable() -> str:
    """``DBT_EXECUTABLE``, else the ``dbt`` installed beside the running Python, else ``dbt`` on PATH."""
    configured = RunSettings.from_env().dbt_executable
    if configured:
        return configured
    beside = Path(sys.executable).parent / "dbt"
    if beside.exists():
        return str(beside)
    found = shutil.which("dbt")
    if found is None:
        raise FileNotFoundError("no dbt executable: install the project's requirements or set DBT_EXECUTABLE")
    return found


def dbt_env(writer_url: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a dbt command of this project: ``base`` (default ``os.environ``) plus the
    connection variables derived from ``writer_url`` and the project's paths."""
    parts = urlsplit(writer_url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname or not parts.username:
        raise ValueError("the writer URL must look like postgresql://user:password@host:port/database")
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise ValueError("the writer URL names no database")
    env = dict(os.environ if base is None else base)
    env.update(
        DBT_HOST=parts.hostname,
        DBT_PORT=str(parts.port or 5432),
        DBT_USER=unquote(parts.username),
        DBT_PASSWORD=unquote(parts.password or ""),
        DBT_DBNAME=database,
        DBT_SSLMODE=parse_qs(parts.query).get("sslmode", ["prefer"])[0],
        DBT_PROFILES_DIR=str(DBT_PROJECT_DIR),
        # Named as Cosmos names them on its command lines: dbt keeps its parse state only for the same vars,
        # profile and target arguments, so the night's dbt tasks and this module's commands share one.
        DBT_PROFILE=PROFILE_NAME,
        DBT_TARGET=TARGET_NAME,
        DBT_TARGET_PATH=str(target_path(env)),
        DBT_LOG_PATH=env.get("DBT_LOG_PATH") or str(LOG_PATH),
        DBT_SEND_ANONYMOUS_USAGE_STATS="False",
        BI_READER_ROLE=WarehouseSettings.from_env(env).bi_reader_role,
    )
    return env


# The values that change from one night to the next (the as-of time, the run): given to dbt as environment
# variables CCHC_DBT_<NAME>, which the macro run_var reads when dbt executes (dbt_project/macros/run_context.sql).
# As --vars they would cost a full parse of the project at every new value.
RUN_CONTEXT_VARS = ("as_of", "pipeline_run_id", "incremental_lookback_minutes")


def run_context_env(values: Mapping[str, object]) -> dict[str, str]:
    """The environment variables that carry the run-context ``values`` (those of ``RUN_CONTEXT_VARS``)."""
    return {f"CCHC_DBT_{name.upper()}": str(values[name]) for name in RUN_CONTEXT_VARS if values.get(name) is not None}


def split_vars(values: Mapping[str, object]) -> tuple[dict[str, object], dict[str, str]]:
    """dbt vars ``values`` as the vars dbt parses with (the same from one run to the next) and the
    environment variables carrying the run-context ones (``run_context_env``)."""
    return {k: v for k, v in values.items() if k not in RUN_CONTEXT_VARS}, run_context_env(values)


def split_run_context(args: Sequence[str], env: Mapping[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """``with_settings_vars(args)``, with the run-context vars taken out of ``--vars`` into the environment
    variables that carry them (``run_context_env``): the vars left are the same every night."""
    args = with_settings_vars(args, env)
    if "--vars" not in args:
        return args, {}
    i = args.index("--vars")
    rest, context = split_vars(_vars_value(args[i + 1]))
    return [*args[:i], "--vars", json.dumps(rest, sort_keys=True), *args[i + 2:]], context


def with_settings_vars(args: Sequence[str], env: Mapping[str, str] | None = None) -> list[str]:
    """``args`` with the settings' dbt vars (``dbt_vars``) merged under the ``--vars`` they give (theirs win),
    for a dbt command (not ``dbt --version``, nor a group's help such as ``dbt docs --help``)."""
    args = list(args)
    command = args[:2] if args[:1] in (["docs"], ["source"]) else args[:1]  # dbt's command groups
    if not command or any(word.startswith("-") for word in command):
        return args
    given: dict = {}
    for i, arg in enumerate(args):
        if arg == "--vars" and i + 1 < len(args):
            given = _vars_value(args[i + 1])
            del args[i:i + 2]
            break
        if arg.startswith("--vars="):
            given = _vars_value(arg.split("=", 1)[1])
            del args[i]
            break
    return [*args, "--vars", json.dumps(dbt_vars(env, **given))]


def _vars_value(text: str) -> dict:
    """A ``--vars`` value: JSON, or the YAML dbt accepts too."""
    try:
        return json.loads(text)
    except ValueError:
        import yaml

        return yaml.safe_load(text) or {}


def run_dbt(args: Sequence[str], writer_url: str, *, capture_output: bool = True,
            base_env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``dbt <args>`` in ``dbt_project/`` against the warehouse of ``writer_url``, with the settings' vars
    (``with_settings_vars``); never raises on a failing dbt command — check ``returncode`` (``stdout`` holds
    dbt's log when captured)."""
    DBT_LOCAL_DIR.mkdir(parents=True, exist_ok=True)
    args, context = split_run_context(args, base_env)
    return subprocess.run([dbt_executable(), *args], cwd=DBT_PROJECT_DIR, env={**dbt_env(writer_url, base_env),
                          **context}, text=True, capture_output=capture_output, check=False)


def ensure_manifest(writer_url: str | None = None) -> Path:
    """Write ``MANIFEST_PATH`` with ``dbt parse`` unless it is newer than every file of the dbt project.

    Cosmos renders the DAG's dbt tasks from it. Parsing does not connect to the warehouse, so without a
    writer URL placeholder credentials (``PARSE_ONLY_URL``) are enough."""
    newest = max(p.stat().st_mtime for p in DBT_PROJECT_DIR.rglob("*") if p.is_file())
    if not (MANIFEST_PATH.exists() and MANIFEST_PATH.stat().st_mtime >= newest):
        # Parsed into a scratch folder, then moved into place in one rename: a reader never sees half a file.
        scratch = DBT_LOCAL_DIR / f"manifest-parse-{os.getpid()}"
        proc = run_dbt(["parse", "--quiet", "--target-path", str(scratch)], writer_url or PARSE_ONLY_URL)
        if proc.returncode != 0:
            raise RuntimeError(f"dbt parse failed:\n{proc.stdout}\n{proc.stderr}")
        MANIFEST_DIR.mkdir(parents=True, exist_ok=True)
        # the parse state beside the manifest, then the manifest (the newer of the two: see above)
        seed_partial_parse(scratch, MANIFEST_DIR)
        os.replace(scratch / "manifest.json", MANIFEST_PATH)
        shutil.rmtree(scratch, ignore_errors=True)
    # A fresh target folder (a first night, a new machine) starts from this parse rather than parsing the
    # whole project in the night's first dbt task; one a dbt command has already written keeps its own.
    if not (target_path() / PARTIAL_PARSE_FILE).exists():
        seed_partial_parse(MANIFEST_DIR, target_path())
    return MANIFEST_PATH


PARTIAL_PARSE_FILE = "partial_parse.msgpack"


def target_path(base: Mapping[str, str] | None = None) -> Path:
    """The target folder dbt commands of this project write (``DBT_TARGET_PATH``, else ``TARGET_PATH``)."""
    env = os.environ if base is None else base
    return Path(env.get("DBT_TARGET_PATH") or TARGET_PATH)


def seed_partial_parse(source: Path, target: Path) -> None:
    """Copy dbt's parse state (``partial_parse.msgpack``) from folder ``source`` into folder ``target``, so the
    next dbt command there parses only what changed instead of the whole project (several seconds each time).
    The copy is written under a temporary name and renamed. dbt checks the state itself (its version, the
    vars, the project's files and the profile's keys) and parses in full when it does not fit, so a stale
    copy costs time, never a wrong manifest."""
    state = source / PARTIAL_PARSE_FILE
    if not state.is_file():
        return
    target.mkdir(parents=True, exist_ok=True)
    scratch = target / f".{PARTIAL_PARSE_FILE}.{os.getpid()}"
    shutil.copyfile(state, scratch)
    os.replace(scratch, target / PARTIAL_PARSE_FILE)


DOCS_STAMP = ".generated-from"


def docs_fingerprint(writer_url: str, base: Mapping[str, str] | None = None) -> str:
    """What the docs site is generated from: every file of the dbt project, dbt's version, the vars its commands
    get and the warehouse (host, port, database) whose catalog it shows."""
    digest = hashlib.sha256()
    for path in sorted(p for p in DBT_PROJECT_DIR.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(DBT_PROJECT_DIR)).encode() + b"\0" + path.read_bytes() + b"\0")
    parts = urlsplit(writer_url)
    digest.update(json.dumps([version("dbt-core"), version("dbt-postgres"), parts.hostname, parts.port, parts.path,
                              split_run_context(["docs", "generate"], base)[0]]).encode())
    return digest.hexdigest()


def write_docs_site(writer_url: str, out_dir: Path) -> Path:
    """The dbt docs site as one self-contained page, ``<out_dir>/index.html`` (``dbt docs generate
    --static``: the models, their columns and tests, the lineage graph and the warehouse's catalog).

    Generated again only when what it shows can have changed (``docs_fingerprint``: the project, dbt, the
    vars, the warehouse — the catalog of PostgreSQL holds no row counts), so most nights keep the page they
    have. Generated in a scratch target folder of its own (a concurrent dbt command keeps its target),
    started from the target folder's parse state, then moved into place in one rename, so the page served is
    always a whole one. Raises with dbt's output when dbt fails."""
    target = out_dir / "index.html"
    stamp = out_dir / DOCS_STAMP
    fingerprint = docs_fingerprint(writer_url)
    if target.is_file() and stamp.is_file() and stamp.read_text().strip() == fingerprint:
        log.info("dbt docs site %s: project, dbt, vars and warehouse as when it was generated; kept", target)
        return target
    scratch = DBT_LOCAL_DIR / f"docs-{os.getpid()}"
    try:
        # the night's dbt commands left their parse state in the target folder: start from it
        seed_partial_parse(target_path(), scratch)
        proc = run_dbt(["docs", "generate", "--static", "--target-path", str(scratch)], writer_url)
        page = scratch / "static_index.html"
        for line in proc.stdout.splitlines():  # a whole parse costs the night seconds: say why it happened
            if "Unable to do partial parsing" in line:
                log.warning("dbt docs generate: %s", line.strip())
        if proc.returncode != 0 or not page.is_file():
            raise RuntimeError(f"dbt docs generate failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
        out_dir.mkdir(parents=True, exist_ok=True)
        stamp.unlink(missing_ok=True)  # never a stamp beside a page it does not describe
        os.replace(page, target)
        (scratch / DOCS_STAMP).write_text(fingerprint + "\n")
        os.replace(scratch / DOCS_STAMP, stamp)
        return target
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _known_writer_url() -> str | None:
    """The writer URL when one can be told (``WAREHOUSE_WRITER_URL``, a configured or initialised warehouse),
    else ``None``: ``dbt parse`` needs none."""
    from warehouse.errors import WarehouseError

    try:
        return writer_url()
    except (WarehouseError, OSError):
        return None


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args else 2
    if args[0] == "manifest":
        if args[1:] in (["-h"], ["--help"]):
            print("python -m ops.dbt manifest: write the dbt manifest Cosmos renders the DAG from "
                  f"({MANIFEST_PATH}), unless it is newer than every file of the dbt project")
            return 0
        print(ensure_manifest(_known_writer_url()))
        return 0
    if args[0] == "docs-site":
        from pipeline.settings import reports_dir

        out_dir = reports_dir() / "dbt-docs"
        if args[1:] in (["-h"], ["--help"]):
            print(f"python -m ops.dbt docs-site: write the dbt docs site as one page, {out_dir}/index.html")
            return 0
        print(write_docs_site(writer_url(), out_dir))
        return 0
    if "-h" in args or "--help" in args:  # dbt's own help needs no warehouse
        return run_dbt(args, PARSE_ONLY_URL, capture_output=False).returncode
    return run_dbt(args, writer_url(), capture_output=False).returncode


if __name__ == "__main__":
    sys.exit(main())
