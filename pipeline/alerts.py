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
| ``ALERT_SMTP_PORT`` | ``25`` | its port; ``465`` means implicit TLS, any other port STARTTLS |
| ``ALERT_SMTP_TLS`` | ``on`` | ``on``: TLS required, certificate checked (no STARTTLS: not sent); ``off``: plain |
| ``ALERT_SMTP_CA_FILE`` | unset: the system's CAs | PEM file of the CA of the server's certificate (internal CA) |
| ``ALERT_SMTP_USER`` / ``ALERT_SMTP_PASSWORD`` | unset: no login | SMTP credentials (secret); sent only over TLS |
| ``ALERT_EMAIL_FROM`` | ``ALERT_SMTP_USER``, else ``cchc-pipeline@localhost`` | sender |
| ``ALERT_EMAIL_TO`` | unset: no e-mail | recipients, comma-separated |
| ``ALERT_TIMEOUT_SECONDS`` | ``10`` | network timeout of each channel |

``ALERT_SMTP_TLS=off`` is for a relay on the same host or a trusted network: it sends no login (with
``ALERT_SMTP_USER`` set the send fails rather than put the password on the wire in clear).

What an alert may carry. The records of the pipeline hold personal data (applicants' names, phone
numbers, e-mail addresses) and alerts go to chat rooms and mailboxes, so an alert names the failure and
never quotes a record: an exception is cut to its message (``describe_exception``) — for a PostgreSQL
error, psycopg's ``diag.message_primary``, without the DETAIL and CONTEXT lines that quote the row
(``COPY dossier_versions, line 3, column payload: "{...}"``); for any other, its first line — at most
``MAX_EXCEPTION_CHARS`` characters. Secrets are masked in whatever an alert or a channel's outcome says
(``redact``): passwords in URLs and ``password=`` settings, and the value of every variable whose name
says it is a secret (``*PASSWORD*``, ``*TOKEN*``, ``*SECRET*``, ``*WEBHOOK*``, ``*SALT*``, ``*_KEY``),
with the SMTP password's base64 forms an SMTP server could echo. The full traceback stays in the task's
own log.

Slack reads its messages as mrkdwn: the quoted text is escaped (``&``, ``<``, ``>`` as ``&amp;``,
``&lt;``, ``&gt;``, so a unit name cannot become a link or an ``@channel`` mention), and its backticks
are replaced by ``ˋ`` (U+02CB), so a body quoted in a code block cannot close it (nor a headline open one).

Only the standard library is imported at module level (``requests`` when a webhook is configured),
so DAG files can reference this module without slowing their parsing.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ALERTS_FILE = "alerts.log"
MAX_EXCEPTION_CHARS = 300
MASK = "***"
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|TOKEN|SECRET|WEBHOOK|SALT|_KEY$|CREDENTIAL", re.I)
MIN_SECRET_CHARS = 4  # shorter values ("on", "25") are no secrets and would mangle every text
URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s/:@]*:)[^\s@/]+@", re.I)
KEYWORD_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('[^']*'|[^\s;]+)", re.I)
SLACK_FENCE = "```"
OFF = ("off", "false", "no", "0")
ON = ("on", "true", "yes", "1")

log = logging.getLogger(__name__)


class InsecureSMTPError(RuntimeError):
    """The e-mail would travel unencrypted while ``ALERT_SMTP_TLS`` requires TLS, or log in unencrypted."""


def _get(env: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    value = env.get(name)
    return value if value not in (None, "") else default


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _secret_values(env: Mapping[str, str]) -> list[str]:
    """Values to mask: every variable named like a secret, and the SMTP password as AUTH sends it."""
    values = {v for k, v in env.items() if SECRET_NAME.search(k) and v and len(v) >= MIN_SECRET_CHARS}
    password = _get(env, "ALERT_SMTP_PASSWORD")
    if password:
        user = _get(env, "ALERT_SMTP_USER") or ""
        for raw in (password, f"\0{user}\0{password}"):  # AUTH LOGIN and AUTH PLAIN
            values.add(base64.b64encode(raw.encode()).decode())
        values.add(password)
    return sorted(values, key=len, reverse=True)  # longest first: a secret containing another is masked whole


def redact(text: str, env: Mapping[str, str] | None = None) -> str:
    """``text`` with passwords in URLs and ``password=`` settings, and secret variables' values, masked."""
    env = os.environ if env is None else env
    text = URL_PASSWORD.sub(rf"\1{MASK}@", text)
    text = KEYWORD_PASSWORD.sub(rf"\1{MASK}", text)
    for value in _secret_values(env):
        text = text.replace(value, MASK)
    return text


def _bounded(text: str, limit: int = MAX_EXCEPTION_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def describe_exception(exception: BaseException | str, env: Mapping[str, str] | None = None) -> str:
    """``"<type>: <message>"`` of ``exception``, safe to send: the message only (a PostgreSQL error's primary
    message, else the first line), secrets masked, at most ``MAX_EXCEPTION_CHARS`` characters."""
    if isinstance(exception, str):  # Airflow passes some failures (e.g. a killed task) as text
        prefix, text = "", exception
    else:
        prefix = f"{type(exception).__name__}: "
        # psycopg errors: the primary message says what went wrong; DETAIL and CONTEXT quote the row
        diag = getattr(exception, "diag", None)
        primary = getattr(diag, "message_primary", None) if diag is not None else None
        text = primary if isinstance(primary, str) and primary.strip() else str(exception)
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return _bounded(prefix + redact(first, env)) if first else prefix.rstrip(": ")


def build_alert(context: Mapping[str, Any], env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The alert record of a failed task, from its Airflow context (missing keys become ``None``); its
    ``exception`` is ``describe_exception``'s, never a record's content or a secret."""
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
        "exception": None if exception is None else describe_exception(exception, env),
    }


def format_message(alert: Mapping[str, Any]) -> str:
    """One human-readable line (Slack text, e-mail subject and first line)."""
    if alert.get("event") != "task_failed" and alert.get("message"):
        return str(alert["message"])
    consequence = f" — {alert['consequence']}" if alert.get("consequence") else ""
    return _task_line(alert) + consequence


def _task_line(alert: Mapping[str, Any]) -> str:
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


def slack_escape(text: str) -> str:
    """``text`` as Slack mrkdwn shows it literally: ``&``, ``<``, ``>`` escaped (no links, no mentions), and
    backticks replaced by U+02CB (no code span or block can open or close)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("`", "ˋ")


def slack_code_block(text: str) -> str:
    """``text`` in a Slack code block it cannot close."""
    return f"{SLACK_FENCE}{slack_escape(text)}{SLACK_FENCE}"


def slack_message(headline: str, body: str, bold: bool = False) -> str:
    """The mrkdwn text of a Slack message: ``headline`` (escaped, bold if asked), then ``body`` quoted."""
    head = slack_escape(headline)
    return f"{f'*{head}*' if bold else head}\n{slack_code_block(body)}"


def send_slack(alert: Mapping[str, Any], webhook_url: str, timeout: float = 10.0) -> None:
    """Post the alert to a Slack incoming webhook; raises on a network error or a non-2xx answer."""
    details = json.dumps(alert, ensure_ascii=False, indent=1, default=str)
    send_slack_text(slack_message(format_message(alert), details), webhook_url, timeout)


def send_slack_text(text: str, webhook_url: str, timeout: float = 10.0) -> None:
    """Post ``text``, mrkdwn already escaped (``slack_message``), to a Slack incoming webhook; raises on a
    network error or a non-2xx answer."""
    import requests

    response = requests.post(webhook_url, json={"text": text}, timeout=timeout)
    response.raise_for_status()


def send_email(alert: Mapping[str, Any], env: Mapping[str, str], timeout: float = 10.0) -> None:
    """E-mail the alert over SMTP (``ALERT_SMTP_*``, ``ALERT_EMAIL_*``); raises on failure."""
    send_email_text(format_message(alert), format_message(alert) + "\n\n"
                    + json.dumps(alert, ensure_ascii=False, indent=2, default=str) + "\n", env, timeout)


def smtp_tls(env: Mapping[str, str]) -> bool:
    """Whether TLS is required (``ALERT_SMTP_TLS``, default ``on``); raises on a value that is neither."""
    value = (_get(env, "ALERT_SMTP_TLS", "on") or "on").strip().lower()
    if value not in ON + OFF:
        raise ValueError(f"ALERT_SMTP_TLS={value!r}: expected on or off")
    return value in ON


def send_email_text(subject: str, body: str, env: Mapping[str, str], timeout: float = 10.0) -> None:
    """E-mail ``body`` over SMTP (``ALERT_SMTP_*``, ``ALERT_EMAIL_*``); raises on failure, and with
    ``InsecureSMTPError`` when TLS is required and the server does not offer STARTTLS (nothing is sent)."""
    import smtplib
    import ssl

    host = _get(env, "ALERT_SMTP_HOST")
    port = int(_get(env, "ALERT_SMTP_PORT", "25"))
    tls = smtp_tls(env)
    user, password = _get(env, "ALERT_SMTP_USER"), _get(env, "ALERT_SMTP_PASSWORD")
    if user and not tls:
        raise InsecureSMTPError("ALERT_SMTP_TLS=off with ALERT_SMTP_USER set would send the SMTP password "
                                "unencrypted: not sending (use TLS, or a relay that needs no login)")
    recipients = [a.strip() for a in (_get(env, "ALERT_EMAIL_TO") or "").split(",") if a.strip()]
    message = EmailMessage()
    message["Subject"] = " ".join(subject.split())[:200]  # one header line, whatever the subject holds
    message["From"] = _get(env, "ALERT_EMAIL_FROM") or user or "cchc-pipeline@localhost"
    message["To"] = ", ".join(recipients)
    message.set_content(body)
    # smtplib's own default context verifies nothing: a man in the middle could present any certificate
    context = ssl.create_default_context(cafile=_get(env, "ALERT_SMTP_CA_FILE")) if tls else None
    if tls and port == 465:
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    with smtp:
        if tls and port != 465:
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                raise InsecureSMTPError(f"the SMTP server {host}:{port} does not offer STARTTLS: not sending "
                                        "unencrypted (ALERT_SMTP_TLS=off allows it, for a trusted relay)")
            smtp.starttls(context=context)
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
            # an SMTP server's answer can echo what it was sent (the AUTH line): masked like the alert
            outcome["email"] = f"error: {describe_exception(exc, env)}"
            log.warning("E-mail failed: %s", outcome["email"])
    else:
        outcome["email"] = "skipped"
    return outcome


def deliver_message(subject: str, body: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Send a message (e.g. the data-quality digest) to every configured channel; never raises. Slack gets
    the body as a code block under the subject. Returns each channel's outcome."""
    env = os.environ if env is None else env
    timeout = _timeout(env)
    return _channels(env, lambda url: send_slack_text(slack_message(subject, body, bold=True), url, timeout),
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
        print(f"pipeline.alerts: could not write the alert file: {exc!r}\n{format_message(alert)}",
              file=sys.stderr)
    timeout = _timeout(env)
    outcome.update(_channels(env, lambda url: send_slack(alert, url, timeout),
                             lambda: send_email(alert, env, timeout)))
    return outcome


def notify_event(event: str, message: str, details: Mapping[str, Any] | None = None,
                 env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Record and send an alert that is not a task failure (e.g. a night that could not take in everything):
    one JSON line in ``alerts.log`` and the configured channels; never raises. ``message`` and ``details``
    must carry no record content (counts, windows, reasons)."""
    alert = {"event": event, "at": datetime.now(UTC).isoformat(timespec="seconds"),
             "message": redact(_bounded(message, 2000), env), **(details or {})}
    try:
        return deliver(alert, env)
    except Exception:  # pragma: no cover - deliver never raises; belt and braces
        log.exception("pipeline.alerts failed")
        return {}


def notify_task_failure(context: Mapping[str, Any], consequence: str | None = None) -> None:
    """Task ``on_failure_callback``: record and send the failure (with what it means for the night, when
    the task says so); never raises."""
    try:
        try:
            alert = build_alert(context)
        except Exception as exc:
            alert = {"event": "task_failed", "at": datetime.now(UTC).isoformat(timespec="seconds"),
                     "exception": None, "context_error": describe_exception(exc)}
        if consequence:
            alert["consequence"] = consequence
        outcome = deliver(alert)
        log.info("Failure alert for %s.%s: %s", alert.get("dag_id"), alert.get("task_id"), outcome)
    except Exception:  # pragma: no cover - belt and braces: nothing may escape a failure callback
        log.exception("pipeline.alerts failed")
