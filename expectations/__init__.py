"""Great Expectations suites and the validation that turns them into per-dossier findings in ``dq``."""
