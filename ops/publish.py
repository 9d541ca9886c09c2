"""What the DAGs publish after the marts: the run's report and summary, and the monthly publication.

``nightly_report(run_id, as_of)``: the self-contained HTML report (``<REPORTS_DIR>/report/``) and the
terminal summary, after every nightly run. ``publish_due_month(month, force)``: the monthly publication
(công khai) of ``month`` (``YYYY-MM``), by default the latest complete month before the latest successful
run's as-of date, unless it is published already. The work itself is ``publication/``.

A month is published when both of its files exist under their final names, ``cong-khai-YYYY-MM.html`` and
``cong-khai-YYYY-MM.xlsx``. Each is written under a hidden temporary name and renamed only once both are
complete (``publication.monthly``), so a final name always holds a whole file; a lone file (a crash
between the two renames, someone deleting one) or a leftover temporary file does not count, and the month
is written again, both files, on the next run. No marker file: the folder holds only what is published.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import psycopg

from pipeline.settings import Settings, current


def nightly_report(run_id: str, as_of: datetime, settings: Settings | None = None) -> dict:
    from publication.report import read_figures, write_figures
    from publication.summary import build_summary

    settings = current(settings)
    figures = read_figures(settings.warehouse_url, as_of.date())
    path = write_figures(figures, settings.reports_dir / "report")
    # the open data-quality issues are counted once (a pass over every open finding), for both
    return {"report": str(path), "summary": build_summary(settings.warehouse_url, run_id, dq=figures["dq"])}


def due_month(conn: psycopg.Connection) -> date | None:
    """The latest complete month: the month before the marts' as-of date (the latest nightly build's, as
    recorded in ``fct_pending_overdue``; the asset event that triggers the monthly DAG comes before the
    run is marked successful, so the run log would lag a night)."""
    as_of = conn.execute("SELECT max(as_of_date) FROM marts.fct_pending_overdue").fetchone()[0]
    if as_of is None:
        as_of = conn.execute("SELECT max(interval_end)::date FROM audit.pipeline_runs "
                             "WHERE status IN ('success', 'incomplete')").fetchone()[0]
    if as_of is None:
        return None
    first = as_of.replace(day=1)
    return first.replace(year=first.year - 1, month=12) if first.month == 1 else first.replace(month=first.month - 1)


def publication_dir(settings: Settings) -> Path:
    return settings.reports_dir / "cong-khai"


def published_files(out_dir: Path, month: date) -> list[Path]:
    """Both files of ``month``'s publication when both exist (the month is published), else ``[]``."""
    from publication.monthly import publication_paths

    paths = publication_paths(out_dir, month)
    # an empty file is no page and no workbook, whatever wrote it
    return list(paths) if all(p.is_file() and p.stat().st_size > 0 for p in paths) else []


def publish_due_month(month: str | None = None, force: bool = False, settings: Settings | None = None) -> dict:
    """Publish ``month`` (``YYYY-MM``; default the due month, see ``due_month``) unless it is published
    already (``published_files``) or ``force``; returns what was written, or why nothing was."""
    from publication.monthly import write_publication

    settings = current(settings)
    if month:
        target = date.fromisoformat(f"{month}-01")
    else:
        with psycopg.connect(settings.warehouse_url) as conn:
            target = due_month(conn)
        if target is None:
            return {"published": [], "reason": "no successful run yet"}
    out_dir = publication_dir(settings)
    existing = published_files(out_dir, target)
    if existing and not force:
        return {"month": f"{target:%Y-%m}", "published": [], "already": [str(p) for p in existing]}
    try:
        paths = write_publication(settings.warehouse_url, target, out_dir)
    except LookupError as exc:  # no ranking for that month (e.g. no complete month loaded yet)
        if month:
            raise
        return {"month": f"{target:%Y-%m}", "published": [], "reason": str(exc)}
    return {"month": f"{target:%Y-%m}", "published": [str(p) for p in paths]}
