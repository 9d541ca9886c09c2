"""``pipeline.alerts``: the task failure callback writes its alert line and never raises; alerts carry no
record content and no secret; Slack text is escaped; e-mail goes over TLS unless TLS is turned off."""

from __future__ import annotations

import base64
import json
import logging
import socket
import socketserver
import ssl
import subprocess
import threading
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

import psycopg
import pytest

from pipeline import alerts as notify
from tests.support.postgres import throwaway_warehouse

ALERT_VARS = ("ALERT_SLACK_WEBHOOK_URL", "ALERT_SMTP_HOST", "ALERT_SMTP_PORT", "ALERT_SMTP_USER",
              "ALERT_SMTP_PASSWORD", "ALERT_EMAIL_FROM", "ALERT_EMAIL_TO", "ALERT_TIMEOUT_SECONDS", "ALERT_SMTP_TLS",
              "ALERT_SMTP_CA_FILE")
# a record's personal data, as a dossier payload holds it
APPLICANT, PHONE = "Nguyễn Thị Hồng Nhung", "0905123456"


@pytest.fixture
def reports(tmp_path, monkeypatch):
    for name in ALERT_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("ALERT_TIMEOUT_SECONDS", "5")
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


@contextmanager
def _http_server(status: int):
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"server error")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/services/T000/B000/secret", received
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def _smtp_server(tls: ssl.SSLContext | None = None, auth: bool = False):
    """A minimal SMTP server that keeps the messages it receives (with ``"tls"``: whether they came over
    TLS). Without ``tls`` it does not offer STARTTLS; with it, it does. With ``auth`` it offers AUTH PLAIN
    and refuses every login with an answer that echoes the credentials, decoded too (the worst server)."""
    messages = []

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            self.wfile.write(b"220 fake ESMTP\r\n")
            envelope = {"rcpt": [], "tls": False}
            while line := self.rfile.readline():
                verb = line.decode().strip().split(" ")[0].upper()
                if verb in ("EHLO", "HELO"):
                    offers = [b"250-fake"]
                    if tls is not None and not envelope["tls"]:
                        offers.append(b"250-STARTTLS")
                    if auth:
                        offers.append(b"250-AUTH PLAIN")
                    self.wfile.write(b"\r\n".join([*offers, b"250 OK"]) + b"\r\n")
                elif verb == "STARTTLS" and tls is not None:
                    self.wfile.write(b"220 go ahead\r\n")
                    try:
                        self.connection = tls.wrap_socket(self.connection, server_side=True)
                    except (ssl.SSLError, OSError):  # the client refused our certificate
                        return
                    self.rfile = self.connection.makefile("rb")
                    self.wfile = self.connection.makefile("wb", buffering=0)
                    envelope["tls"] = True
                elif verb == "AUTH":
                    encoded = line.decode().strip().split(" ")[-1]
                    decoded = base64.b64decode(encoded).replace(b"\0", b" ")
                    self.wfile.write(b"535 5.7.8 rejected " + line.strip() + b" (" + decoded + b")\r\n")
                elif verb == "RCPT":
                    envelope["rcpt"].append(line.decode().strip())
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


def test_failure_is_appended_to_alerts_log(reports):
    notify.notify_task_failure(_context())
    notify.notify_task_failure(_context(task_id="load_workbooks", map_index=-1, error=ValueError("bad sheet")))
    first, second = _lines(reports)
    assert first["event"] == "task_failed"
    assert (first["dag_id"], first["task_id"], first["map_index"]) == ("cchc_nightly", "pull_dossiers", 3)
    assert first["run_id"] == "scheduled__2023-09-30T18:00:00+00:00"
    assert first["try_number"] == 3
    assert first["exception"] == "RuntimeError: API unreachable"
    assert first["at"].endswith("+00:00")
    assert (second["task_id"], second["exception"]) == ("load_workbooks", "ValueError: bad sheet")


def test_failing_webhook_does_not_raise(reports, monkeypatch):
    with _http_server(500) as (url, received):
        monkeypatch.setenv("ALERT_SLACK_WEBHOOK_URL", url)
        notify.notify_task_failure(_context())  # must not raise
        outcome = notify.deliver(notify.build_alert(_context()))
    assert outcome["slack"] == "error: HTTPError (HTTP 500)"
    assert "secret" not in json.dumps(outcome)  # the webhook URL is a secret: not echoed
    assert len(received) == 2 and "pull_dossiers" in received[0]["text"]
    assert len(_lines(reports)) == 2  # the file line is written whatever the webhook does


def test_unreachable_channels_do_not_raise(reports, monkeypatch):
    port = _free_port()  # nothing listens there
    monkeypatch.setenv("ALERT_SLACK_WEBHOOK_URL", f"http://127.0.0.1:{port}/hook")
    monkeypatch.setenv("ALERT_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("ALERT_SMTP_PORT", str(port))
    monkeypatch.setenv("ALERT_EMAIL_TO", "ops@example.vn")
    notify.notify_task_failure(_context())
    outcome = notify.deliver(notify.build_alert(_context()))
    assert outcome["slack"].startswith("error:") and outcome["email"].startswith("error:")
    assert len(_lines(reports)) == 2


def test_unwritable_reports_dir_and_empty_context_do_not_raise(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("REPORTS_DIR", str(blocker))
    for name in ALERT_VARS:
        monkeypatch.delenv(name, raising=False)
    notify.notify_task_failure({})
    assert "could not write the alert file" in capsys.readouterr().err


def test_email_is_sent_when_configured(reports, monkeypatch):
    with _smtp_server() as (port, messages):
        monkeypatch.setenv("ALERT_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("ALERT_SMTP_PORT", str(port))
        monkeypatch.setenv("ALERT_SMTP_TLS", "off")
        monkeypatch.setenv("ALERT_EMAIL_FROM", "airflow@example.vn")
        monkeypatch.setenv("ALERT_EMAIL_TO", "ops@example.vn, lead@example.vn")
        outcome = notify.deliver(notify.build_alert(_context()))
    assert outcome == {"file": f"ok: {reports / 'alerts.log'}", "slack": "skipped", "email": "ok"}
    (message,) = messages
    assert len(message["rcpt"]) == 2
    assert "Subject: Airflow task failed: cchc_nightly.pull_dossiers[3]" in message["data"]
    assert "RuntimeError: API unreachable" in message["data"]


def test_a_message_such_as_the_digest_is_mailed(reports, monkeypatch):
    """``deliver_message`` (the data-quality digest) goes through the same SMTP settings."""
    with _smtp_server() as (port, messages):
        monkeypatch.setenv("ALERT_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("ALERT_SMTP_PORT", str(port))
        monkeypatch.setenv("ALERT_SMTP_TLS", "off")
        monkeypatch.setenv("ALERT_EMAIL_TO", "data-team@example.vn")
        outcome = notify.deliver_message("Data quality, run r1: 3 new, 1 resolved, 10 open",
                                         "New by rule:\n  INC05 3\n")
    assert outcome == {"slack": "skipped", "email": "ok"}
    (message,) = messages
    assert "Subject: Data quality, run r1: 3 new, 1 resolved, 10 open" in message["data"]
    assert "INC05 3" in message["data"]


# ------------------------------------------------------------------------------------- Slack mrkdwn

def test_slack_messages_escape_what_they_quote(reports, monkeypatch):
    hostile = RuntimeError("unit <!channel> & <http://evil.example/|bấm vào> ``` *bold*")
    with _http_server(200) as (url, received):
        monkeypatch.setenv("ALERT_SLACK_WEBHOOK_URL", url)
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
    assert digest_text.startswith("*Data quality &lt;@U0123&gt; &amp; co*\n```")
    assert "&lt;script&gt;x&lt;/script&gt;" in digest_text and "ˋendˋ" in digest_text


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
    with _http_server(200) as (url, received), _smtp_server() as (port, messages):
        monkeypatch.setenv("ALERT_SLACK_WEBHOOK_URL", url)
        monkeypatch.setenv("ALERT_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("ALERT_SMTP_PORT", str(port))
        monkeypatch.setenv("ALERT_SMTP_TLS", "off")
        monkeypatch.setenv("ALERT_EMAIL_TO", "ops@example.vn")
        notify.notify_task_failure(_context(task_id="pull_dossiers", error=copy_error))
    (line,) = _lines(reports)
    assert line["exception"] == "InvalidTextRepresentation: invalid input syntax for type json"
    sent = [(reports / "alerts.log").read_text(), received[0]["text"], messages[0]["data"]]
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
    error = RuntimeError("cannot reach postgresql://pipeline:wr1ter-Pa55@warehouse:5432/warehouse or "
                         "host=db password=an0ther-one; API said 401 to Bearer tok-8f2c91d0")
    notify.notify_task_failure(_context(error=error))
    (line,) = _lines(reports)
    assert line["exception"] == ("RuntimeError: cannot reach postgresql://pipeline:***@warehouse:5432/warehouse or "
                                 "host=db password=***; API said 401 to Bearer ***")


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


def _mail_env(monkeypatch, port: int) -> None:
    monkeypatch.setenv("ALERT_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("ALERT_SMTP_PORT", str(port))
    monkeypatch.setenv("ALERT_EMAIL_TO", "ops@example.vn")


def test_a_server_without_starttls_gets_nothing_unless_tls_is_off(reports, monkeypatch):
    with _smtp_server() as (port, messages):
        _mail_env(monkeypatch, port)
        refused = notify.deliver(notify.build_alert(_context()))
        assert messages == []
        monkeypatch.setenv("ALERT_SMTP_TLS", "off")
        sent = notify.deliver(notify.build_alert(_context()))
    assert refused["email"] == (f"error: InsecureSMTPError: the SMTP server 127.0.0.1:{port} does not offer STARTTLS: "
                                "not sending unencrypted (ALERT_SMTP_TLS=off allows it, for a trusted relay)")
    assert sent["email"] == "ok" and len(messages) == 1 and not messages[0]["tls"]


def test_starttls_is_used_and_the_certificate_checked(reports, monkeypatch, certificate):
    cert, context = certificate
    with _smtp_server(tls=context) as (port, messages):
        _mail_env(monkeypatch, port)
        untrusted = notify.deliver(notify.build_alert(_context()))
        assert messages == [], "a certificate nobody vouches for (a man in the middle's) gets nothing"
        monkeypatch.setenv("ALERT_SMTP_CA_FILE", str(cert))
        trusted = notify.deliver(notify.build_alert(_context()))
    assert untrusted["email"].startswith("error: SSLCertVerificationError") and "certificate verify failed" in \
        untrusted["email"]
    assert trusted["email"] == "ok" and len(messages) == 1 and messages[0]["tls"]
    assert "RuntimeError: API unreachable" in messages[0]["data"]


def test_the_smtp_password_is_never_echoed_nor_sent_in_clear(reports, monkeypatch, certificate, caplog):
    cert, context = certificate
    password = "s3cret-Smtp-pw"
    with _smtp_server(tls=context, auth=True) as (port, messages):
        _mail_env(monkeypatch, port)
        monkeypatch.setenv("ALERT_SMTP_CA_FILE", str(cert))
        monkeypatch.setenv("ALERT_SMTP_USER", "alerts@example.vn")
        monkeypatch.setenv("ALERT_SMTP_PASSWORD", password)
        with caplog.at_level(logging.WARNING, logger="pipeline.alerts"):
            rejected = notify.deliver(notify.build_alert(_context()))
        monkeypatch.setenv("ALERT_SMTP_TLS", "off")
        in_clear = notify.deliver(notify.build_alert(_context()))
    assert rejected["email"].startswith("error: SMTPAuthenticationError: (535, b'5.7.8 rejected AUTH PLAIN ***")
    plain = base64.b64encode(f"\0alerts@example.vn\0{password}".encode()).decode()
    for text in (json.dumps(rejected), json.dumps(in_clear), caplog.text, (reports / "alerts.log").read_text()):
        assert password not in text and plain not in text
    assert in_clear["email"].startswith("error: InsecureSMTPError: ALERT_SMTP_TLS=off with ALERT_SMTP_USER set")
    assert messages == []
