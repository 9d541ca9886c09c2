"""docker-compose.yml and deploy/: the production-like stack's structure, read as data (no Docker needed).

Only ``test_compose_config_validates`` needs a Compose v2 client (``docker compose`` or ``docker-compose``);
it is skipped, with the reason, where there is none.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tests.support.paths import PROJECT_ROOT as ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy"
ENV_EXAMPLE = DEPLOY / ".env.example"

AIRFLOW_SERVICES = ("airflow-init", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-worker")
REQUIRED_SERVICES = ("warehouse", "warehouse-bootstrap", "metadata-db", "redis", *AIRFLOW_SERVICES,
                     "simulator", "superset-init", "superset", "superset-import")
AIRFLOW_SHARED = ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY",
                  "AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "AIRFLOW__CORE__EXECUTOR",
                  "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__BROKER_URL",
                  "AIRFLOW__CELERY__RESULT_BACKEND")
SECRET_NAME = re.compile(r"PASSWORD|PASS$|SECRET|TOKEN|FERNET|_KEY$|SALT")
# ${NAME}, ${NAME:?message}, ${NAME?message}, ${NAME:-default}, ${NAME-default}; $$ is a literal dollar.
INTERPOLATION = re.compile(r"(?<!\$)\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[?-])?(?P<arg>[^}]*)\}")
# A secret may come only from the env file: required, or optional without a default.
SECRET_VALUE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(:?\?[^}]*|:?-)?\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def env_files(service: dict) -> list[str]:
    files = service.get("env_file") or []
    return [files] if isinstance(files, str) else [f if isinstance(f, str) else f["path"] for f in files]


def env_of(service: dict) -> dict[str, str]:
    """A service's environment as the container gets it: its env files' variables, then ``environment``."""
    from ops.stack import celery_config

    out: dict[str, str] = {}
    for path in env_files(service):
        out.update(celery_config(ROOT / path))
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {**out, **{k: str(v) for k, v in env.items()}}


def env_example() -> dict[str, str]:
    out = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"not KEY=value: {line!r}"
            out[key.strip()] = value
    return out


def url(value: str):
    """``urlsplit`` of a URL whose parts may be interpolations (``${X:?message}`` becomes ``__X__``)."""
    return urlsplit(INTERPOLATION.sub(lambda m: f"__{m['name']}__", value))


def strings(node) -> list[str]:
    """Every string value in the parsed YAML (comments are not interpolated, so they are not read)."""
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in strings(value)]
    return [node] if isinstance(node, str) else []


def command_of(service: dict) -> list[str]:
    cmd = service.get("command") or []
    return cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]


def test_required_services_present(services):
    missing = [name for name in REQUIRED_SERVICES if name not in services]
    assert not missing, f"services missing from docker-compose.yml: {missing}"


def test_every_airflow_component_shares_the_same_secrets_and_endpoints(services):
    runs_airflow = {name for name, svc in services.items() if command_of(svc)[:1] == ["airflow"]}
    assert runs_airflow <= set(AIRFLOW_SERVICES), f"Airflow processes outside the shared set: {runs_airflow}"
    envs = {name: env_of(services[name]) for name in AIRFLOW_SERVICES}
    for key in AIRFLOW_SHARED:
        values = {name: env.get(key) for name, env in envs.items()}
        assert None not in values.values(), f"{key} missing on {[n for n, v in values.items() if v is None]}"
        assert len(set(values.values())) == 1, f"{key} differs between Airflow components: {values}"
    reference = envs["airflow-api-server"]
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY"):
        match = INTERPOLATION.fullmatch(reference[key])
        assert match and match["name"] == key and match["op"] == ":?", f"{key} must be ${{{key}:?...}}"


def test_celery_executor_on_redis_with_a_postgres_metadata_database(services):
    env = env_of(services["airflow-scheduler"])
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert url(env["AIRFLOW__CELERY__BROKER_URL"]).hostname == "redis"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
    assert url(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).hostname == "metadata-db"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
    commands = {name: command_of(services[name]) for name in AIRFLOW_SERVICES}
    assert commands["airflow-api-server"][:2] == ["airflow", "api-server"]
    assert commands["airflow-scheduler"] == ["airflow", "scheduler"]
    assert commands["airflow-dag-processor"] == ["airflow", "dag-processor"]
    assert commands["airflow-worker"] == ["airflow", "celery", "worker"]


def test_the_celery_configuration_is_the_file_make_airflow_celery_reads(services):
    """One source of truth: every Airflow service reads deploy/airflow-celery.env, which ops.stack reads for
    `make airflow-celery`, and none overrides one of its variables in its own environment."""
    from ops.stack import CELERY_CONFIG_FILE, celery_config

    shared = celery_config()
    assert shared["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    for name in AIRFLOW_SERVICES:
        assert [ROOT / f for f in env_files(services[name])] == [CELERY_CONFIG_FILE], name
        overridden = shared.keys() & (services[name].get("environment") or {}).keys()
        assert not overridden, f"{name} sets {sorted(overridden)} apart from {CELERY_CONFIG_FILE.name}"
    # plain KEY=value lines: Compose would expand a ${...} in an env file, ops.stack would not
    assert not any(set(value) & set("$\"'") for value in shared.values())


def test_execution_api_url_points_at_the_api_server(services):
    execution = url(env_of(services["airflow-worker"])["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert execution.hostname == "airflow-api-server" and execution.path.rstrip("/") == "/execution"
    api = command_of(services["airflow-api-server"])
    assert str(execution.port) == api[api.index("--port") + 1]


def test_no_literal_secrets(services):
    problems = []
    for name, svc in services.items():
        for key, value in env_of(svc).items():
            if SECRET_NAME.search(key) and not SECRET_VALUE.fullmatch(value):
                problems.append(f"{name}: {key}={value!r} is not an interpolation from the env file")
            parts = url(value) if "://" in value else None
            if parts is not None and parts.password and not re.fullmatch(r"__[A-Z0-9_]+__", parts.password):
                problems.append(f"{name}: {key} holds a literal password in its URL")
        for word in command_of(svc):
            if re.search(r"(password|requirepass)\S*\s*\S", word, re.I) and "$$" not in word and "${" not in word:
                problems.append(f"{name}: literal secret in its command: {word!r}")
    assert not problems, "\n".join(problems)


def test_the_worker_can_scale_out(services):
    worker = services["airflow-worker"]
    assert "container_name" not in worker, "a fixed container_name prevents --scale airflow-worker=N"
    assert "ports" not in worker, "host ports would collide between worker replicas"
    assert "hostname" not in worker, "replicas need their own hostnames (the Celery node name)"


def test_bi_service_reads_the_marts_as_bi_reader(services):
    superset, init, load = services["superset"], services["superset-init"], services["superset-import"]
    # One image built from Superset's own lock (bi/requirements.txt, the one make superset installs).
    for service in (superset, init, load):
        assert service["build"]["dockerfile"] == "bi/Dockerfile" and service["image"] == superset["image"]
    dockerfile = (ROOT / "bi" / "Dockerfile").read_text()
    assert "bi/requirements.txt" in dockerfile and re.search(r"^FROM python:3\.11-slim$", dockerfile, re.M)
    assert "SUPERSET_CONFIG_PATH=/opt/cchc/bi/docker/superset_config.py" in dockerfile
    # python -m bi reads its settings through the project's settings module (standard library only)
    assert "COPY pipeline/__init__.py pipeline/settings.py pipeline/" in dockerfile
    assert (ROOT / "bi" / "docker" / "superset_config.py").is_file()
    # Its metadata is a database of its own in the metadata server, created by the server's init script.
    metadata = url(env_of(superset)["SUPERSET_METADATA_URL"])
    assert (metadata.hostname, metadata.path, metadata.username) == ("metadata-db", "/superset", "superset")
    assert any(m.startswith("./deploy/metadata-db/init-superset.sh:/docker-entrypoint-initdb.d/")
               for m in services["metadata-db"]["volumes"])
    for service in (superset, init):
        assert env_of(service)["SUPERSET_SECRET_KEY"].startswith("${SUPERSET_SECRET_KEY:?")
        assert env_of(service)["SUPERSET_METADATA_URL"] == env_of(superset)["SUPERSET_METADATA_URL"]
    # migrate and admin before the server; the server on 127.0.0.1 only; then the bundle's import
    assert command_of(init) == ["python", "/opt/cchc/bi/superset_setup.py", "setup"]
    assert init["depends_on"]["metadata-db"]["condition"] == "service_healthy"
    assert superset["depends_on"]["superset-init"]["condition"] == "service_completed_successfully"
    assert command_of(superset)[0] == "gunicorn" and command_of(superset)[-1] == "superset.app:create_app()"
    assert superset["ports"] == ["127.0.0.1:8088:8088"]
    assert command_of(load) == ["python", "-m", "bi", "import"]
    assert load["depends_on"]["superset"]["condition"] == "service_healthy"
    assert load["depends_on"]["warehouse-bootstrap"]["condition"] == "service_completed_successfully"
    env = env_of(load)
    assert url(env["SUPERSET_URL"]).hostname == "superset"
    reader = url(env["BI_READER_URL"])
    assert (reader.scheme, reader.username, reader.password) == ("postgresql", "bi_reader", "__BI_READER_PASSWORD__")
    assert reader.hostname == "warehouse" and reader.path == "/warehouse"
    assert "SUPERSET_SECRET_KEY" not in env, "the import needs the admin's login, not the instance's key"


def test_simulator_only_in_the_demo_profile(services):
    demo = {name for name, svc in services.items() if svc.get("profiles")}
    assert "simulator" in demo
    for name in demo:
        assert services[name]["profiles"] == ["demo"], f"{name}: profiles {services[name]['profiles']}"
    assert command_of(services["simulator"])[:4] == ["python", "-m", "simulator", "serve"]
    for name, svc in services.items():
        if name not in demo:
            assert not set(svc.get("depends_on") or {}) & demo, f"{name} depends on a demo-only service"


def test_depends_on_names_existing_services_with_a_valid_condition(services):
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {dep: {"condition": "service_started"} for dep in deps}
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on unknown service {dep!r}"
            condition = (spec or {}).get("condition", "service_started")
            assert condition in conditions, f"{name} -> {dep}: {condition}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy; it has no healthcheck"
            if condition == "service_completed_successfully":
                assert services[dep].get("restart", "no") == "no", f"{dep} is a one-shot: restart must be 'no'"


def test_every_long_running_service_has_a_healthcheck(services):
    for name, svc in services.items():
        if svc.get("restart", "no") != "no":
            assert "healthcheck" in svc, f"{name} runs for good but has no healthcheck"


def test_airflow_waits_for_init_and_the_warehouse_bootstrap_runs_once_healthy(services):
    for name in AIRFLOW_SERVICES[1:]:
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert services["airflow-init"]["depends_on"]["metadata-db"]["condition"] == "service_healthy"
    bootstrap = services["warehouse-bootstrap"]
    assert command_of(bootstrap) == ["python", "-m", "warehouse", "bootstrap"]
    assert bootstrap["depends_on"]["warehouse"]["condition"] == "service_healthy"
    env = env_of(bootstrap)
    assert url(env["WAREHOUSE_URL"]).hostname == "warehouse"
    assert {"WAREHOUSE_WRITER_PASSWORD", "BI_READER_PASSWORD"} <= env.keys()
    assert services["airflow-worker"]["depends_on"]["warehouse-bootstrap"]["condition"] == \
        "service_completed_successfully"


def test_volumes_for_data_reports_and_the_finance_inbox(compose, services):
    declared = set(compose.get("volumes") or {})
    for name, svc in services.items():
        for volume in svc.get("volumes") or []:
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
            if source and not source.startswith((".", "/")):
                assert source in declared, f"{name} mounts undeclared volume {source!r}"
    assert "warehouse-data:/var/lib/postgresql/data" in services["warehouse"]["volumes"]
    worker = services["airflow-worker"]
    env = env_of(worker)
    mounts = {v.split(":")[1]: v.split(":")[0] for v in worker["volumes"]}
    for variable in ("REPORTS_DIR", "FINANCE_INBOX", "GX_PROJECT_DIR"):
        assert env[variable] in mounts, f"{variable}={env[variable]} is not on a volume"
    assert mounts[env["REPORTS_DIR"]] == "reports" and mounts[env["FINANCE_INBOX"]] == "finance-inbox"
    assert "/opt/airflow/logs" in mounts, "the workers' task logs must be on the volume the api-server reads"
    for mount in services["metadata-db"]["volumes"]:
        if mount.startswith("./"):
            assert (ROOT / mount.split(":")[0]).is_file(), mount


def test_every_variable_is_in_the_env_example(compose):
    used = {m["name"] for value in strings(compose) for m in INTERPOLATION.finditer(value)}
    example = env_example()
    missing = sorted(used - example.keys())
    assert not missing, f"variables used by docker-compose.yml but absent from deploy/.env.example: {missing}"
    unused = sorted(example.keys() - used)
    assert not unused, f"deploy/.env.example sets variables docker-compose.yml never reads: {unused}"


def test_env_example_holds_placeholders_only():
    for key, value in env_example().items():
        if SECRET_NAME.search(key):
            assert value in ("", "change-me"), f"{key} in deploy/.env.example must be a placeholder"
    gitignore = (DEPLOY / ".gitignore").read_text().split()
    assert ".env" in gitignore, "deploy/.env (the real secrets) must be git-ignored"


def test_scripts_the_compose_file_runs_exist(services):
    for name, svc in services.items():
        for word in command_of(svc):
            if word.startswith("/opt/cchc/"):
                assert (ROOT / word.removeprefix("/opt/cchc/")).is_file(), f"{name} runs missing {word}"
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.M)
    assert "requirements.txt" in dockerfile and "deploy/requirements-deploy.txt" in dockerfile
    assert '"/opt/cchc/deploy/entrypoint.py"' in dockerfile
    # dbt runs rewrite .local/dbt/target/manifest.json; the DAG must parse from a copy no run touches.
    manifest = re.search(r"^ENV DBT_MANIFEST_PATH=(\S+)$", dockerfile, re.M)
    assert manifest and ".local" not in manifest[1]
    assert re.search(r"^RUN python -m ops\.dbt manifest\b", dockerfile, re.M), "written where DBT_MANIFEST_PATH says"
    assert services["airflow-worker"]["build"]["dockerfile"] == "deploy/Dockerfile"


def test_requirements_are_pinned_and_keep_celery_below_5_7():
    def pins(path: Path) -> dict[str, str]:
        out = {}
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                name, sep, version = line.partition("==")
                assert sep, f"{path.name}: {line!r} is not pinned with =="
                out[re.sub(r"\[.*\]", "", name).lower().replace("_", "-")] = version.strip()
        return out

    deploy = pins(DEPLOY / "requirements-deploy.txt")
    base = pins(ROOT / "requirements.txt")
    # the CeleryExecutor is the project's own (make airflow-celery); the image adds the FAB auth manager
    assert {"celery", "redis", "kombu", "apache-airflow-providers-celery"} <= base.keys()
    assert "apache-airflow-providers-fab" in deploy
    major, minor = (int(x) for x in base["celery"].split(".")[:2])
    assert (major, minor) < (5, 7), "celery 5.7 crashes Airflow 3.3's scheduler and workers"
    assert re.search(r"^celery\[redis\]<5\.7$", (ROOT / "requirements.in").read_text(), re.M)
    both = sorted(deploy.keys() & base.keys())
    assert not both, f"pinned in both requirements files (drift risk): {both}"


def _compose_v2() -> list[str] | None:
    """``docker compose`` or ``docker-compose``, when it is Compose v2 (v1 predates the Compose Specification)."""
    candidates = []
    if shutil.which("docker"):
        candidates.append([shutil.which("docker"), "compose"])
    if shutil.which("docker-compose"):
        candidates.append([shutil.which("docker-compose")])
    for cmd in candidates:
        try:
            proc = subprocess.run([*cmd, "version", "--short"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if proc.returncode == 0 and int(proc.stdout.strip().lstrip("v").split(".")[0] or 0) >= 2:
            return cmd
    return None


def test_compose_config_validates():
    cmd = _compose_v2()
    if cmd is None:
        pytest.skip("no Compose v2 client (`docker compose` plugin or `docker-compose`) on this machine")
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "DOCKER_CONFIG", "DOCKER_HOST")}
    base = [*cmd, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE)]
    ok = subprocess.run([*base, "--env-file", str(ENV_EXAMPLE), "--profile", "demo", "config", "-q"],
                        capture_output=True, text=True, env=env, timeout=60)
    assert ok.returncode == 0, ok.stderr
    # Without the env file, a required secret stops Compose before anything starts.
    missing = subprocess.run([*base, "--env-file", os.devnull, "config", "-q"],
                             capture_output=True, text=True, env=env, timeout=60)
    assert missing.returncode != 0 and "required variable" in missing.stderr, missing.stderr
