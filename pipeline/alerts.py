"""Alerts of the pipeline: a task-level ``on_failure_callback``, one-off events and the data-quality digest.

``notify_task_failure(context)`` is called by Airflow with the task's context when a task fails for
good (after its last retry); ``notify_event`` records an alert that is not a task failure (a night that
could not take in everything); ``deliver_message`` sends a message such as the digest. Each

1. appends one JSON line to ``<REPORTS_DIR>/alerts.log`` (alerts only, not the digest: ``event``, ``at``
   (UTC), ``dag_id``, ``task_id``, ``map_index``, ``run_id``, ``try_number``, ``max_tries``,
   ``logical_date``, ``data_interval_start``/``_end``, ``exception``);
2. posts to Slack through the Slack provider's ``SlackWebhookNotifier`` when the Airflow connection
   ``ALERT_SLACK_CONN_ID`` (default ``cchc_slack``) exists;
3. e-mails ``ALERT_EMAIL_TO`` through the SMTP provider's ``SmtpNotifier`` when the Airflow connection
   ``ALERT_SMTP_CONN_ID`` (default ``cchc_smtp``) exists and ``ALERT_EMAIL_TO`` is set.

A connection that does not exist turns its channel off (``"skipped"``), no error. Nothing here raises:
each channel's error is logged and returned as its outcome (the file's is also written to stderr), so a
broken notifier cannot mask the task's own failure.

| variable | default | meaning |
|---|---|---|
| ``REPORTS_DIR`` | ``reports`` | ``alerts.log`` is written here |
| ``ALERT_SLACK_CONN_ID`` | ``cchc_slack`` | Airflow connection of the Slack incoming webhook |
| ``ALERT_SMTP_CONN_ID`` | ``cchc_smtp`` | Airflow connection of the SMTP server |
| ``ALERT_EMAIL_FROM`` | the connection's ``from_email``, else its login | sender (else ``DEFAULT_SENDER``) |
| ``ALERT_EMAIL_TO`` | unset: no e-mail | recipients, comma-separated |

The secrets (webhook token, SMTP password) live in the connections only, defined like any Airflow
connection: ``AIRFLOW_CONN_CCHC_SLACK`` / ``AIRFLOW_CONN_CCHC_SMTP`` as JSON or URI, a secrets backend,
or (inside tasks) Airflow's connection store::

    AIRFLOW_CONN_CCHC_SLACK='{"conn_type": "slackwebhook", "password": "https://hooks.slack.com/services/T…/B…/…"}'
    AIRFLOW_CONN_CCHC_SMTP='{"conn_type": "smtp", "host": "smtp.example.vn", "port": 587, "login": "alerts@example.vn",
                             "password": "…", "extra": {"disable_ssl": true}}'

Where the connections are found. Inside an Airflow task the task SDK resolves them (the worker's
``AIRFLOW_CONN_*`` variables, then the API server: secrets backend, variables, metadata database).
Outside a task (``python -m expectations validate``, a test calling ``deliver_message``) the same SDK call
reads this process's ``AIRFLOW_CONN_*`` variables and any secrets backend configured, but not the metadata
database — checked: an ``AIRFLOW_CONN_CCHC_SLACK`` variable is found outside a task, so this module does
not parse connections itself. A connection kept only in the metadata database therefore alerts from tasks
only. The ``env`` arguments below give the plain variables (``ALERT_*``, ``REPORTS_DIR``); connections
always come from Airflow. The variables are read by ``pipeline.settings.AlertSettings`` (and
``reports_dir``), not ``Settings.from_env``: that resolves the warehouse and validates every other setting,
and a failure callback must alert even when one of those is what is broken.

E-mail security, as the SMTP provider (3.2) does it, read in its source and checked by the tests:

- the connection uses implicit TLS (``smtplib.SMTP_SSL``, port 465 by default) unless its extras say
  ``"disable_ssl": true``, and then STARTTLS unless they say ``"disable_tls": true``. Both are on by
  default, which suits no ordinary server (STARTTLS inside implicit TLS), so a connection names one:
  port 465 ``{"disable_tls": true}``; port 587 or 25 with STARTTLS ``{"disable_ssl": true}``;
- STARTTLS is required when on: a server that does not offer it gets nothing (smtplib's
  ``SMTPNotSupportedError``, before any MAIL command), never a message in clear;
- certificates are verified: the provider's context is ``ssl.create_default_context()`` (the system's
  CAs, hostname checked). To trust an internal CA, point ``SSL_CERT_FILE`` at a PEM bundle holding it
  (with the public CAs if other TLS clients of the process need them): OpenSSL reads it when the context
  is made. ``"ssl_context": "none"`` (no verification) is refused here;
- "TLS off", for a relay on localhost or a trusted network: ``{"disable_ssl": true, "disable_tls": true}``,
  e.g. ``AIRFLOW_CONN_CCHC_SMTP='smtp://localhost:25?disable_ssl=true&disable_tls=true'``. Without TLS a
  connection with a password (or OAuth2) is refused here rather than sending credentials in clear;
- the provider reads ``disable_ssl``/``disable_tls`` with ``bool()``, so the text ``"false"`` would turn
  TLS *off*: such a value is refused here (``true``/``false`` in JSON extras, or ``true`` in a URI).

What an alert may carry. The records of the pipeline hold personal data (applicants' names, phone
numbers, e-mail addresses) and alerts go to chat rooms and mailboxes, so an alert names the failure and
never quotes a record: an exception is cut to its message (``describe_exception``) — for a PostgreSQL
error, psycopg's ``diag.message_primary``, without the DETAIL and CONTEXT lines that quote the row
(``COPY dossier_versions, line 3, column payload: "{...}"``); for any other, its first line — at most
``MAX_EXCEPTION_CHARS`` characters. Secrets are masked in whatever an alert or a channel's outcome says
(``redact``): passwords in URLs and ``password=`` settings, the value of every variable whose name says it
is a secret (``*PASSWORD*``, ``*TOKEN*``, ``*SECRET*``, ``*WEBHOOK*``, ``*SALT*``, ``*_KEY``), the
passwords and secret extras of the alert connections and of every ``AIRFLOW_CONN_*`` variable, the webhook
URL, and the SMTP password's base64 forms an SMTP server could echo (AUTH PLAIN, AUTH LOGIN). A Slack error
is reported by its type and HTTP status only (the provider's message quotes the server's answer). The
full traceback stays in the task's own log.

Slack reads its messages as mrkdwn: the quoted text is escaped (``&``, ``<``, ``>`` as ``&amp;``,
``&lt;``, ``&gt;``, so a unit name cannot become a link or an ``@channel`` mention), and its backticks
are replaced by ``ˋ`` (U+02CB), so a body quoted in a code block cannot close it (nor a headline open one);
links are not unfurled. The e-mail is the provider's HTML message: the body HTML-escaped in a ``<pre>``,
the subject one line of at most 200 characters.

The notifiers' ``notify`` is called directly, not the notifier itself: calling it renders its fields as
Jinja templates, and an exception's message (``{{ … }}``) must stay text. Timeouts and retries are the
connections' (``timeout`` extra: 30 s by default for both; SMTP ``retry_limit``).

Only the standard library (and ``pipeline.settings``) is imported at module level, the providers when a
message is sent, so DAG files can reference this module without slowing their parsing.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.settings import AlertSettings, reports_dir

ALERTS_FILE = "alerts.log"
MAX_EXCEPTION_CHARS = 300
MAX_SUBJECT_CHARS = 200
DEFAULT_SENDER = "cchc-pipeline@localhost"
MASK = "***"
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|TOKEN|SECRET|WEBHOOK|SALT|_KEY$|CREDENTIAL", re.I)
MIN_SECRET_CHARS = 4  # shorter values ("on", "25") are no secrets and would mangle every text
URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s/:@]*:)[^\s@/]+@", re.I)
KEYWORD_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('[^']*'|[^\s;]+)", re.I)
HTTP_STATUS = re.compile(r"Status Code: (\d{3})")
CONN_PREFIX = "AIRFLOW_CONN_"
SLACK_FENCE = "```"
TRUE_TEXT = ("true", "1", "yes", "on")

log = logging.getLogger(__name__)


class InsecureSMTPError(RuntimeError):
    """The SMTP connection would send credentials unencrypted, or not verify the server's certificate."""


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _environ(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


# ------------------------------------------------------------------------------------------ secrets

def _auth_forms(login: str | None, password: str) -> set[str]:
    """``password`` and the base64 forms SMTP AUTH sends it in (an SMTP server may echo them)."""
    forms = {password}
    for raw in (password, f"\0{login or ''}\0{password}"):  # AUTH LOGIN and AUTH PLAIN
        forms.add(base64.b64encode(raw.encode()).decode())
    return forms


def connection_secrets(conn: Any) -> set[str]:
    """What of an Airflow connection must never appear in an alert: its password (and its SMTP AUTH forms),
    the extras named like secrets, and for a webhook the URL the password makes."""
    values: set[str] = set()
    password = getattr(conn, "password", None)
    if password:
        values |= _auth_forms(getattr(conn, "login", None), password)
        host = getattr(conn, "host", None) or ""
        if "://" not in password and host:  # the webhook URL is host + token
            values.add(f"{host.rstrip('/')}/{password.strip().lstrip('/')}")
    try:
        extra = conn.extra_dejson
    except Exception:  # an unreadable extra holds nothing we could mask
        extra = {}
    values |= {v for k, v in extra.items() if isinstance(v, str) and SECRET_NAME.search(k)}
    return {v for v in values if len(v) >= MIN_SECRET_CHARS}


def _env_connection_secrets(env: Mapping[str, str]) -> set[str]:
    """The secrets of every connection given as an ``AIRFLOW_CONN_*`` variable (parsed as Airflow does)."""
    values: set[str] = set()
    given = {k: v for k, v in env.items() if k.startswith(CONN_PREFIX) and v}
    if not given:
        return values
    try:
        from airflow.sdk import Connection
    except Exception:  # pragma: no cover - Airflow is a dependency; without it there is nothing to parse
        return values
    for name, value in given.items():
        conn_id = name[len(CONN_PREFIX):].lower()
        try:
            conn = (Connection.from_json(value, conn_id=conn_id) if value.lstrip().startswith("{")
                    else Connection.from_uri(value, conn_id=conn_id))
        except Exception:  # a malformed variable is Airflow's to report; mask it whole
            values.add(value)
            continue
        values |= connection_secrets(conn)
    return values


def _secret_values(env: Mapping[str, str], extra: tuple[str, ...] = ()) -> list[str]:
    """Values to mask: every variable named like a secret, and ``extra`` (the connections' secrets)."""
    values = {v for k, v in env.items() if SECRET_NAME.search(k) and v and len(v) >= MIN_SECRET_CHARS}
    values |= {v for v in extra if v and len(v) >= MIN_SECRET_CHARS}
    return sorted(values, key=len, reverse=True)  # longest first: a secret containing another is masked whole


def redact(text: str, env: Mapping[str, str] | None = None, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with passwords in URLs and ``password=`` settings, secret variables' and connections'
    values, and ``secrets``, masked."""
    text = URL_PASSWORD.sub(rf"\1{MASK}@", text)
    text = KEYWORD_PASSWORD.sub(rf"\1{MASK}", text)
    for value in _secret_values(_environ(env), secrets):
        text = text.replace(value, MASK)
    return text


def _bounded(text: str, limit: int = MAX_EXCEPTION_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def describe_exception(exception: BaseException | str, env: Mapping[str, str] | None = None,
                       secrets: tuple[str, ...] = ()) -> str:
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
    # masked before it is cut: a secret cut in two would no longer be recognised
    return _bounded(prefix + redact(first, env, secrets)) if first else prefix.rstrip(": ")


def _scrub(value: Any, env: Mapping[str, str] | None, secrets: tuple[str, ...]) -> Any:
    """``value`` with every string in it redacted (an alert built by a caller, before it leaves)."""
    if isinstance(value, str):
        return redact(value, env, secrets)
    if isinstance(value, Mapping):
        return {k: _scrub(v, env, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, env, secrets) for v in value]
    return value


# ------------------------------------------------------------------------------------ the alert itself

def build_alert(context: Mapping[str, Any], env: Mapping[str, str] | None = None,
                secrets: tuple[str, ...] = ()) -> dict[str, Any]:
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
        "exception": None if exception is None else describe_exception(exception, env, secrets),
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


def _details(alert: Mapping[str, Any], indent: int) -> str:
    return json.dumps(alert, ensure_ascii=False, indent=indent, default=str)


def write_alert(alert: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Path:
    """Append ``alert`` as one JSON line to ``<REPORTS_DIR>/alerts.log``; returns the file."""
    path = reports_dir(env) / ALERTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(alert, ensure_ascii=False, default=str) + "\n")
    return path


# ------------------------------------------------------------------------------------------- Slack

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


def send_slack_text(text: str, conn_id: str) -> None:
    """Post ``text``, mrkdwn already escaped (``slack_message``), through the Slack provider's webhook
    notifier and the connection ``conn_id``; raises on a network error or a non-200 answer."""
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

    notifier = SlackWebhookNotifier(slack_webhook_conn_id=conn_id, text=text, unfurl_links=False,
                                    unfurl_media=False)
    notifier.notify({})  # not notifier(context): that renders the text as a Jinja template


def _slack_error(exc: Exception, env: Mapping[str, str] | None, secrets: tuple[str, ...]) -> str:
    """A Slack failure as its outcome: the provider's message quotes the server's answer, so a non-200
    answer is reported by its status only; a network error by its (masked) message."""
    status = HTTP_STATUS.search(str(exc))
    if status:
        return f"error: {type(exc).__name__} (HTTP {status.group(1)})"
    return f"error: {describe_exception(exc, env, secrets)}"


# ------------------------------------------------------------------------------------------- e-mail

def _flag(extra: Mapping[str, Any], name: str) -> bool:
    """The SMTP provider's reading of a ``disable_*`` extra (``bool(value)``), refusing a text it would read
    against its sense (``"false"`` is true to ``bool``)."""
    value = extra.get(name, False)
    if isinstance(value, str) and value.strip() and value.strip().lower() not in TRUE_TEXT:
        raise ValueError(f"SMTP connection extra {name}={value!r}: the SMTP provider reads any non-empty text "
                         f"as true (TLS off); write {name}: false in JSON extras, or leave it out")
    return bool(value)


def smtp_transport(conn: Any) -> str:
    """How the SMTP provider will talk to the connection's server: ``"implicit TLS"``, ``"STARTTLS"``,
    ``"implicit TLS + STARTTLS"`` or ``"plain"``. Raises ``InsecureSMTPError`` for a connection that would
    send credentials in clear or not verify certificates, ``ValueError`` for a misleading extra."""
    extra = conn.extra_dejson
    implicit, starttls = not _flag(extra, "disable_ssl"), not _flag(extra, "disable_tls")
    if extra.get("ssl_context") not in (None, "default"):
        raise InsecureSMTPError(f"SMTP connection extra ssl_context={extra['ssl_context']!r} would not verify the "
                                "server's certificate: not sending (trust an internal CA with SSL_CERT_FILE)")
    if not implicit and not starttls:
        if conn.password or str(extra.get("auth_type", "basic")) == "oauth2":
            raise InsecureSMTPError("SMTP connection with TLS off (disable_ssl and disable_tls) and a password "
                                    "or token would send it unencrypted: not sending (use TLS, or a relay that "
                                    "needs no login)")
        return "plain"
    return " + ".join(name for name, on in (("implicit TLS", implicit), ("STARTTLS", starttls)) if on)


def _sender(conn: Any, configured: str | None) -> str:
    if configured:
        return configured
    from_extra = conn.extra_dejson.get("from_email")
    if from_extra:
        return str(from_extra)
    login = getattr(conn, "login", None) or ""
    return login if "@" in login else DEFAULT_SENDER


def send_email_text(subject: str, body: str, conn: Any, recipients: tuple[str, ...],
                    sender: str | None = None) -> None:
    """E-mail ``body`` (plain text, sent HTML-escaped in a ``<pre>``) to ``recipients`` through the SMTP
    provider's notifier and the connection ``conn``; raises on failure, and before connecting when the
    connection is insecure (``smtp_transport``)."""
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    transport = smtp_transport(conn)
    notifier = SmtpNotifier(to=list(recipients), from_email=_sender(conn, sender),
                            subject=" ".join(subject.split())[:MAX_SUBJECT_CHARS],  # one header line
                            html_content=f"<pre>{html.escape(body)}</pre>", smtp_conn_id=conn.conn_id)
    try:
        notifier.notify({})  # not notifier(context): that renders subject and body as Jinja templates
    except Exception as exc:
        if transport == "implicit TLS + STARTTLS" and "STARTTLS" in str(exc):
            # the provider's default asks for STARTTLS inside implicit TLS, which ordinary servers refuse
            raise RuntimeError(f"{type(exc).__name__}: {exc} (the connection has implicit TLS and STARTTLS "
                               "both on: set disable_tls for port 465, disable_ssl for STARTTLS)") from exc
        raise


# ----------------------------------------------------------------------------------------- channels

@dataclass
class Channels:
    """The alert connections as Airflow resolves them (``None``: that channel is off), the recipients, and
    what must be masked in anything sent."""

    slack: Any = None
    smtp: Any = None
    email_from: str | None = None
    email_to: tuple[str, ...] = ()
    errors: dict[str, str] = field(default_factory=dict)  # a channel whose connection could not be read
    secrets: tuple[str, ...] = ()


def _lookup(conn_id: str) -> Any:
    """The Airflow connection ``conn_id`` (from wherever the task SDK finds it), ``None`` if it is not
    defined; raises for an ``AIRFLOW_CONN_<ID>`` variable that is set but unreadable."""
    from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        # The SDK reports a variable it cannot parse as "not defined" (it logs the parse error at debug
        # level only): the channel would be silently off, though somebody meant to turn it on.
        if os.environ.get(CONN_PREFIX + conn_id.upper()):
            raise ValueError(f"{CONN_PREFIX}{conn_id.upper()} is set but Airflow cannot read it as a connection "
                             "(JSON or URI)") from None
        return None


def resolve_channels(env: Mapping[str, str] | None = None) -> Channels:
    """The configured channels: ``ALERT_*`` from ``env`` (default: the process environment), the connections
    from Airflow. Never raises: a connection that cannot be read is that channel's error."""
    channels = Channels()
    try:
        settings = AlertSettings.from_env(env)
    except Exception as exc:  # pragma: no cover - the declarations are static
        channels.errors = {"slack": f"error: {exc!r}", "email": f"error: {exc!r}"}
        return channels
    channels.email_from, channels.email_to = settings.email_from, settings.email_to
    secrets = _env_connection_secrets(_environ(env))
    for name, conn_id in (("slack", settings.slack_conn_id), ("smtp", settings.smtp_conn_id)):
        try:
            conn = _lookup(conn_id)
        except Exception as exc:  # e.g. a malformed AIRFLOW_CONN_* value, an unreachable secrets backend
            channels.errors["email" if name == "smtp" else name] = \
                f"error: connection {conn_id!r}: {describe_exception(exc, env)}"
            continue
        setattr(channels, name, conn)
        if conn is not None:
            secrets |= connection_secrets(conn)
    channels.secrets = tuple(sorted(secrets, key=len, reverse=True))
    return channels


def _send(channels: Channels, slack_text: str, subject: str, body: str,
          env: Mapping[str, str] | None) -> dict[str, str]:
    """Send through the channels that are on; never raises. Returns each channel's outcome."""
    outcome: dict[str, str] = {}
    secrets = channels.secrets
    if "slack" in channels.errors:
        outcome["slack"] = channels.errors["slack"]
    elif channels.slack is None:
        outcome["slack"] = "skipped"
    else:
        try:
            send_slack_text(slack_text, channels.slack.conn_id)
            outcome["slack"] = "ok"
        except Exception as exc:
            outcome["slack"] = _slack_error(exc, env, secrets)
    if "email" in channels.errors:
        outcome["email"] = channels.errors["email"]
    elif channels.smtp is None or not channels.email_to:
        outcome["email"] = "skipped"
    else:
        try:
            send_email_text(subject, body, channels.smtp, channels.email_to, channels.email_from)
            outcome["email"] = "ok"
        except Exception as exc:
            # an SMTP server's answer can echo what it was sent (the AUTH line): masked like the alert
            outcome["email"] = f"error: {describe_exception(exc, env, secrets)}"
    for name, result in outcome.items():
        if result.startswith("error"):
            log.warning("%s alert failed: %s", name, result)
    return outcome


def deliver_message(subject: str, body: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Send a message (e.g. the data-quality digest) to every configured channel; never raises. Slack gets
    the body as a code block under the subject. Returns each channel's outcome (``"ok"``, ``"skipped"`` or
    ``"error: ..."``)."""
    try:
        channels = resolve_channels(env)
        subject, body = redact(subject, env, channels.secrets), redact(body, env, channels.secrets)
        return _send(channels, slack_message(subject, body, bold=True), subject, body, env)
    except Exception as exc:  # pragma: no cover - belt and braces: the digest must not fail the night
        log.exception("pipeline.alerts failed")
        return {"error": repr(type(exc))}


def deliver(alert: Mapping[str, Any], env: Mapping[str, str] | None = None,
            channels: Channels | None = None) -> dict[str, str]:
    """Write ``alert`` to ``alerts.log`` and send it to every configured channel; never raises. Returns each
    channel's outcome (``"ok: <file>"``, ``"ok"``, ``"skipped"`` or ``"error: ..."``)."""
    channels = resolve_channels(env) if channels is None else channels
    alert = _scrub(dict(alert), env, channels.secrets)
    outcome: dict[str, str] = {}
    try:
        outcome["file"] = f"ok: {write_alert(alert, env)}"
    except Exception as exc:  # the file is the last resort: say so on stderr
        outcome["file"] = f"error: {exc!r}"
        print(f"pipeline.alerts: could not write the alert file: {exc!r}\n{format_message(alert)}",
              file=sys.stderr)
    headline = format_message(alert)
    outcome.update(_send(channels, slack_message(headline, _details(alert, 1)), headline,
                         f"{headline}\n\n{_details(alert, 2)}\n", env))
    return outcome


def notify_event(event: str, message: str, details: Mapping[str, Any] | None = None,
                 env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Record and send an alert that is not a task failure (e.g. a night that could not take in everything):
    one JSON line in ``alerts.log`` and the configured channels; never raises. ``message`` and ``details``
    must carry no record content (counts, windows, reasons)."""
    try:
        channels = resolve_channels(env)
        alert = {"event": event, "at": datetime.now(UTC).isoformat(timespec="seconds"),
                 "message": _bounded(redact(message, env, channels.secrets), 2000), **(details or {})}
        return deliver(alert, env, channels)
    except Exception:  # pragma: no cover - deliver never raises; belt and braces
        log.exception("pipeline.alerts failed")
        return {}


def notify_task_failure(context: Mapping[str, Any], consequence: str | None = None) -> None:
    """Task ``on_failure_callback``: record and send the failure (with what it means for the night, when
    the task says so); never raises."""
    try:
        channels = resolve_channels()
        try:
            alert = build_alert(context, secrets=channels.secrets)
        except Exception as exc:
            alert = {"event": "task_failed", "at": datetime.now(UTC).isoformat(timespec="seconds"),
                     "exception": None, "context_error": describe_exception(exc, secrets=channels.secrets)}
        if consequence:
            alert["consequence"] = consequence
        outcome = deliver(alert, channels=channels)
        log.info("Failure alert for %s.%s: %s", alert.get("dag_id"), alert.get("task_id"), outcome)
    except Exception:  # pragma: no cover - belt and braces: nothing may escape a failure callback
        log.exception("pipeline.alerts failed")
