"""No password on a command line: a process's arguments are world-readable (``ps``, ``/proc/<pid>/cmdline``),
so the project's shell snippets, scripts, compose commands and subprocess calls pass passwords through the
environment, a file or standard input instead.

The scan reads the repository's documentation, Makefile, scripts, compose file and Python sources; its rules
are checked first against the forms they must catch (the ones this project used to have). The Airflow init
script runs for real against a stand-in ``airflow`` that records its arguments and reads the password the
way ``airflow users create`` does (``getpass``, twice).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.paths import PROJECT_ROOT as ROOT

# `$(python -m warehouse url …)`, the full URL with its password.
URL_SUBSTITUTION = re.compile(r"\$\([^()]*-m warehouse url[^)]*\)")
# ... is fine only as the value of a variable: `export NAME="$(…)"`, `NAME=$(…)`.
ASSIGNMENT_BEFORE = re.compile(r"(?:^|[\s;&|(])(?:export\s+)?[A-Za-z_][A-Za-z0-9_]*=[\"']?$")
SHELL_RULES = {
    "a password option with a value": re.compile(r"--(?:password|requirepass|pass)(?:[ =])\S"),
    "a URL with a password as a client's argument":
        re.compile(r"\b(?:psql|pg_dump|pg_dumpall|pg_restore|pgbench|redis-cli)\b[^|;&\n]*"
                   r"(?:postgres(?:ql)?|redis)://[^\s/@]*:[^\s@]+@"),
    "a password in SQL given with -c": re.compile(r"-c\s+\"[^\"]*\bPASSWORD\s+'"),
}
# A PostgreSQL client started from Python with a literal argv: it would need the URL, password and all, as an
# argument. warehouse.psql.libpq_command builds the argv with the password in the environment instead.
PYTHON_CLIENT_ARGV = re.compile(
    r"\[\s*[\"'](?:psql|pg_dump|pg_dumpall|pg_restore|pgbench|createdb|dropdb|vacuumdb)[\"']\s*,")


def shell_problems(text: str) -> list[str]:
    """What in ``text`` (shell, or prose with shell in it) would put a password on a command line."""
    problems = []
    logical = re.sub(r"\\\n\s*", " ", text)  # join continued lines
    for number, line in enumerate(logical.splitlines(), 1):
        if line.lstrip().startswith("#"):
            continue  # a shell comment (or a Markdown heading) runs nothing
        for match in URL_SUBSTITUTION.finditer(line):
            if not ASSIGNMENT_BEFORE.search(line[:match.start()]):
                problems.append(f"line {number}: a full URL as an argument: {line.strip()}")
        problems += [f"line {number}: {what}: {line.strip()}" for what, rule in SHELL_RULES.items()
                     if rule.search(line)]
    return problems


def python_problems(text: str) -> list[str]:
    """Literal argvs of PostgreSQL clients, and password options with a value, in Python source."""
    problems = [f"line {text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
                for m in PYTHON_CLIENT_ARGV.finditer(text)]
    problems += [p for p in shell_problems(text) if "password option" in p]
    return problems


def test_the_rules_catch_what_they_must_and_pass_the_fixed_forms():
    caught = [
        'psql "$(.venv/bin/python -m warehouse url --role admin)" -c "SELECT 1"',
        "(`psql \"$(.venv/bin/python -m warehouse url --role writer)\"`):",
        'psql "$(.venv/bin/python -m warehouse url --role admin)" \\\n  -c "ALTER SYSTEM SET work_mem = \'64MB\'"',
        "psql -h db -c \"CREATE ROLE airflow LOGIN PASSWORD 'AIRFLOW_DB_PASSWORD'\"",
        'airflow users create \\\n    --username admin \\\n    --password "${AIRFLOW_ADMIN_PASSWORD}" \\\n',
        'exec redis-server --appendonly yes --requirepass "$$REDIS_PASSWORD"',
        "pg_dump postgresql://pipeline:s3cret@127.0.0.1:55432/warehouse > dump.sql",
    ]
    for snippet in caught:
        assert shell_problems(snippet), snippet
    assert python_problems('subprocess.run(["psql", writer, "-q", "-c", "\\\\copy t FROM f"], check=True)')
    fixed = [
        "# Without --password the command asks for it twice",
        'export WAREHOUSE_WRITER_URL="$(.venv/bin/python -m warehouse url --role writer)"',
        "URL=$(python -m warehouse url --role bi_reader)",
        ".venv/bin/python -m warehouse psql --role admin -c \"ALTER SYSTEM SET work_mem = '64MB'\"",
        "CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';",
        "printf '%s\\n%s\\n' \"${AIRFLOW_ADMIN_PASSWORD}\" \"${AIRFLOW_ADMIN_PASSWORD}\" | airflow users create \\",
        "exec redis-server - --appendonly yes <<EOF\nrequirepass $$REDIS_PASSWORD\nEOF",
        'test: ["CMD-SHELL", "REDISCLI_AUTH=\\"$$REDIS_PASSWORD\\" redis-cli ping | grep -q PONG"]',
    ]
    for snippet in fixed:
        assert not shell_problems(snippet), snippet
    assert not python_problems('argv, env = libpq_command("psql", writer, ["-q", "-c", "SELECT 1"])')


def repository_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True)
    if listed.returncode == 0:
        return [ROOT / name for name in listed.stdout.splitlines() if (ROOT / name).is_file()]
    return [p for p in ROOT.rglob("*") if p.is_file() and not {".git", ".venv", ".local"} & set(p.parts)]


def test_no_password_reaches_a_command_line_anywhere_in_the_repository():
    files = repository_files()
    shell_like = [p for p in files if p.suffix in (".md", ".sh") or p.name in ("Makefile", "Dockerfile")
                  or p.name.startswith("Dockerfile.") or p.name == "docker-compose.yml"]
    python = [p for p in files if p.suffix == ".py" and p != Path(__file__).resolve()]
    assert ROOT / "README.md" in shell_like and ROOT / "deploy" / "airflow-init.sh" in shell_like
    assert ROOT / "benchmarks" / "ingest.py" in python
    problems = [f"{p.relative_to(ROOT)} {problem}" for p in shell_like for problem in shell_problems(p.read_text())]
    problems += [f"{p.relative_to(ROOT)} {problem}" for p in python for problem in python_problems(p.read_text())]
    # The compose file's commands as Compose runs them (lists of words, each a possible `sh -c` script).
    for name, service in yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"].items():
        for key in ("command", "entrypoint"):
            words = service.get(key) or []
            for problem in shell_problems(" ".join(words) if isinstance(words, list) else words):
                problems.append(f"docker-compose.yml {name}.{key}: {problem}")
        for problem in shell_problems(" ".join((service.get("healthcheck") or {}).get("test") or [])):
            problems.append(f"docker-compose.yml {name}.healthcheck: {problem}")
    assert not problems, "\n".join(problems)


# --- deploy/airflow-init.sh ---------------------------------------------------------------------------

FAKE_AIRFLOW = """#!{python}
# Stands in for the airflow CLI: records every call; `users create` asks for the password as Airflow's FAB
# provider does without --password (getpass, twice).
import getpass, json, os, sys
args = sys.argv[1:]
record = {{"argv": sys.argv}}
if args[:2] == ["users", "list"]:
    print("id  username  email")  # --output plain: columns separated by blanks
    if os.environ.get("FAKE_AIRFLOW_HAS_ADMIN"):
        print("1   " + os.environ["AIRFLOW_ADMIN_USERNAME"] + "  a@example.org")
if args[:2] == ["users", "create"]:
    record["passwords"] = [getpass.getpass("Password:"), getpass.getpass("Repeat for confirmation:")]
with open(os.environ["FAKE_AIRFLOW_LOG"], "a") as log:
    log.write(json.dumps(record) + "\\n")
"""


@pytest.mark.parametrize("has_admin", [False, True])
def test_airflow_init_gives_the_admin_password_on_stdin(tmp_path, has_admin):
    fake = tmp_path / "bin" / "airflow"
    fake.parent.mkdir()
    fake.write_text(FAKE_AIRFLOW.format(python=sys.executable))
    fake.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    password = "s3cret pw-with 'quotes' and $dollar"
    env = {"PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path),
           "AIRFLOW_ADMIN_USERNAME": "admin", "AIRFLOW_ADMIN_PASSWORD": password,
           "AIRFLOW_ADMIN_EMAIL": "data-team@example.org", "FAKE_AIRFLOW_LOG": str(log)}
    if has_admin:
        env["FAKE_AIRFLOW_HAS_ADMIN"] = "1"
    # A new session has no controlling terminal, as in a container started by `docker compose up`.
    proc = subprocess.run(["sh", str(ROOT / "deploy" / "airflow-init.sh")], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60, start_new_session=True)
    assert proc.returncode == 0, proc.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert [c["argv"][1:3] for c in calls] == [["db", "migrate"], ["users", "list"]] + \
        ([] if has_admin else [["users", "create"]])
    assert not [c["argv"] for c in calls if any(password in arg for arg in c["argv"])]
    if not has_admin:
        create = calls[-1]
        assert create["passwords"] == [password, password]
        argv = create["argv"]
        assert argv[argv.index("--username") + 1] == "admin" and argv[argv.index("--role") + 1] == "Admin"
    assert password not in proc.stdout + proc.stderr
