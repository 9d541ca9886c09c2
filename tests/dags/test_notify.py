"""``pipeline.alerts``: the task failure callback writes its alert line and never raises; Slack and e-mail go
through the providers' notifiers and Airflow connections (a missing one turns its channel off); alerts carry
no record content and no secret; Slack text is escaped; e-mail goes over verified TLS unless the connection
turns TLS off, and never sends a password in clear.

Slack is a local HTTP server standing in for the webhook, e-mail a local SMTP server (stdlib sockets; it
can offer STARTTLS or speak implicit TLS with a self-signed certificate); the connections are
``AIRFLOW_CONN_*`` variables, read by Airflow as outside any task."""

from __future__ import annotations

import base64
import email
import json
import logging
import socket
import socketserver
import ssl
import subprocess
import threading
from contextlib import contextmanager
from datetime import datetime
from email.header import decode_header, make_header
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

import psycopg
import pytest

from pipeline import alerts as notify
from tests.support.postgres import throwaway_warehouse

CLEARED = ("ALERT_SLACK_CONN_ID", "ALERT_SMTP_CONN_ID", "ALERT_EMAIL_FROM", "ALERT_EMAIL_TO",
           "AIRFLOW_CONN_CCHC_SLACK", "AIRFLOW_CONN_CCHC_SMTP", "AIRFLOW_CONN_OPS_CHAT", "SSL_CERT_FILE",
           "SSL_CERT_DIR")
WEBHOOK_TOKEN = "services/T000/B000/secret-hook-token"
# a record's personal data, as a dossier payload holds it
APPLICANT, PHONE = "Nguyễn Thị Hồng Nhung", "0905123456"


@pytest.fixture
def reports(tmp_path, monkeypatch):
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REPORTS_DIR", str(tmp_path / "reports"))
    return tmp_path / "reports"


def _context(task_id="pull_dossiers", map_index=3, error=None):
    ti = SimpleNamespace(dag_id="cchc_nightly", task_id=task_id, map_index=map_index,
                         run_id="scheduled__2023-09-30T18:00:00+00:00", try_number=3, max_tries=2)
    return {"ti": ti, "run_id": ti.run_id, "exception": error or RuntimeError("API unreachable"),
            "logical_date": None, "data_interval_end": None}


def _lines(reports):
    return [json.loads(line) for line in (reports / "alerts.log").read_text().splitlines()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _slack_conn(monkeypatch, port: int, name: str = "AIRFLOW_CONN_CCHC_SLACK") -> None:
    """The webhook connection as the provider documents it: endpoint in host, token in password."""
    monkeypatch.setenv(name, json.dumps({"conn_type": "slackwebhook", "host": f"http://127.0.0.1:{port}",
                                         "password": WEBHOOK_TOKEN, "extra": {"timeout": 5}}))


def _smtp_conn(monkeypatch, port: int, login: str | None = None, password: str | None = None, **extra) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CCHC_SMTP", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": port, "login": login, "password": password,
        "extra": {"timeout": 5, "retry_limit": 0, **extra}}))
    monkeypatch.setenv("ALERT_EMAIL_TO", "ops@example.vn")


PLAIN = {"disable_ssl": True, "disable_tls": True}  # "TLS off": a relay on localhost
STARTTLS = {"disable_ssl": True}
IMPLICIT = {"disable_tls": True}


@contextmanager
def _http_server(status: int):
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append({**body, "_path": self.path})
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"server error" if status != 200 else b"ok")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def _smtp_server(tls: ssl.SSLContext | None = None, auth: bool = False, implicit: bool = False):
    """A minimal SMTP server that keeps the messages it receives (with ``"tls"``: whether they came over
    TLS). Without ``tls`` it does not offer STARTTLS; with it, it does — or, with ``implicit``, it speaks TLS
    from the first byte (port-465 style) and offers no STARTTLS. With ``auth`` it offers AUTH PLAIN and
    refuses every login with an answer that echoes the credentials, decoded too (the worst server)."""
    messages = []

    class Handler(socketserver.StreamRequestHandler):
        def _tls(self) -> bool:
            try:
                self.connection = tls.wrap_socket(self.connection, server_side=True)
            except (ssl.SSLError, OSError):  # the client refused our certificate
                return False
            self.rfile = self.connection.makefile("rb")
            self.wfile = self.connection.makefile("wb", buffering=0)
            return True

        def handle(self):
            envelope = {"rcpt": [], "tls": False}
            if implicit:
                if not self._tls():
                    return
                envelope["tls"] = True
            self.wfile.write(b"220 fake ESMTP\r\n")
            while line := self.rfile.readline():
                verb = line.decode(errors="replace").strip().split(" ")[0].upper()
                if verb in ("EHLO", "HELO"):
                    offers = [b"250-fake"]
                    if tls is not None and not envelope["tls"]:
                        offers.append(b"250-STARTTLS")
                    if auth:
                        offers.append(b"250-AUTH PLAIN")
                    self.wfile.write(b"\r\n".join([*offers, b"250 OK"]) + b"\r\n")
                elif verb == "STARTTLS" and tls is not None and not envelope["tls"]:
                    self.wfile.write(b"220 go ahead\r\n")
                    if not self._tls():
                        return
                    envelope["tls"] = True
                elif verb == "AUTH":
                    encoded = line.decode().strip().split(" ")[-1]
                    decoded = base64.b64decode(encoded).replace(b"\0", b" ")
                    self.wfile.write(b"535 5.7.8 rejected " + line.strip() + b" (" + decoded + b")\r\n")
                elif verb == "RCPT":
                    envelope["rcpt"].append(line.decode().strip().split(":", 1)[1].strip("<> "))
                    self.wfile.write(b"250 OK\r\n")
                elif verb == "DATA":
                    self.wfile.write(b"354 go on\r\n")
                    data = []
                    while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                        data.append(chunk)
                    messages.append({**envelope, "data": b"".join(data).decode()})
                    self.wfile.write(b"250 OK\r\n")
                elif verb == "QUIT":
                    self.wfile.write(b"221 bye\r\n")
                    return
                else:
                    self.wfile.write(b"250 OK\r\n")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], messages
    finally:
        server.shutdown()
        server.server_close()


def _mail(message: dict) -> dict:
    """A received message as a reader sees it: headers decoded, the HTML body decoded from its base64."""
    parsed = email.message_from_string(message["data"])
    (part,) = [p for p in parsed.walk() if p.get_content_type() == "text/html"]
    return {"subject": str(make_header(decode_header(parsed["Subject"]))), "from": parsed["From"],
            "to": parsed["To"], "html": part.get_payload(decode=True).decode(part.get_content_charset())}


# --------------------------------------------------------------------------------- file and channels

def test_failure_is_appended_to_alerts_log_and_missing_connections_are_skipped(reports):
    notify.notify_task_failure(_context())
    notify.notify_task_failure(_context(task_id="load_workbooks", map_index=-1, error=ValueError("bad sheet")))
    outcome = notify.deliver(notify.build_alert(_context()))
    first, second, _ = _lines(reports)
    assert first["event"] == "task_failed"
    assert (first["dag_id"], first["task_id"], first["map_index"]) == ("cchc_nightly", "pull_dossiers", 3)
    assert first["run_id"] == "scheduled__2023-09-30T18:00:00+00:00"
    assert first["try_number"] == 3
    assert first["exception"] == "RuntimeError: API unreachable"
    assert first["at"].endswith("+00:00")
    assert (second["task_id"], second["exception"]) == ("load_workbooks", "ValueError: bad sheet")
    assert outcome == {"file": f"ok: {reports / 'alerts.log'}", "slack": "skipped", "email": "skipped"}


def test_an_smtp_connection_without_recipients_sends_nothing(reports, monkeypatch):
    with _smtp_server() as (port, messages):
        _smtp_conn(monkeypatch, port, **PLAIN)
        monkeypatch.delenv("ALERT_EMAIL_TO")
        outcome = notify.deliver_message("Data quality", "body")
    assert outcome == {"slack": "skipped", "email": "skipped"} and messages == []


def test_failing_webhook_does_not_raise(reports, monkeypatch):
    with _http_server(500) as (port, received):
        _slack_conn(monkeypatch, port)
        notify.notify_task_failure(_context())  # must not raise
        outcome = notify.deliver(notify.build_alert(_context()))
    assert outcome["slack"] == "error: AirflowException (HTTP 500)"
    assert "secret-hook-token" not in json.dumps(outcome)  # the webhook token is a secret: not echoed
    assert len(received) == 2 and "pull_dossiers" in received[0]["text"]
    assert received[0]["_path"] == f"/{WEBHOOK_TOKEN}", "the URL is the connection's host + token"
    assert len(_lines(reports)) == 2  # the file line is written whatever the webhook does


def test_the_connection_ids_are_configurable(reports, monkeypatch):
    """``ALERT_SLACK_CONN_ID`` names another connection; the default one is then not used."""
    with _http_server(200) as (port, received), _http_server(200) as (default_port, default_received):
        _slack_conn(monkeypatch, default_port)
        monkeypatch.setenv("ALERT_SLACK_CONN_ID", "ops_chat")
        # the webhook's whole URL in the password, the provider's other documented form
        monkeypatch.setenv("AIRFLOW_CONN_OPS_CHAT", json.dumps(
            {"conn_type": "slackwebhook", "password": f"http://127.0.0.1:{port}/hooks/ops"}))
        outcome = notify.deliver_message("Data quality, run r1", "INC05 3")
    assert outcome == {"slack": "ok", "email": "skipped"}
    assert [r["_path"] for r in received] == ["/hooks/ops"] and default_received == []


def test_unreachable_or_unreadable_channels_do_not_raise(reports, monkeypatch):
    port = _free_port()  # nothing listens there
    _slack_conn(monkeypatch, port)
    _smtp_conn(monkeypatch, port, **PLAIN)
    notify.notify_task_failure(_context())
    outcome = notify.deliver(notify.build_alert(_context()))
    assert outcome["slack"].startswith("error:") and outcome["email"].startswith("error: ConnectionRefusedError")
    assert "secret-hook-token" not in outcome["slack"]
    monkeypatch.setenv("AIRFLOW_CONN_CCHC_SMTP", "{not json")  # Airflow alone would call it "not defined"
    unreadable = notify.deliver_message("Data quality", "body")
    assert unreadable["email"] == ("error: connection 'cchc_smtp': ValueError: AIRFLOW_CONN_CCHC_SMTP is set but "
                                   "Airflow cannot read it as a connection (JSON or URI)")
    assert len(_lines(reports)) == 2


def test_unwritable_reports_dir_and_empty_context_do_not_raise(tmp_path, monkeypatch, capsys):
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("REPORTS_DIR", str(blocker))
    notify.notify_task_failure({})
    assert "could not write the alert file" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- e-mail

def test_email_is_sent_when_configured(reports, monkeypatch):
    with _smtp_server() as (port, messages):
        _smtp_conn(monkeypatch, port, **PLAIN)
        monkeypatch.setenv("ALERT_EMAIL_FROM", "airflow@example.vn")
        monkeypatch.setenv("ALERT_EMAIL_TO", "ops@example.vn, lead@example.vn")
        outcome = notify.deliver(notify.build_alert(_context()))
    assert outcome == {"file": f"ok: {reports / 'alerts.log'}", "slack": "skipped", "email": "ok"}
    (message,) = messages
    assert message["rcpt"] == ["ops@example.vn", "lead@example.vn"]
    mail = _mail(message)
    assert mail["subject"].startswith("Airflow task failed: cchc_nightly.pull_dossiers[3]")
    assert (mail["from"], mail["to"]) == ("airflow@example.vn", "ops@example.vn, lead@example.vn")
    assert "RuntimeError: API unreachable" in mail["html"]


def test_a_message_such_as_the_digest_is_mailed_escaped(reports, monkeypatch):
    """``deliver_message`` (the data-quality digest) goes through the same connection; the provider sends
    HTML, so the body is escaped and kept as preformatted text, the subject kept on one line."""
    with _smtp_server() as (port, messages):
        _smtp_conn(monkeypatch, port, **PLAIN)
        outcome = notify.deliver_message("Data quality, run r1: 3 new,\n1 resolved, 10 open",
                                         "New by unit:\n  INC05 3 <b>Hội An</b> & co\n")
    assert outcome == {"slack": "skipped", "email": "ok"}
    mail = _mail(messages[0])
    assert mail["subject"] == "Data quality, run r1: 3 new, 1 resolved, 10 open"
    assert mail["from"] == "cchc-pipeline@localhost"
    assert mail["html"] == "<pre>New by unit:\n  INC05 3 &lt;b&gt;Hội An&lt;/b&gt; &amp; co\n</pre>"


# ------------------------------------------------------------------------------------- Slack mrkdwn

def test_slack_messages_escape_what_they_quote(reports, monkeypatch):
    hostile = RuntimeError("unit <!channel> & <http://evil.example/|bấm vào> ``` *bold* {{ ti.xcom_pull() }}")
    with _http_server(200) as (port, received):
        _slack_conn(monkeypatch, port)
        outcome = notify.deliver(notify.build_alert(_context(error=hostile)))
        digest = notify.deliver_message("Data quality <@U0123> & co", "New by unit:\n  3  <script>x</script>\n```\n"
                                        "`end`")
    assert outcome["slack"] == "ok" and digest["slack"] == "ok"
    alert_text, digest_text = (r["text"] for r in received)
    for text in (alert_text, digest_text):
        assert "<" not in text and ">" not in text, "no link, mention or tag can form"
        assert text.count("```") == 2 and text.endswith("```"), "the quoted body cannot close its code block"
    first_line = alert_text.split("\n")[0]
    assert "unit &lt;!channel&gt; &amp; &lt;http://evil.example/|bấm vào&gt;" in first_line
    assert "{{ ti.xcom_pull() }}" in first_line, "the text is sent as it is, never rendered as a template"
    assert digest_text.startswith("*Data quality &lt;@U0123&gt; &amp; co*\n```")
    assert "&lt;script&gt;x&lt;/script&gt;" in digest_text and "ˋendˋ" in digest_text
    assert received[0]["unfurl_links"] is False


# ----------------------------------------------------------------- no record content, no secret

@pytest.fixture(scope="module")
def copy_error(tmp_path_factory) -> psycopg.Error:
    """The error a real COPY into raw.dossier_versions raises for a row whose payload is not JSON."""
    record = f'{{"MaHoSo": "000.00.41.H47-230601-0003", "ChuHoSo": "{APPLICANT}", "SoDienThoai": "{PHONE}"'
    rows = [("000.00.41.H47-230601-0001", "{}"), ("000.00.41.H47-230601-0002", "{}"),
            ("000.00.41.H47-230601-0003", record)]  # the third one was cut short in transit
    with throwaway_warehouse(tmp_path_factory.mktemp("notify-pg")) as wh, psycopg.connect(wh.urls["writer"]) as conn:
        try:
            with conn.cursor() as cur, cur.copy("COPY raw.dossier_versions (dossier_id, updated_at, content_hash, "
                                                "is_deleted, payload, run_id) FROM STDIN") as copy:
                for key, payload in rows:
                    copy.write_row((key, datetime(2023, 6, 1, 8), b"\x00" * 16, False, payload, "night-1"))
        except psycopg.Error as exc:
            return exc
    raise AssertionError("the COPY of a bad row succeeded")


def test_a_database_error_alerts_without_the_record(reports, monkeypatch, copy_error):
    assert PHONE in str(copy_error) and APPLICANT in str(copy_error), "the raw text quotes the row: the test bites"
    with _http_server(200) as (http_port, received), _smtp_server() as (smtp_port, messages):
        _slack_conn(monkeypatch, http_port)
        _smtp_conn(monkeypatch, smtp_port, **PLAIN)
        notify.notify_task_failure(_context(task_id="pull_dossiers", error=copy_error))
    (line,) = _lines(reports)
    assert line["exception"] == "InvalidTextRepresentation: invalid input syntax for type json"
    mail = _mail(messages[0])
    sent = [(reports / "alerts.log").read_text(), received[0]["text"], mail["subject"], mail["html"]]
    for text in sent:
        assert "invalid input syntax for type json" in text
        for leak in (PHONE, "Nguy", "ChuHoSo", "CONTEXT", "DETAIL", "line 3"):
            assert leak not in text, leak


def test_other_exceptions_are_cut_to_their_first_line_and_bounded():
    many_lines = ValueError("workbook giai-ngan-2023-06-30.xlsx rejected\nrow 7: " + PHONE)
    assert notify.describe_exception(many_lines) == "ValueError: workbook giai-ngan-2023-06-30.xlsx rejected"
    long = notify.describe_exception(RuntimeError("x" * 5000))
    assert len(long) == notify.MAX_EXCEPTION_CHARS and long.endswith("…")
    assert notify.describe_exception(RuntimeError()) == "RuntimeError"
    assert notify.describe_exception("Task received SIGTERM\nstack") == "Task received SIGTERM"


def test_no_password_ends_up_in_an_alert(reports, monkeypatch):
    monkeypatch.setenv("WAREHOUSE_WRITER_PASSWORD", "wr1ter-Pa55")
    monkeypatch.setenv("PROCEDURE_API_TOKEN", "tok-8f2c91d0")
    monkeypatch.setenv("AIRFLOW_CONN_PROCEDURE_API", "http://:conn-T0ken-77@api.example.vn/v1")
    _slack_conn(monkeypatch, _free_port())
    error = RuntimeError("cannot reach postgresql://pipeline:wr1ter-Pa55@warehouse:5432/warehouse or "
                         "host=db password=an0ther-one; API said 401 to Bearer tok-8f2c91d0 and to conn-T0ken-77; "
                         f"webhook http://127.0.0.1/{WEBHOOK_TOKEN} down")
    notify.notify_task_failure(_context(error=error))
    notify.notify_event("night_incomplete", f"token {WEBHOOK_TOKEN} rejected", {"hint": "conn-T0ken-77"})
    failure, event = _lines(reports)
    assert failure["exception"] == ("RuntimeError: cannot reach postgresql://pipeline:***@warehouse:5432/warehouse "
                                    "or host=db password=***; API said 401 to Bearer *** and to ***; "
                                    "webhook http://127.0.0.1/*** down")
    assert (event["message"], event["hint"]) == ("token *** rejected", "***")


# ------------------------------------------------------------------------------------------ SMTP TLS

@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 and the server-side TLS context that presents it."""
    folder = tmp_path_factory.mktemp("smtp-tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return cert, context


def test_a_server_without_starttls_gets_nothing_unless_tls_is_off(reports, monkeypatch):
    with _smtp_server() as (port, messages):
        _smtp_conn(monkeypatch, port, **STARTTLS)
        no_starttls = notify.deliver(notify.build_alert(_context()))
        _smtp_conn(monkeypatch, port)  # the provider's default: implicit TLS (and STARTTLS)
        no_tls_at_all = notify.deliver(notify.build_alert(_context()))
        assert messages == [], "nothing in clear while the connection asks for TLS"
        _smtp_conn(monkeypatch, port, **PLAIN)
        sent = notify.deliver(notify.build_alert(_context()))
    assert no_starttls["email"] == "error: SMTPNotSupportedError: STARTTLS extension not supported by server."
    assert no_tls_at_all["email"].startswith("error: SSLError")
    assert sent["email"] == "ok" and len(messages) == 1 and not messages[0]["tls"]


def test_starttls_is_used_and_the_certificate_checked(reports, monkeypatch, certificate):
    cert, context = certificate
    with _smtp_server(tls=context) as (port, messages):
        _smtp_conn(monkeypatch, port, **STARTTLS)
        untrusted = notify.deliver(notify.build_alert(_context()))
        assert messages == [], "a certificate nobody vouches for (a man in the middle's) gets nothing"
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # how an internal CA is trusted
        trusted = notify.deliver(notify.build_alert(_context()))
    assert untrusted["email"].startswith("error: SSLCertVerificationError") and "certificate verify failed" in \
        untrusted["email"]
    assert trusted["email"] == "ok" and len(messages) == 1 and messages[0]["tls"]
    assert "RuntimeError: API unreachable" in _mail(messages[0])["html"]


def test_implicit_tls_is_used_and_the_certificate_checked(reports, monkeypatch, certificate):
    cert, context = certificate
    with _smtp_server(tls=context, implicit=True) as (port, messages):
        _smtp_conn(monkeypatch, port, **IMPLICIT)
        untrusted = notify.deliver_message("Data quality", "body")
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        trusted = notify.deliver_message("Data quality", "body")
        _smtp_conn(monkeypatch, port)  # the provider's default adds STARTTLS inside implicit TLS
        both = notify.deliver_message("Data quality", "body")
    assert untrusted["email"].startswith("error: SSLCertVerificationError")
    assert trusted["email"] == "ok" and len(messages) == 1 and messages[0]["tls"]
    assert both["email"].startswith("error: RuntimeError: SMTPNotSupportedError: STARTTLS extension not supported")
    assert "set disable_tls for port 465" in both["email"]


def test_connections_that_would_weaken_tls_are_refused(reports, monkeypatch):
    with _smtp_server() as (port, messages):
        _smtp_conn(monkeypatch, port, disable_ssl="true", disable_tls="false")  # "false": true to bool()
        misread = notify.deliver_message("Data quality", "body")
        _smtp_conn(monkeypatch, port, disable_ssl=True, ssl_context="none")
        unverified = notify.deliver_message("Data quality", "body")
    assert misread["email"].startswith("error: ValueError: SMTP connection extra disable_tls='false'")
    assert unverified["email"].startswith("error: InsecureSMTPError: SMTP connection extra ssl_context='none'")
    assert messages == []


def test_the_smtp_password_is_never_echoed_nor_sent_in_clear(reports, monkeypatch, certificate, caplog):
    cert, context = certificate
    password = "s3cret-Smtp-pw"
    plain = base64.b64encode(f"\0alerts@example.vn\0{password}".encode()).decode()
    with _smtp_server(tls=context, auth=True) as (port, messages):
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        _smtp_conn(monkeypatch, port, "alerts@example.vn", password, **STARTTLS)
        with caplog.at_level(logging.WARNING, logger="pipeline.alerts"):
            rejected = notify.deliver(notify.build_alert(_context(error=RuntimeError(f"login {plain} refused"))))
        _smtp_conn(monkeypatch, port, "alerts@example.vn", password, **PLAIN)
        in_clear = notify.deliver(notify.build_alert(_context()))
    assert rejected["email"].startswith("error: SMTPAuthenticationError: (535, b'5.7.8 rejected AUTH PLAIN ***")
    for text in (json.dumps(rejected), json.dumps(in_clear), caplog.text, (reports / "alerts.log").read_text()):
        assert password not in text and plain not in text
    assert in_clear["email"].startswith("error: InsecureSMTPError: SMTP connection with TLS off")
    assert messages == []
