"""``ingestion.notify``: the task failure callback writes its alert line and never raises."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

import pytest

from ingestion import notify

ALERT_VARS = ("ALERT_SLACK_WEBHOOK_URL", "ALERT_SMTP_HOST", "ALERT_SMTP_PORT", "ALERT_SMTP_USER",
              "ALERT_SMTP_PASSWORD", "ALERT_EMAIL_FROM", "ALERT_EMAIL_TO", "ALERT_TIMEOUT_SECONDS")


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
def _smtp_server():
    """A minimal SMTP server (no TLS, no auth) that keeps the messages it receives."""
    messages = []

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            self.wfile.write(b"220 fake ESMTP\r\n")
            envelope = {"rcpt": []}
            while line := self.rfile.readline():
                verb = line.decode().strip().split(" ")[0].upper()
                if verb in ("EHLO", "HELO"):
                    self.wfile.write(b"250-fake\r\n250 OK\r\n")
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
        monkeypatch.setenv("ALERT_EMAIL_TO", "data-team@example.vn")
        outcome = notify.deliver_message("Data quality, run r1: 3 new, 1 resolved, 10 open",
                                         "New by rule:\n  INC05 3\n")
    assert outcome == {"slack": "skipped", "email": "ok"}
    (message,) = messages
    assert "Subject: Data quality, run r1: 3 new, 1 resolved, 10 open" in message["data"]
    assert "INC05 3" in message["data"]
