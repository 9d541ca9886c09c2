"""Command line: ``python -m bi serve|import|export|install``.

    python -m bi serve      # make superset: environment, instance, import, server in the foreground
    python -m bi import     # import bi/bundle/ into the running local Superset, or into SUPERSET_URL
    python -m bi export     # write the dashboards, as they are in that Superset, back into bi/bundle/
    python -m bi install    # build (or find) the cached environment and print where it is

The variables (bi/README.md), read by ``pipeline.settings.SupersetSettings``: ``SUPERSET_PORT`` (8088),
``SUPERSET_ADMIN_USERNAME`` and ``SUPERSET_ADMIN_PASSWORD`` (the local admin; generated once when unset;
required with ``SUPERSET_URL``), ``SUPERSET_URL`` (another Superset to import into or export from, e.g. the
compose stack's), ``BI_READER_URL`` (the warehouse as bi_reader, as Superset reaches it; default: ``python
-m warehouse url --role bi_reader``), ``SUPERSET_VENV`` (another place for the environment). The import also
runs in the compose stack's Superset image, which carries ``bi/`` and ``pipeline/settings.py`` (standard
library only) for it. No password is taken from the command line.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
from urllib.parse import urlsplit

from bi import BUNDLE_DIR, CURRENT_UNITS, DATA_QUALITY, HELD_UP, MORNING, SERVICE_INDEX, dashboard_path
from bi.bundle import build_zip, write_export
from bi.client import SupersetAPIError, SupersetClient
from bi.environment import EnvironmentUnavailable, ensure_environment
from bi.instance import DEFAULT_HOME, FIRST_ADMIN, LocalInstance, SupersetError, running_url
from pipeline.settings import SupersetSettings

DASHBOARDS = {MORNING: "the morning dashboard", DATA_QUALITY: "data quality",
              SERVICE_INDEX: "the service index", CURRENT_UNITS: "today's units",
              HELD_UP: "where dossiers are held up"}


def reader_url(settings: SupersetSettings) -> str:
    """The warehouse as bi_reader: ``BI_READER_URL``, else the project's warehouse (``python -m warehouse url``)."""
    if settings.reader_url:
        return settings.reader_url
    from warehouse.config import resolve_url  # the project's environment only (not in the Superset image)
    from warehouse.errors import WarehouseError

    try:
        return resolve_url("bi_reader")
    except (WarehouseError, OSError) as exc:
        raise SupersetError(f"cannot tell the warehouse's bi_reader URL ({exc}): run `make warehouse-up` "
                            "(and `make run` for the marts) or set BI_READER_URL") from None


def reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 5432), timeout=2):
            return True
    except OSError:
        return False


def target(settings: SupersetSettings) -> tuple[str, str, str]:
    """(URL, username, password) of the Superset to talk to: ``SUPERSET_URL`` or the running local instance."""
    if settings.url:
        if not settings.admin_password:
            raise SupersetError("SUPERSET_URL is set: set SUPERSET_ADMIN_USERNAME and SUPERSET_ADMIN_PASSWORD too")
        return settings.url, settings.admin_username or FIRST_ADMIN, settings.admin_password
    url = running_url(DEFAULT_HOME)
    if url is None:
        raise SupersetError("no local Superset is running: start it with `make superset` (or set SUPERSET_URL)")
    stored = LocalInstance.admin_from(DEFAULT_HOME)
    return url, *stored


def import_bundle(client: SupersetClient, reader: str) -> None:
    """Import ``bi/bundle/`` with the warehouse connection pointed at ``reader``, its password sent apart."""
    bundle, passwords = build_zip(reader)
    client.import_assets(bundle, passwords)
    print(f"bi: imported {BUNDLE_DIR.relative_to(BUNDLE_DIR.parent.parent)} into {client.url}", flush=True)


def cmd_install(args) -> int:
    print(ensure_environment().path)
    return 0


def cmd_import(args) -> int:
    settings = SupersetSettings.from_env()
    url, username, password = target(settings)
    client = SupersetClient(url)
    if args.wait:
        client.wait_healthy(args.wait)
    import_bundle(client.login(username, password), reader_url(settings))
    return 0


def cmd_export(args) -> int:
    url, username, password = target(SupersetSettings.from_env())
    client = SupersetClient(url).login(username, password)
    ids = [d["id"] for d in client.dashboards() if d["slug"] in DASHBOARDS]
    if len(ids) != len(DASHBOARDS):
        raise SupersetError(f"{url} does not have every dashboard ({', '.join(DASHBOARDS)}): import them first")
    written = write_export(client.export_dashboards(ids))
    print(f"bi: wrote {len(written)} files into {BUNDLE_DIR}; review them with `git diff bi/bundle`")
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def cmd_serve(args) -> int:
    settings = SupersetSettings.from_env()
    if running_url(DEFAULT_HOME):
        raise SupersetError(f"a local Superset already runs at {running_url(DEFAULT_HOME)}")
    reader = reader_url(settings)
    instance = LocalInstance(ensure_environment(settings=settings), home=DEFAULT_HOME, port=settings.port)
    instance.prepare()
    instance.start()
    try:
        username, password = instance.admin(settings)
        import_bundle(SupersetClient(instance.url).login(username, password), reader)
        if not reachable(reader):
            print("bi: warning: the warehouse does not answer at that address: the charts stay empty until it "
                  "runs (make warehouse-up; make run builds the marts)", file=sys.stderr)
        links = "".join(f"\n  {what}: {instance.url}{dashboard_path(slug)}" for slug, what in DASHBOARDS.items())
        print(f"\nSuperset:{links}\n"
              f"login: {username} / {password}   (kept in {instance.home / 'admin.json'})\n"
              "Ctrl-C stops it.", flush=True)
        signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it as Ctrl-C does (never wait in the handler)
        return instance.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        instance.stop()


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m bi", description="Superset, the project's BI tool, with the "
                                     "morning, data-quality, service-index and today's-units dashboards "
                                     "(bi/README.md).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("serve", help="install if needed, start Superset on 127.0.0.1, import the dashboards, "
                        "print the URL and login; runs in the foreground").set_defaults(run=cmd_serve)
    imp = commands.add_parser("import", help="import bi/bundle/ into the running local Superset or SUPERSET_URL")
    imp.add_argument("--wait", type=float, default=0, metavar="SECONDS",
                     help="first wait this long for Superset to answer (the compose stack)")
    imp.set_defaults(run=cmd_import)
    commands.add_parser("export", help="write the dashboards from that Superset back into bi/bundle/"
                        ).set_defaults(run=cmd_export)
    commands.add_parser("install", help="build or find Superset's cached environment, print its folder"
                        ).set_defaults(run=cmd_install)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (SupersetError, SupersetAPIError, EnvironmentUnavailable) as exc:
        print(f"bi: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
