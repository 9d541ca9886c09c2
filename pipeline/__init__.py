"""What every stage of the pipeline shares: the settings, run bookkeeping, the warehouse's run lease, alerts,
Airflow glue, atomic file writes and the night without Airflow (docs/architecture.md). Nothing is imported
here: Superset's image carries this file and ``settings.py`` alone."""
