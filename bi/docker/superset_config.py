"""Superset's configuration in the compose stack's image (``SUPERSET_CONFIG_PATH``, bi/Dockerfile).

The settings every instance shares (``bi/superset_settings.py``), then what docker-compose.yml gives the
container from the env file: the SECRET_KEY (it signs sessions and encrypts the stored warehouse password;
keep it across upgrades) and the metadata database, ``superset`` in the metadata-db server.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from superset_settings import *  # noqa: F403

SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]
SQLALCHEMY_DATABASE_URI = os.environ["SUPERSET_METADATA_URL"]

# Published on 127.0.0.1 only: other machines reach it through the TLS reverse proxy the README recommends,
# whose X-Forwarded-* headers give the URLs Superset builds their scheme and host.
ENABLE_PROXY_FIX = True
