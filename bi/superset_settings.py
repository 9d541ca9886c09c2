"""Superset settings shared by every instance of the project (no secret here).

Superset reads its configuration from the module ``SUPERSET_CONFIG_PATH`` names: the local instance's
``.local/superset/superset_config.py`` (written by ``python -m bi``, with its own SECRET_KEY and SQLite
metadata) and the compose image's ``superset_config.py`` (``bi/docker/superset_config.py``: the key and the
metadata database from the environment) both start with ``from superset_settings import *``, this module.

It runs inside Superset's own environment: standard library only.
"""

APP_NAME = "CCHC Quảng Nam"

# Numbers the Vietnamese way, as the report prints them: 1.234.567 and 95,3% (d3-format locale).
D3_FORMAT = {"decimal": ",", "thousands": ".", "grouping": [3], "currency": ["", " ₫"]}
CURRENCIES = ["VND"]

# The dashboards and charts carry their own time columns; a new chart starts on the whole history.
DEFAULT_TIME_FILTER = "No filter"

FEATURE_FLAGS = {"DASHBOARD_RBAC": False, "ALERT_REPORTS": False, "THUMBNAILS": False}

# The warehouse is PostgreSQL as the read-only role bi_reader; a query it cancels (statement_timeout of
# 60 s) shows as an error rather than hanging the page.
SQLLAB_TIMEOUT = 60
SUPERSET_WEBSERVER_TIMEOUT = 90
