"""Failure alerts of the pipeline's Airflow tasks: a task-level ``on_failure_callback``.

``notify_task_failure(context)`` is called by Airflow with the task's context when a task fails for
good (after its last retry). It

1. always appends one JSON line to ``<REPORTS_DIR>/alerts.log`` (``event``, ``at`` (UTC), ``dag_id``,
   ``task_id``, ``map_index``, ``run_id``, ``try_number``, ``max_tries``, ``logical_date``,
   ``data_interval_start``/``_end``, ``exception``);
2. posts it to a Slack incoming webhook when ``ALERT_SLACK_WEBHOOK_URL`` is set;
3. e-mails it over SMTP when ``ALERT_SMTP_HOST`` and ``ALERT_EMAIL_TO`` are set.

It never raises: each channel's error is logged (and the file's, written to stderr), so a broken
notifier cannot mask the task's own failure.

| variable | default | meaning |
|---|---|---|
| ``REPORTS_DIR`` | ``<project>/reports`` | ``alerts.log`` is written here |
| ``ALERT_SLACK_WEBHOOK_URL`` | unset: no Slack | Slack incoming-webhook URL (secret) |
| ``ALERT_SMTP_HOST`` | unset: no e-mail | SMTP server |
| ``ALERT_SMTP_PORT`` | ``25`` | its port; ``465`` means implicit TLS, otherwise STARTTLS is used when offered |
| ``ALERT_SMTP_USER`` / ``ALERT_SMTP_PASSWORD`` | unset: no login | SMTP credentials (secret) |
| ``ALERT_EMAIL_FROM`` | ``ALERT_SMTP_USER``, else ``cchc-pipeline@localhost`` | sender |
| ``ALERT_EMAIL_TO`` | unset: no e-mail | recipients, comma-separated |
| ``ALERT_TIMEOUT_SECONDS`` | ``10`` | network timeout of each channel |

Only the standard library is imported at module level (``requests`` when a webhook is configured),
so DAG files can reference this module without slowing their parsing.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ALERTS_FILE = "alerts.log"

log = logging.getLogger(__name__)


def _get(env: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    value = env.get(name)
    return value if value not in (None, "") else default


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def build_alert(context: Mapping[str, Any]) -> dict[str, Any]:
    """The alert record of a failed task, from its Airflow context (missing keys become ``None``)."""
    ti = context.get("ti") or context.get("task_instance")
    dag = context.get("dag")
    exception = context.get("exception")
    return {
        "event": "task_failed",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "dag_id": getattr(ti, "dag_id", None) or getattr(dag, "dag_id", None),
        "task_id": getattr(ti, "task_id", None),
        "map_index": getattr(ti, "map_index", None),
        "run_id": context.get("run_id") or getattr(ti, "run_id", None),
        "try_number": getattr(ti, "try_number", None),
        "max_tries": getattr(ti, "max_tries", None),
        "logical_date": _iso(context.get("logical_date")),
        "data_interval_start": _iso(context.get("data_interval_start")),
        "data_interval_end": _iso(context.get("data_interval_end")),
        "exception": None if exception is None else f"{type(exception).__name__}: {exception}",
    }


def format_message(alert: Mapping[str, Any]) -> str:
    """One human-readable line (Slack text, e-mail subject and first line)."""
    where = f"{alert.get('dag_id')}.{alert.get('task_id')}"
    if alert.get("map_index") not in (None, -1):
        where += f"[{alert['map_index']}]"
    return (f"Airflow task failed: {where} (run {alert.get('run_id')}, try {alert.get('try_number')}): "
            f"{alert.get('exception')}")


def reports_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(_get(env, "REPORTS_DIR", str(PROJECT_ROOT / "reports")))


def write_alert(alert: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Path:
    """Append ``alert`` as one JSON line to ``<REPORTS_DIR>/alerts.log``; returns the file."""
    path = reports_dir(env) / ALERTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(alert, ensure_ascii=False, default=str) + "\n")
    return path


def send_slack(alert: Mapping[str, Any], webhook_url: str, timeout: float = 10.0) -> None:
    """Post the alert to a Slack incoming webhook; raises on a network error or a non-2xx answer."""
    details = json.dumps(alert, ensure_ascii=False, indent=1, default=str)
    send_slack_text(f"{format_message(alert)}\n```{details}```", webhook_url, timeout)


def send_slack_text(text: str, webhook_url: str, timeout: float = 10.0) -> None:
    """Post ``text`` to a Slack incoming webhook; raises on a network error or a non-2xx answer."""
    import requests

    response = requests.post(webhook_url, json={"text": text}, timeout=timeout)
    response.raise_for_status()


def send_email(alert: Mapping[str, Any], env: Mapping[str, str], timeout: float = 10.0) -> None:
    """E-mail the alert over SMTP (``ALERT_SMTP_*``, ``ALERT_EMAIL_*``); raises on failure."""
    send_email_text(format_message(alert), format_message(alert) + "\n\n"
                    + json.dumps(alert, ensure_ascii=False, indent=2, default=str) + "\n", env, timeout)


def send_email_text(subject: str, body: str, env: Mapping[str, str], timeout: float = 10.0) -> None:
    """E-mail ``body`` over SMTP (``ALERT_SMTP_*``, ``ALERT_EMAIL_*``); raises on failure."""
    import smtplib

    host = _get(env, "ALERT_SMTP_HOST")
    port = int(_get(env, "ALERT_SMTP_PORT", "25"))
    user, password = _get(env, "ALERT_SMTP_USER"), _get(env, "ALERT_SMTP_PASSWORD")
    recipients = [a.strip() for a in (_get(env, "ALERT_EMAIL_TO") or "").split(",") if a.strip()]
    message = EmailMessage()
    message["Subject"] = subject[:200]
    message["From"] = _get(env, "ALERT_EMAIL_FROM") or user or "cchc-pipeline@localhost"
    message["To"] = ", ".join(recipients)
    message.set_content(body)
    if port == 465:
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout)
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    with smtp:
        if port != 465:
            smtp.ehlo()
            if smtp.has_extn("starttls"):
                smtp.starttls()
                smtp.ehlo()
        if user:
            smtp.login(user, password or "")
        smtp.send_message(message, to_addrs=recipients)


def _timeout(env: Mapping[str, str]) -> float:
    try:
        return float(_get(env, "ALERT_TIMEOUT_SECONDS", "10"))
    except ValueError:
        return 10.0


def _channels(env: Mapping[str, str], slack, email) -> dict[str, str]:
    """Run the Slack and e-mail senders that are configured; never raises."""
    outcome: dict[str, str] = {}
    webhook = _get(env, "ALERT_SLACK_WEBHOOK_URL")
    if webhook:
        try:
            slack(webhook)
            outcome["slack"] = "ok"
        except Exception as exc:
            # the exception's text may contain the (secret) webhook URL: keep only its type and status
            status = getattr(getattr(exc, "response", None), "status_code", None)
            outcome["slack"] = f"error: {type(exc).__name__}" + (f" (HTTP {status})" if status else "")
            log.warning("Slack message failed: %s", outcome["slack"])
    else:
        outcome["slack"] = "skipped"
    if _get(env, "ALERT_SMTP_HOST") and _get(env, "ALERT_EMAIL_TO"):
        try:
            email()
            outcome["email"] = "ok"
        except Exception as exc:
            outcome["email"] = f"error: {exc!r}"
            log.warning("E-mail failed: %r", exc)
    else:
        outcome["email"] = "skipped"
    return outcome


def deliver_message(subject: str, body: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Send a message (e.g. the data-quality digest) to every configured channel; never raises. Slack gets
    the body as a code block under the subject. Returns each channel's outcome."""
    env = os.environ if env is None else env
    timeout = _timeout(env)
    return _channels(env, lambda url: send_slack_text(f"*{subject}*\n```{body}```", url, timeout),
                     lambda: send_email_text(subject, body, env, timeout))


def deliver(alert: Mapping[str, Any], env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Send ``alert`` to every configured channel; never raises. Returns each channel's outcome
    (``"ok"``, ``"skipped"`` or ``"error: ..."``)."""
    env = os.environ if env is None else env
    outcome: dict[str, str] = {}
    try:
        outcome["file"] = f"ok: {write_alert(alert, env)}"
    except Exception as exc:  # the file is the last resort: say so on stderr
        outcome["file"] = f"error: {exc!r}"
        print(f"ingestion.notify: could not write the alert file: {exc!r}\n{format_message(alert)}",
              file=sys.stderr)
    timeout = _timeout(env)
    outcome.update(_channels(env, lambda url: send_slack(alert, url, timeout),
                             lambda: send_email(alert, env, timeout)))
    return outcome


def notify_task_failure(context: Mapping[str, Any]) -> None:
    """Task ``on_failure_callback``: record and send the failure; never raises."""
    try:
        try:
            alert = build_alert(context)
        except Exception as exc:
            alert = {"event": "task_failed", "at": datetime.now(UTC).isoformat(timespec="seconds"),
                     "exception": None, "context_error": repr(exc)}
        outcome = deliver(alert)
        log.info("Failure alert for %s.%s: %s", alert.get("dag_id"), alert.get("task_id"), outcome)
    except Exception:  # pragma: no cover - belt and braces: nothing may escape a failure callback
        log.exception("ingestion.notify failed")
