"""Command line: ``python -m warehouse up|down|status|bootstrap|url|psql``.

Progress goes to stderr; results (the summary, a URL) go to stdout so scripts can use
``export WAREHOUSE_WRITER_URL="$(python -m warehouse url --role writer)"``. Never hand such a URL
to a program as an argument (``psql "$(… url)"``): arguments are visible to every user in ``ps``.
``python -m warehouse psql [--role writer|admin|bi_reader] [psql options]`` runs psql with the
password in its environment instead (:mod:`warehouse.psql`). Configuration: see
:mod:`warehouse.config`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from urllib.parse import urlsplit

import psycopg

from warehouse.bootstrap import bootstrap, connect
from warehouse.cluster import PrivateCluster
from warehouse.config import ROLES, Settings, mask_url, resolve_url
from warehouse.errors import WarehouseError
from warehouse.psql import libpq_command

log = logging.getLogger("warehouse")

# Exit status of `status` when the server is not running, as pg_ctl uses.
NOT_RUNNING = 3


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the command and return the process exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m warehouse",
        description="Run and bootstrap the project's PostgreSQL warehouse.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("up", help="init if needed, start, bootstrap, print connection details")
    commands.add_parser("down", help="stop the private cluster")
    commands.add_parser("status", help=f"show whether the warehouse runs (exit {NOT_RUNNING} if not)")
    commands.add_parser("bootstrap", help="create database, roles and schemas (idempotent)")
    url = commands.add_parser("url", help="print a full postgresql:// URL, password included")
    url.add_argument("--role", choices=ROLES, default="writer", help="default: writer")
    psql = commands.add_parser(
        "psql",
        help="run psql as a role, the password kept off its command line",
        description="Run psql on the warehouse database as --role; every other option goes to psql "
        "(e.g. -c 'SELECT 1', -f file.sql, -v ON_ERROR_STOP=1; put -- before options of psql that "
        "this command would take, such as -h).",
    )
    psql.add_argument("--role", choices=ROLES, default="writer", help="default: writer")
    # psql's own options pass through untouched: only the psql command accepts unknown arguments.
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "psql":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.psql_args = extra[1:] if extra[:1] == ["--"] else extra

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        settings = Settings.from_env()
        return HANDLERS[args.command](settings, args)
    except WarehouseError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except psycopg.OperationalError as exc:
        print(f"error: cannot use the warehouse database: {exc}", file=sys.stderr)
    except PermissionError as exc:
        # The data directory belongs to the PostgreSQL user (mode 0700).
        print(f"error: {exc}; run this command as root or as the data directory's owner", file=sys.stderr)
    return 1


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    """Start (private cluster) and bootstrap the warehouse, then describe it."""
    if settings.external:
        log.info("WAREHOUSE_URL is set: bootstrapping that external server, no private cluster")
    else:
        cluster = PrivateCluster.from_settings(settings)
        cluster.init()
        cluster.start()
    bootstrap(settings)
    print(describe(settings))
    return 0


def cmd_down(settings: Settings, args: argparse.Namespace) -> int:
    """Stop the private cluster (no-op when stopped or external)."""
    if settings.external:
        log.info("WAREHOUSE_URL is set: the external server is not managed here, nothing to stop")
    else:
        PrivateCluster.from_settings(settings).stop()
    return 0


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    """Print whether the warehouse is running; exit status 3 when it is not."""
    if settings.external:
        admin_url = resolve_url("admin", settings)
        try:
            with connect(admin_url) as conn:
                version = conn.execute("SHOW server_version").fetchone()[0]
        except psycopg.OperationalError as exc:
            print(f"external server not reachable: {exc}")
            return NOT_RUNNING
        print(f"external server reachable at {mask_url(admin_url)} (PostgreSQL {version})")
        return 0
    status = PrivateCluster.from_settings(settings).status()
    if not status.initialized:
        print(f"not initialised (no cluster in {status.data_dir}); run `python -m warehouse up`")
        return NOT_RUNNING
    if not status.running:
        print(f"stopped (data dir {status.data_dir})")
        return NOT_RUNNING
    print(f"running (pid {status.pid}) on {status.host}:{status.port}, log {status.log_file}")
    return 0


def cmd_bootstrap(settings: Settings, args: argparse.Namespace) -> int:
    """Bootstrap the running warehouse."""
    if not settings.external and not PrivateCluster.from_settings(settings).is_running():
        raise WarehouseError("the private cluster is not running; use `python -m warehouse up`")
    bootstrap(settings)
    return 0


def cmd_url(settings: Settings, args: argparse.Namespace) -> int:
    """Print the full URL of one role, for scripts."""
    print(resolve_url(args.role, settings))
    return 0


def cmd_psql(settings: Settings, args: argparse.Namespace) -> int:
    """Replace this process by psql connected as ``--role``; its exit status is psql's."""
    command, env = libpq_command("psql", resolve_url(args.role, settings), args.psql_args, pg_bin=settings.pg_bin)
    sys.stdout.flush()
    sys.stderr.flush()
    # exec rather than a child: psql owns the terminal and its signals (Ctrl-C cancels a query), and no
    # Python process lingers beside it.
    os.execve(command[0], command, env)
    return 0  # not reached


def describe(settings: Settings) -> str:
    """Human-readable connection details with passwords masked."""
    urls = {role: resolve_url(role, settings) for role in ROLES}
    parts = urlsplit(urls["admin"])
    kind = "external server (WAREHOUSE_URL)" if settings.external else "private cluster"
    lines = [
        f"Warehouse ready: {kind}",
        f"  host         {parts.hostname}",
        f"  port         {parts.port or 5432}",
        f"  database     {settings.target_database}",
    ]
    if not settings.external:
        lines += [
            f"  data dir     {settings.data_dir}",
            f"  server log   {settings.data_dir / 'server.log'}",
        ]
    lines += [
        f"  credentials  {settings.credentials_file} (mode 0600)",
        "  roles",
        *(f"    {role:<10} {mask_url(url)}" for role, url in urls.items()),
        "psql:                 python -m warehouse psql --role writer|bi_reader|admin",
        "Full URL for scripts: python -m warehouse url --role writer|bi_reader|admin",
    ]
    return "\n".join(lines)


HANDLERS = {
    "up": cmd_up,
    "down": cmd_down,
    "status": cmd_status,
    "bootstrap": cmd_bootstrap,
    "url": cmd_url,
    "psql": cmd_psql,
}
