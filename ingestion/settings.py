"""Configuration of the pipeline, in one place: environment variables with documented defaults.

| variable | default | meaning |
|---|---|---|
| ``PROCEDURE_API_URL`` | (required) | base URL of the procedure-system API, e.g. ``http://127.0.0.1:8800/api/v1`` |
| ``PROCEDURE_API_TOKEN`` | (required) | its bearer token |
| ``PROCEDURE_API_PAGE_SIZE`` | ``1000`` | ``limit`` of each page (1..1000) |
| ``PROCEDURE_API_CONNECT_TIMEOUT`` / ``PROCEDURE_API_READ_TIMEOUT`` | ``10`` / ``120`` | seconds |
| ``PROCEDURE_API_MAX_RETRY_SECONDS`` | ``300`` | give up on a page after retrying it this long |
| ``PROCEDURE_API_PAGE_DEADLINE_SECONDS`` | ``180`` | one attempt at a page, at most |
| ``PROCEDURE_API_MAX_PAGE_BYTES`` | ``67108864`` (64 MiB) | a page body larger than this fails its window at once |
| ``PIPELINE_LOCK_WAIT_SECONDS`` | ``900`` | a run waits this long for another run's lease, then fails |
| ``PIPELINE_LOCK_TTL_SECONDS`` | ``21600`` | a lease not renewed for this long is free (its run was killed) |
| ``REFERENCE_MAX_MISSING_SHARE`` | ``0.2`` | a reference list missing more of its current records is refused |
| ``REFERENCE_ACCEPT_CHANGES`` | unset | lists whose large change is deliberate (``units,procedures`` or ``all``) |
| ``WAREHOUSE_URL`` | the private cluster | see ``warehouse.config``; the pipeline connects as the writer role |
| ``FINANCE_INBOX`` | ``.local/finance-inbox`` | folder of ``giai-ngan-*.xlsx`` workbooks |
| ``HISTORY_START`` | ``2023-01-01`` | first day of the first (historical) load, when no watermark exists |
| ``RUN_DATE`` | the simulator's clock, or today | the night to run: its data interval ends at 01:00 that day |
| ``REPORTS_DIR`` | ``reports`` | where reports, digests and Data Docs are written |
| ``GX_PROJECT_DIR`` | ``.local/gx`` | Great Expectations' project folder (its stores; the suites are code) |
| ``DQ_BAT03_SHARE`` | ``0.05`` | a required field absent from this share of a batch's records stops the run |
| ``DQ_FINDINGS_KEEP_DAYS`` | ``35`` | per-run findings older than this are pruned (``fct_dq_issue`` keeps history) |
| ``INGEST_LOOKBACK_MINUTES`` | ``180`` | each night re-reads this much before the watermark (late commits) |
| ``INGEST_MAX_WINDOW_RECORDS`` | ``200000`` | windows holding more records are halved (bounds memory) |
| ``INGEST_WORKERS`` | ``2`` | windows loaded in parallel (each its own connection) |
| ``INGEST_MAX_KEY_BYTES`` | ``1000`` | a record whose key is longer is quarantined (a B-tree entry holds ~2,700) |
| ``INGEST_PARTITION`` | ``none`` | ``none``: one stream; ``district``: one mapped task per unit under the province |

An Airflow connection ``procedure_api`` (``AIRFLOW_CONN_PROCEDURE_API``: host = base URL, password =
token), when defined, takes precedence over the two API variables inside Airflow tasks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOCAL_TZ = "Asia/Ho_Chi_Minh"
RUN_HOUR = time(1, 0)  # the nightly data interval ends at 01:00 local time


@dataclass(frozen=True)
class Settings:
    """Everything the ingestion stage needs; build with ``Settings.from_env()``."""

    api_url: str | None
    api_token: str | None
    warehouse_url: str
    finance_inbox: Path
    history_start: date
    reports_dir: Path
    gx_dir: Path = PROJECT_ROOT / ".local" / "gx"
    findings_keep_days: int = 35
    bat03_share: float = 0.05
    page_size: int = 1000
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    max_retry_seconds: float = 300.0
    page_deadline: float = 180.0
    max_page_bytes: int = 64 * 2**20
    reference_max_missing_share: float = 0.2
    reference_accept: frozenset[str] = frozenset()
    lock_wait_seconds: float = 900.0
    lock_ttl_seconds: float = 21600.0
    lookback: timedelta = timedelta(minutes=180)
    partition: str = "none"
    max_window_records: int = 200_000
    workers: int = 2
    max_key_bytes: int = 1000
    finance_max_file_bytes: int = 50 * 2**20  # the defaults of ingestion.finance
    finance_max_uncompressed_bytes: int = 200 * 2**20

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, warehouse_url: str | None = None) -> Settings:
        env = os.environ if env is None else env

        def get(name: str, default: str | None = None) -> str | None:
            value = env.get(name)
            return value if value not in (None, "") else default

        if warehouse_url is None:
            warehouse_url = get("WAREHOUSE_WRITER_URL")
        if warehouse_url is None:
            from warehouse import resolve_url

            warehouse_url = resolve_url("writer")
        partition = get("INGEST_PARTITION", "none")
        if partition not in ("none", "district"):
            raise ValueError(f"INGEST_PARTITION must be 'none' or 'district', not {partition!r}")
        page_size = int(get("PROCEDURE_API_PAGE_SIZE", "1000"))
        finance_max_file_bytes = int(get("FINANCE_MAX_FILE_BYTES", str(cls.finance_max_file_bytes)))
        finance_max_uncompressed_bytes = int(
            get("FINANCE_MAX_UNCOMPRESSED_BYTES", str(cls.finance_max_uncompressed_bytes))
        )
        if min(finance_max_file_bytes, finance_max_uncompressed_bytes) < 1:
            raise ValueError("FINANCE_MAX_FILE_BYTES and FINANCE_MAX_UNCOMPRESSED_BYTES must be positive byte counts")
        if not 1 <= page_size <= 1000:
            raise ValueError("PROCEDURE_API_PAGE_SIZE must be in 1..1000")
        return cls(
            api_url=get("PROCEDURE_API_URL"),
            api_token=get("PROCEDURE_API_TOKEN"),
            warehouse_url=warehouse_url,
            finance_inbox=Path(get("FINANCE_INBOX", str(PROJECT_ROOT / ".local" / "finance-inbox"))),
            history_start=date.fromisoformat(get("HISTORY_START", "2023-01-01")),
            reports_dir=Path(get("REPORTS_DIR", str(PROJECT_ROOT / "reports"))),
            gx_dir=Path(get("GX_PROJECT_DIR", str(PROJECT_ROOT / ".local" / "gx"))),
            findings_keep_days=int(get("DQ_FINDINGS_KEEP_DAYS", "35")),
            bat03_share=float(get("DQ_BAT03_SHARE", "0.05")),
            page_size=page_size,
            connect_timeout=float(get("PROCEDURE_API_CONNECT_TIMEOUT", "10")),
            read_timeout=float(get("PROCEDURE_API_READ_TIMEOUT", "120")),
            max_retry_seconds=float(get("PROCEDURE_API_MAX_RETRY_SECONDS", "300")),
            page_deadline=float(get("PROCEDURE_API_PAGE_DEADLINE_SECONDS", "180")),
            max_page_bytes=int(get("PROCEDURE_API_MAX_PAGE_BYTES", str(64 * 2**20))),
            reference_max_missing_share=float(get("REFERENCE_MAX_MISSING_SHARE", "0.2")),
            reference_accept=reference_sources(get("REFERENCE_ACCEPT_CHANGES", "")),
            lock_wait_seconds=float(get("PIPELINE_LOCK_WAIT_SECONDS", "900")),
            lock_ttl_seconds=float(get("PIPELINE_LOCK_TTL_SECONDS", "21600")),
            lookback=timedelta(minutes=float(get("INGEST_LOOKBACK_MINUTES", "180"))),
            partition=partition,
            max_window_records=int(get("INGEST_MAX_WINDOW_RECORDS", "200000")),
            workers=max(1, int(get("INGEST_WORKERS", "2"))),
            max_key_bytes=int(get("INGEST_MAX_KEY_BYTES", "1000")),
            finance_max_file_bytes=finance_max_file_bytes,
            finance_max_uncompressed_bytes=finance_max_uncompressed_bytes,
        )

    def with_api(self, url: str | None, token: str | None) -> Settings:
        """The same settings with another API endpoint (e.g. from an Airflow connection)."""
        return replace(self, api_url=url or self.api_url, api_token=token or self.api_token)


def reference_sources(value: str) -> frozenset[str]:
    names = {v.strip().lower() for v in value.split(",") if v.strip()}
    known = {"units", "procedures", "delegations"}
    if "all" in names:
        return frozenset(known)
    unknown = names - known
    if unknown:
        raise ValueError(f"REFERENCE_ACCEPT_CHANGES: unknown list(s) {', '.join(sorted(unknown))} "
                         "(units, procedures, delegations or all)")
    return frozenset(names)


def interval_end_for(run_date: date) -> datetime:
    """The local (naive) end of the nightly data interval of ``run_date``: 01:00 that day."""
    return datetime.combine(run_date, RUN_HOUR)
