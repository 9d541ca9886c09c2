"""Superset's metadata database and its admin, in one process of Superset's own Python.

    python bi/superset_setup.py migrate    # `superset db upgrade` + `superset init`: schema, roles, permissions
    python bi/superset_setup.py admin      # create the admin, or set its password (idempotent)
    python bi/superset_setup.py setup      # both (the compose service superset-init)

It runs inside Superset's environment (the cached one ``python -m bi install`` makes, or the compose image),
never the project's: it imports ``superset``, and no project module. Superset reads its configuration from
``SUPERSET_CONFIG_PATH``. The admin comes from the environment its caller prepares — ``python -m bi``
(``bi.instance.setup_env``, from the settings it read through ``pipeline.settings``) or the compose file's
``superset-init`` service (from the env file): ``SUPERSET_ADMIN_USERNAME`` and ``SUPERSET_ADMIN_PASSWORD``
(both required), ``SUPERSET_ADMIN_EMAIL`` (default ``<username>@localhost``) — so that the password is on no
command line (``superset fab create-admin --password`` would put it there).

Doing the steps in one process pays Superset's start-up (about 10 s of imports and app creation) once
rather than once per ``superset`` command.
"""

from __future__ import annotations

import os
import sys

ADMIN_ROLE = "Admin"


def migrate(app) -> None:
    """Bring the metadata schema to this Superset's head and refresh roles and permissions."""
    from flask_migrate import upgrade
    from superset import appbuilder, db, security_manager

    with app.app_context():
        upgrade()
        appbuilder.add_permissions(update_perms=True)
        security_manager.sync_role_definitions()
        db.session.commit()
    print("superset-setup: metadata migrated, roles and permissions synced", flush=True)


def admin_from(env) -> tuple[str, str, str]:
    """(username, password, e-mail) of the admin, from the environment the caller prepared."""
    username, password = env.get("SUPERSET_ADMIN_USERNAME"), env.get("SUPERSET_ADMIN_PASSWORD")
    if not username or not password:
        raise SystemExit("superset-setup: set SUPERSET_ADMIN_USERNAME and SUPERSET_ADMIN_PASSWORD")
    return username, password, env.get("SUPERSET_ADMIN_EMAIL") or f"{username}@localhost"


def ensure_admin(app, username: str, password: str, email: str) -> str:
    """Create the admin user, or reset its password and role; returns what it did."""
    from superset import db, security_manager

    with app.app_context():
        role = security_manager.find_role(ADMIN_ROLE)
        if role is None:
            raise SystemExit("superset-setup: no Admin role: run `migrate` first")
        user = security_manager.find_user(username=username)
        if user is None:
            if security_manager.add_user(username, "Admin", "CCHC", email, role, password) is None:
                raise SystemExit(f"superset-setup: could not create the admin {username!r} (e-mail {email} taken?)")
            action = f"created the admin {username!r}"
        else:
            security_manager.reset_password(user.id, password)
            user = security_manager.find_user(username=username)
            user.active = True
            if role not in user.roles:
                user.roles.append(role)
            security_manager.update_user(user)
            action = f"updated the admin {username!r}"
        db.session.commit()
    print(f"superset-setup: {action}", flush=True)
    return action


def main(argv: list[str]) -> int:
    """Run the steps named by ``argv[0]``: migrate, admin or setup."""
    steps = {"migrate": ("migrate",), "admin": ("admin",), "setup": ("migrate", "admin")}
    if len(argv) != 1 or argv[0] not in steps:
        print(__doc__.strip().splitlines()[0] + "\nusage: superset_setup.py migrate|admin|setup", file=sys.stderr)
        return 2
    if not os.environ.get("SUPERSET_CONFIG_PATH"):
        print("superset-setup: set SUPERSET_CONFIG_PATH to the instance's superset_config.py", file=sys.stderr)
        return 2
    admin = admin_from(os.environ) if "admin" in steps[argv[0]] else None
    from superset.app import create_app

    app = create_app()
    for step in steps[argv[0]]:
        migrate(app) if step == "migrate" else ensure_admin(app, *admin)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
