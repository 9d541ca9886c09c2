"""Apache Superset as the project's BI tool: its own cached environment, a local instance, and the
dashboards (``DASHBOARDS`` of ``bi.__main__``) kept in the repository as Superset's export bundle.

    python -m bi serve       # make superset: install if needed, start on 127.0.0.1, import, print URL and login
    python -m bi import      # import bi/bundle/ into a running Superset (the local one, or SUPERSET_URL)
    python -m bi export      # the dashboards as edited in the UI, back into bi/bundle/
    python -m bi install     # only the environment

Modules: ``environment`` (the virtual environment, cached outside the working tree), ``instance`` (the local
instance under ``.local/superset/``), ``bundle`` (zip the bundle for the import, normalise an export),
``client`` (Superset's REST API), ``superset_setup`` and ``superset_settings`` (run inside Superset's own
Python). The settings come from ``pipeline.settings`` (``SupersetSettings``, ``PublicationTargets``), which the
compose stack's Superset image carries too; everything here but the bundle's YAML is standard library only:
the import also runs in that image. See bi/README.md.
"""

from pathlib import Path

BI_DIR = Path(__file__).resolve().parent
BUNDLE_DIR = BI_DIR / "bundle"
LOCK_FILE = BI_DIR / "requirements.txt"
# the dashboards' slugs (bi/bundle/dashboards/)
MORNING, DATA_QUALITY = "cchc-morning", "cchc-data-quality"
SERVICE_INDEX, CURRENT_UNITS = "cchc-service-index", "cchc-current-units"
HELD_UP = "cchc-held-up"


def dashboard_path(slug: str) -> str:
    """Where Superset serves the dashboard ``slug``."""
    return f"/superset/dashboard/{slug}/"
