"""The project's PostgreSQL warehouse: a private cluster, its bootstrap and connection URLs.

Run ``python -m warehouse --help`` for the CLI; configuration is read from environment
variables documented in :mod:`warehouse.config`. Other packages import::

    from warehouse import resolve_urls   # {"admin": ..., "writer": ..., "bi_reader": ...}
"""

from warehouse.config import Settings, resolve_url, resolve_urls
from warehouse.errors import WarehouseError

__all__ = ["Settings", "WarehouseError", "resolve_url", "resolve_urls"]
