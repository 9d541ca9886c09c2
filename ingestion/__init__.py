"""Ingestion: the procedure-system API client and the loaders that land every source in ``raw``."""
