"""What the warehouse publishes from its marts: the terminal summary of a night (``summary``), the
self-contained HTML monitoring report (``report``) and the monthly publication of the ranking, HTML and
XLSX (``monthly``). See ``publication/README.md``."""
