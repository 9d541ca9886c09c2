"""``make airflow-celery``'s stack as ``ops.stack`` would start it, read without running it (no Redis, no Airflow):
the components and their command lines, the workers' distinct names, pid files and log-server ports, the
broker's password kept off every command line, the configuration shared with the compose stack, the
supervisor's readiness wait."""

from __future__ import annotations

import io
import re
import shlex
import stat
import sys
from pathlib import Path

import pytest
import yaml

from ops import stack
from ops.broker import RedisBroker
from ops.celery_hostname import hostname
from ops.supervisor import COMPONENT_DIED, Component, Supervisor
from pipeline.settings import CelerySettings
from tests.support.paths import PROJECT_ROOT


@pytest.fixture
def base(tmp_path) -> dict[str, str]:
    """A machine's environment for the stack: its own Airflow home and Redis folder, a stand-in binary."""
    return {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "REDIS_DATA_DIR": str(tmp_path / "redis"), "REDIS_SERVER": "/bin/true", "REDIS_PORT": "56390",
            "AIRFLOW__CORE__PARALLELISM": "4"}


def option(argv, name: str) -> str:
    return argv[list(argv).index(name) + 1]


def test_the_celery_stack_starts_the_broker_airflows_four_and_two_distinct_workers(base, tmp_path):
    env = stack.stack_env(base, stack.CELERY_EXECUTOR)
    parts = stack.components(env)
    assert [c.name for c in parts] == ["redis", "scheduler", "dag-processor", "triggerer", "api-server",
                                       "worker1", "worker2"]
    airflow = str(stack.airflow_executable())
    by_name = {c.name: c for c in parts}
    for name in stack.COMPONENTS:
        assert list(by_name[name].argv) == [airflow, name] and by_name[name].env == {}
    workers = [by_name["worker1"], by_name["worker2"]]
    for number, worker in enumerate(workers, 1):
        assert list(worker.argv[:3]) == [airflow, "celery", "worker"]
        assert option(worker.argv, "--celery-hostname") == f"worker{number}@%h"
        assert option(worker.argv, "--pid") == str(tmp_path / "airflow" / f"celery-worker{number}.pid")
        assert worker.env["CELERY_WORKER_NAME"] == f"worker{number}"
        assert worker.env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] == stack.HOSTNAME_CALLABLE
        assert worker.log_file == tmp_path / "airflow" / "logs" / "stack" / f"worker{number}.log"
    ports = [int(w.env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"]) for w in workers]
    assert ports == [8793, 8794]
    # every listener on a port of its own: the triggerer's log server moves after the workers'
    listening = stack.listening_ports(env)
    assert listening["triggerer log server"] == 8795 and listening["redis"] == 56390
    assert len(set(listening.values())) == len(listening)
    # the scheduler's share of the machine: parallelism 4 over two workers, two tasks each
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == "2"


def test_every_component_shares_the_celery_configuration_and_the_secrets(base):
    env = stack.stack_env(base, stack.CELERY_EXECUTOR)
    shared = stack.celery_config()
    assert {k: env[k] for k in shared} == shared
    assert shared["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert shared["AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL"] == "1"
    for name in stack.SECRET_VARIABLES:
        assert env[name]
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == env["AIRFLOW__API__BASE_URL"] + "/execution/"
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = "postgresql+psycopg2://airflow:pw@127.0.0.1:55432/airflow"
    assert stack.result_backend(env) == "db+postgresql+psycopg2://airflow:pw@127.0.0.1:55432/airflow"
    with pytest.raises(ValueError, match="PostgreSQL metadata database"):
        stack.result_backend({**env, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "sqlite:////tmp/airflow.db"})
    # an environment value wins over the shared file's, as everywhere in the stack
    assert stack.stack_env({**base, "AIRFLOW__CELERY__TASK_ACKS_LATE": "False"},
                           stack.CELERY_EXECUTOR)["AIRFLOW__CELERY__TASK_ACKS_LATE"] == "False"


def test_the_broker_password_is_generated_once_private_and_on_no_command_line(base):
    env = stack.stack_env(base, stack.CELERY_EXECUTOR)
    broker = stack.private_broker(env)
    password_file = Path(base["REDIS_DATA_DIR"]) / "password"
    password = password_file.read_text().strip()
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600 and len(password) >= 24
    assert env["AIRFLOW__CELERY__BROKER_URL"] == f"redis://:{password}@127.0.0.1:56390/0"
    assert stack.stack_env(base, stack.CELERY_EXECUTOR)["AIRFLOW__CELERY__BROKER_URL"] == \
        env["AIRFLOW__CELERY__BROKER_URL"], "the same password at every start"
    redis = next(c for c in stack.components(env) if c.name == "redis")
    assert redis.argv[-2:] == ["/bin/true", str(broker.config_file)] and redis.ready is not None
    for component in stack.components(env):
        assert password not in " ".join(component.argv), component.name
    config = broker.config(broker.workdir)
    assert f'requirepass "{password}"' in config
    assert re.search(r"^bind 127\.0\.0\.1$", config, re.M) and re.search(r"^port 56390$", config, re.M)
    assert 'save ""' in config and "appendonly no" in config and "protected-mode yes" in config
    given = RedisBroker(CelerySettings.from_env({**base, "REDIS_PASSWORD": 'p"a\\ss'}))
    assert given.password() == 'p"a\\ss' and 'requirepass "p\\"a\\\\ss"' in given.config(given.workdir)
    assert given.url().startswith("redis://:p%22a%5Css@")


def test_a_broker_given_by_the_environment_is_used_and_not_started(base):
    env = stack.stack_env({**base, "AIRFLOW__CELERY__BROKER_URL": "redis://:x@broker.example:6379/0"},
                          stack.CELERY_EXECUTOR)
    assert stack.private_broker(env) is None
    assert [c.name for c in stack.components(env)] == [*stack.COMPONENTS, "worker1", "worker2"]
    assert "redis" not in stack.listening_ports(env)


def test_the_local_executor_stack_is_unchanged(base):
    env = stack.stack_env(base)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert "AIRFLOW__CELERY__BROKER_URL" not in env
    assert [c.name for c in stack.components(env)] == list(stack.COMPONENTS)
    assert set(stack.listening_ports(env)) == {"api-server", "scheduler log server", "triggerer log server"}


def test_two_components_on_one_port_are_refused_before_anything_starts(base):
    env = stack.stack_env({**base, "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": "8794"}, stack.CELERY_EXECUTOR)
    assert stack.check_ports(env) == "worker2 log server and triggerer log server would both listen on port 8794"


def test_each_worker_records_its_own_host_name(monkeypatch):
    from airflow.utils.net import getfqdn

    module, _, function = stack.HOSTNAME_CALLABLE.rpartition(".")
    assert (module, function) == (hostname.__module__, hostname.__name__)
    hostname.cache_clear()
    monkeypatch.setenv("CELERY_WORKER_NAME", "worker2")
    assert hostname() == f"worker2.{getfqdn()}"
    hostname.cache_clear()
    monkeypatch.delenv("CELERY_WORKER_NAME")
    assert hostname() == getfqdn()
    hostname.cache_clear()


def test_make_airflow_celery_runs_the_celery_stack_and_the_compose_stack_reads_the_same_file():
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    recipe = re.search(r"^airflow-celery:.*\n\t@(.*)$", makefile, re.M)
    assert recipe and shlex.split(recipe[1]) == ["$(PY)", "-m", "ops.airflow", "celery"]
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    worker = compose["services"]["airflow-worker"]
    assert [PROJECT_ROOT / f for f in worker["env_file"]] == [stack.CELERY_CONFIG_FILE]


def test_the_supervisor_waits_for_a_ready_check_and_gives_each_component_its_environment(tmp_path):
    marker = tmp_path / "ready"
    script = "import os, pathlib, sys, time; pathlib.Path(sys.argv[1]).write_text(os.environ['WHO']); time.sleep(30)"
    first = Component("first", [sys.executable, "-c", script, str(marker)], tmp_path / "first.log",
                      env={"WHO": "first"}, ready=marker.exists, ready_timeout=30)
    never = Component("never", [sys.executable, "-c", "import time; time.sleep(30)"], tmp_path / "never.log",
                      ready=lambda: False, ready_timeout=1)
    late = Component("late", [sys.executable, "-c", "import time; time.sleep(30)"], tmp_path / "late.log")
    out = io.StringIO()
    code = Supervisor([first, never, late], {"PATH": "/usr/bin:/bin"}, stop_timeout=5, poll_interval=0.1,
                      out=out).run()
    text = out.getvalue()
    assert code == COMPONENT_DIED
    assert marker.read_text() == "first" and "first is ready" in text
    assert "FAILED: component never" in text and "not ready after 1s" in text
    assert "because never did not get ready" in text
    assert late.process is None, "nothing starts after a component that did not get ready"
    assert first.process.poll() is not None and never.process.poll() is not None


def test_ready_is_said_once_every_component_is_healthy_and_every_worker_answers(monkeypatch):
    healthy = {"metadatabase": {"status": "healthy"}, "scheduler": {"status": "healthy"}}

    class Reply:
        def json(self):
            return healthy

    monkeypatch.setattr(stack.requests, "get", lambda url, timeout: Reply())
    said, answering = [], [{"worker1@h"}, {"worker1@h", "other@h"}, {"worker1@h", "worker2@h"}]
    watch = stack.HealthWatch("http://127.0.0.1:1", said.append, every=0, workers=lambda: answering.pop(0),
                              expected=("worker1", "worker2"))
    watch()
    watch()
    assert said == [] and not watch.ready, "ready only once every expected worker answers"
    watch()
    watch()
    assert said == ["Airflow is ready: every component reports healthy (http://127.0.0.1:1/api/v2/monitor/health); "
                    "Celery workers answering: worker1@h, worker2@h"]
