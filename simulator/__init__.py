"""Procedure-system simulator: a deterministic Quảng Nam province serving the DVCQG dossier contract.

See ``simulator/README.md`` for the scenario model and ``../shared/spec/procedure-api.md`` for the
contract it serves.
"""
