"""``make serve``'s server (``ops.serve``): one index linking everything published, read-only, nothing outside
the reports folder and nothing half-written. A real server on a free port of 127.0.0.1, a real HTTP client.
(The nightly DAG test runs ``make serve`` over a real night's outputs.)"""

from __future__ import annotations

import re
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ops.serve import make_server
from pipeline.settings import Settings


@pytest.fixture()
def served(tmp_path):
    reports = tmp_path / "reports"
    for name, body in {
        "report/latest.html": "<p>sáng nay</p>", "report/bao-cao-2023-10-01.html": "<p>1/10</p>",
        "report/bao-cao-2023-09-30.html": "<p>30/9</p>", "report/.bao-cao-2023-10-02.html.tmp": "half",
        "cong-khai/cong-khai-2023-09.html": "<p>9</p>", "cong-khai/cong-khai-2023-09.xlsx": "PK",
        "dq-digest/latest.txt": "[OK] nothing new", "dq-digest/2023-10-01.txt": "[OK] nothing new",
        "data-docs/index.html": "<p>gx</p>", "dbt-docs/index.html": "<p>dbt</p>", "alerts.log": "{}\n",
    }.items():
        path = reports / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")
    (tmp_path / "secret.txt").write_text("not published")
    (reports / "report" / "escape.html").symlink_to(tmp_path / "secret.txt")
    # A warehouse nobody runs: the index still opens and says so.
    settings = Settings.from_env({"REPORTS_DIR": str(reports),
                                  "WAREHOUSE_WRITER_URL": "postgresql://x:y@127.0.0.1:9/none"})
    server = make_server(settings, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", reports
    server.shutdown()
    server.server_close()


def get(url: str, method: str = "GET") -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_the_index_links_every_published_thing_and_every_link_answers(served):
    base, _ = served
    status, headers, body = get(base + "/")
    page = body.decode("utf-8")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    links = set(re.findall(r'href="(/[^"]*)"', page))
    assert links == {"/report/latest.html", "/report/bao-cao-2023-10-01.html", "/report/bao-cao-2023-09-30.html",
                     "/cong-khai/cong-khai-2023-09.html", "/cong-khai/cong-khai-2023-09.xlsx",
                     "/dq-digest/latest.txt", "/dq-digest/2023-10-01.txt", "/data-docs/index.html",
                     "/dbt-docs/index.html", "/alerts.log"}
    for link in links:
        assert get(base + link)[0] == 200, link
    assert "does not answer" in page  # the last run: the warehouse is down, the index says so
    assert 'href="http://127.0.0.1:8080/"' in page and "/superset/dashboard/cchc-morning/" in page  # Airflow, Superset
    assert get(base + "/dq-digest/latest.txt")[1]["Content-Type"].startswith("text/plain")
    assert get(base + "/cong-khai/cong-khai-2023-09.xlsx")[1]["Content-Type"].startswith(
        "application/vnd.openxmlformats")
    assert get(base + "/dbt-docs/")[2] == b"<p>dbt</p>"  # a folder serves its index.html
    assert get(base + "/report/latest.html")[1]["Cache-Control"] == "no-cache"


def test_read_only_and_nothing_outside_the_reports_or_half_written(served):
    base, reports = served
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert get(base + "/report/latest.html", method)[0] == 405
    assert (reports / "report" / "latest.html").read_text(encoding="utf-8") == "<p>sáng nay</p>"
    assert get(base + "/report/.bao-cao-2023-10-02.html.tmp")[0] == 404  # a file being written
    assert get(base + "/report/escape.html")[0] == 404  # a link pointing out of the folder
    assert get(base + "/%2e%2e/secret.txt")[0] == 404
    assert get(base + "/report/%2e%2e/%2e%2e/secret.txt")[0] == 404
    assert get(base + "/nothing-here.html")[0] == 404
    assert get(base + "/report/", "HEAD")[0] in (200, 302)


def test_an_empty_reports_folder_says_what_writes_it(tmp_path):
    # A fresh machine: no warehouse, no credentials, nothing published yet.
    from ops.serve import index_page, serve_settings

    settings = serve_settings({"REPORTS_DIR": str(tmp_path / "none"),
                               "WAREHOUSE_CREDENTIALS_FILE": str(tmp_path / "no-credentials.json")})
    assert settings.warehouse_url == ""
    page = index_page(settings)
    assert "no warehouse is configured or running yet" in page
    assert page.count("not written yet: the nightly run writes it (make run)") >= 4
    assert not re.findall(r'href="/', page)


def test_a_taken_port_is_a_clear_message(tmp_path, capsys):
    from ops.serve import main

    settings = Settings.from_env({"REPORTS_DIR": str(Path(tmp_path))}, warehouse_url="")
    server = make_server(settings, 0)
    try:
        assert main(["--port", str(server.server_address[1])]) == 2
    finally:
        server.server_close()
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err
