"""The one exception type the warehouse package raises for problems a user can fix."""


class WarehouseError(Exception):
    """A setup or runtime problem with an actionable message (shown without a traceback)."""
