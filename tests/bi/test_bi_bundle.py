"""The dashboards' export bundle (bi/bundle/) read as data, and what bi.bundle does to it — no Superset needed.

What the dashboards show is checked against the warehouse in test_superset_dashboards.py; this file checks
what must hold before: each chart's saved query (``query_context``, what the chart data API and the checks
run) asks for what its form data (``params``, what the dashboard draws) shows; the datasets read ``marts``
only; the labels are the report's; the lock pins what STACK.md requires; the zip for an import carries no
password; an export written back is the bundle again.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from bi import BUNDLE_DIR, CURRENT_UNITS, DATA_QUALITY, HELD_UP, LOCK_FILE, MORNING, SERVICE_INDEX
from bi.bundle import (
    CANONICAL_URI,
    MASK,
    build_zip,
    bundle_files,
    bundle_target,
    percent_label,
    superset_uri,
    write_export,
)
from publication import figures as F
from tests.support.paths import PROJECT_ROOT

DASHBOARD_SLUGS = {"cchc-morning", "cchc-data-quality", "cchc-service-index", "cchc-current-units", "cchc-held-up"}
READER = "postgresql://bi_reader:s%40cret-pw@db.example.org:6543/warehouse?sslmode=require"


def load_bundle() -> dict[str, dict]:
    return {p.relative_to(BUNDLE_DIR).as_posix(): yaml.safe_load(p.read_text(encoding="utf-8"))
            for p in sorted(BUNDLE_DIR.rglob("*.yaml"))}


@pytest.fixture(scope="module")
def bundle() -> dict[str, dict]:
    return load_bundle()


def of_kind(bundle: dict, folder: str) -> dict[str, dict]:
    return {name: data for name, data in bundle.items() if name.startswith(folder + "/")}


def test_the_dashboards_over_one_bi_reader_connection(bundle):
    assert bundle["metadata.yaml"]["version"] == "1.0.0"
    dashboards = of_kind(bundle, "dashboards")
    # what the links use
    assert {d["slug"] for d in dashboards.values()} == DASHBOARD_SLUGS == {MORNING, DATA_QUALITY, SERVICE_INDEX,
                                                                        CURRENT_UNITS, HELD_UP}
    [database] = of_kind(bundle, "databases").values()
    assert database["sqlalchemy_uri"] == CANONICAL_URI, "the export's password is masked, the address canonical"
    assert not database["allow_dml"] and not database["allow_file_upload"] and not database["allow_ctas"]
    datasets = of_kind(bundle, "datasets")
    assert {d["database_uuid"] for d in datasets.values()} == {database["uuid"]}
    charts = of_kind(bundle, "charts")
    assert {c["dataset_uuid"] for c in charts.values()} <= {d["uuid"] for d in datasets.values()}
    # every chart is on a dashboard, and every chart a dashboard places exists
    placed = [c["meta"]["uuid"] for d in dashboards.values() for c in d["position"].values()
              if isinstance(c, dict) and c.get("type") == "CHART"]
    assert sorted(placed) == sorted(c["uuid"] for c in charts.values())


def test_the_current_unit_views_read_the_current_marts(bundle):
    """The "today's units" dashboard (reorganisation.md) reads the *_current facts; its levels are today's units'."""
    [dashboard] = [d for d in of_kind(bundle, "dashboards").values() if d["slug"] == "cchc-current-units"]
    placed = {c["meta"]["uuid"] for c in dashboard["position"].values()
              if isinstance(c, dict) and c.get("type") == "CHART"}
    datasets = {d["uuid"]: d for d in of_kind(bundle, "datasets").values()}
    charts = [c for c in of_kind(bundle, "charts").values() if c["uuid"] in placed]
    assert charts
    for chart in charts:
        sql = datasets[chart["dataset_uuid"]]["sql"]
        assert re.search(r"FROM marts\.fct_\w+_monthly_current AS (\w+)", sql), chart["slice_name"]
        assert "ON u.unit_code = " in sql and ".current_unit_code" in sql.split("ON u.unit_code = ", 1)[1][:20]


def test_the_held_up_views_read_the_step_marts_by_field_and_never_add_percentiles(bundle):
    """The "where dossiers are held up" dashboard reads the step marts with the field in the grain (the land field's
    offices); its percentiles are each row's own: a chart shows them only as raw rows, no metric aggregates them."""
    [dashboard] = [d for d in of_kind(bundle, "dashboards").values() if d["slug"] == HELD_UP]
    placed = {c["meta"]["uuid"] for c in dashboard["position"].values()
              if isinstance(c, dict) and c.get("type") == "CHART"}
    datasets = {d["uuid"]: d for d in of_kind(bundle, "datasets").values()}
    charts = [c for c in of_kind(bundle, "charts").values() if c["uuid"] in placed]
    read = {re.search(r"FROM marts\.(fct_\w+) AS", datasets[c["dataset_uuid"]]["sql"]).group(1) for c in charts}
    assert read == {"fct_late_origin_monthly_by_field", "fct_step_monthly_by_field"}
    for chart in charts:
        dataset = datasets[chart["dataset_uuid"]]
        assert not any("hours" in m["expression"] for m in dataset["metrics"]), dataset["table_name"]
        if any("hours" in c for c in chart["params"].get("all_columns", [])):
            assert chart["params"]["query_mode"] == "raw", chart["slice_name"]
    assert sum(bool(re.search(r"\bis_land\b", " ".join(_where(c["params"])))) for c in charts) >= 4


def test_the_datasets_read_the_marts_only(bundle):
    for name, dataset in of_kind(bundle, "datasets").items():
        assert dataset["schema"] == "marts" and dataset["sql"], name
        sql = re.sub(r"--[^\n]*|extract\([^)]*\)", "", dataset["sql"])  # comments, extract(x FROM y)
        ctes = set(re.findall(r"(?:WITH|,)\s*(\w+)\s+AS\s*\(", sql, re.I))
        sources = set(re.findall(r"\b(?:FROM|JOIN)\s+([\w.]+)", sql, re.I)) - ctes - {"("}
        assert sources and all(s.startswith("marts.") for s in sources), f"{name} reads {sources - ctes}"


def _where(params: dict) -> list[str]:
    return [f["sqlExpression"] for f in params.get("adhoc_filters", []) if f["expressionType"] == "SQL"]


def test_each_charts_saved_query_asks_for_what_its_form_data_shows(bundle):
    datasets = {d["uuid"]: d for d in of_kind(bundle, "datasets").values()}
    for name, chart in of_kind(bundle, "charts").items():
        params = chart["params"]
        context = json.loads(chart["query_context"])
        [query] = context["queries"]
        assert context["form_data"]["viz_type"] == chart["viz_type"] == params["viz_type"], name
        metrics = params.get("metrics") or ([params["metric"]] if "metric" in params else [])
        assert (query.get("metrics") or []) == metrics, name
        saved = {m["metric_name"] for m in datasets[chart["dataset_uuid"]]["metrics"]}
        assert set(metrics) <= saved, f"{name} uses metrics its dataset does not define"
        columns = [c if isinstance(c, str) else c["sqlExpression"] for c in query["columns"]]
        if params.get("query_mode") == "raw":
            assert columns == params["all_columns"], name
        else:
            expected = [params["x_axis"]] if params.get("x_axis") else []
            assert columns == expected + params.get("groupby", []), name
        assert query["extras"]["where"] == " AND ".join(f"({c})" for c in _where(params)), \
            f"{name}: the saved query's filters are not the chart's"
        if "row_limit" in params:
            assert query["row_limit"] == params["row_limit"], name


def test_tables_show_names_as_text(bundle):
    """Unit names come from whoever keys the procedure system's catalogue: a table must not render them as
    HTML (Superset's tables do by default)."""
    tables = [c for c in of_kind(bundle, "charts").values() if c["viz_type"] == "table"]
    assert tables and all(c["params"].get("allow_render_html") is False for c in tables)


def test_rates_are_ratios_of_sums_never_averages(bundle):
    for dataset in of_kind(bundle, "datasets").values():
        for metric in dataset["metrics"]:
            expression = metric["expression"]
            assert "AVG(" not in expression.upper(), f"{dataset['table_name']}.{metric['metric_name']} averages"
            if metric["metric_name"].endswith("_rate") or metric["metric_name"].startswith("rate_"):
                assert re.fullmatch(r"SUM\(.+\)::numeric / NULLIF\(SUM\(.+\), 0\)", expression), expression


def test_labels_speak_the_reports_vocabulary(bundle):
    sql = "\n".join(d["sql"] for d in of_kind(bundle, "datasets").values())
    for rule, name in F.DQ_RULES.items():
        assert f"('{rule}', '{name}')" in sql, rule
    for level, name in F.LEVELS.items():
        assert f"WHEN {level} THEN '{name}'" in sql
    for code, name in F.FUNDING_SOURCES.items():
        assert f"WHEN '{code}' THEN '{name}'" in sql
    for code, name in F.DELEGATION_TYPES.items():
        assert f"WHEN '{code}' THEN '{name}'" in sql
    for criterion, name in F.SERVICE_INDEX_CRITERIA.items():
        assert f"WHEN '{criterion}' THEN '{name}'" in sql, criterion
    for reason, name in F.REASONS_2_1.items():
        assert f"WHEN '{reason}' THEN '{name}'" in sql, reason
    titles = " ".join(c["slice_name"] for c in of_kind(bundle, "charts").values())
    for term in ("Tỷ lệ giải quyết đúng hạn", "mục tiêu 95%", "quá hạn", "nộp trực tuyến", "Số hóa",
                 "phân cấp, ủy quyền", "Giải ngân", "Lỗi", "on-time rate", "data-quality", "Chỉ số phục vụ",
                 "Điểm bị mất theo tiêu chí", "tiêu chí 2.1", "đơn vị hiện nay", "today's units", "nơi bắt đầu chậm",
                 "không ghi nhận bước trễ", "Đất đai", "phân vị 90"):
        assert term.casefold() in titles.casefold(), term
    on_time = next(c for c in of_kind(bundle, "charts").values() if "on-time rate by level" in c["slice_name"])
    [target] = on_time["params"]["annotation_layers"]
    assert target["annotationType"] == "FORMULA"


def imported(archive: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
        return {n.split("/", 1)[1]: zipped.read(n).decode("utf-8") for n in zipped.namelist()}


def target_lines(files: dict[str, str]) -> list[str]:
    """The values of every target line of the charts: form data, saved query's form data, each query."""
    values = []
    for name, text in files.items():
        if name.startswith("charts/"):
            chart = yaml.safe_load(text)
            context = json.loads(chart["query_context"]) if chart.get("query_context") else {}
            for layers in [chart["params"].get("annotation_layers") or [],
                           context.get("form_data", {}).get("annotation_layers") or [],
                           *[q.get("annotation_layers") or [] for q in context.get("queries", [])]]:
                values += [str(layer["value"]) for layer in layers if layer["annotationType"] == "FORMULA"]
    return values


@pytest.mark.parametrize(("setting", "label"), [("0.9", "90%"), ("0.925", "92,5%")])
def test_the_import_draws_the_configured_target(monkeypatch, setting, label):
    """The bundle is exported at one target; an import draws the line where PUBLICATION_ON_TIME_TARGET says
    (the marts' below_target follows the same setting) and its labels name that target."""
    stored = bundle_files()
    drawn = bundle_target(stored)
    assert len(target_lines(stored)) == 3 and {float(v) for v in target_lines(stored)} == {drawn}
    monkeypatch.setenv("PUBLICATION_ON_TIME_TARGET", setting)
    files = imported(build_zip(READER)[0])
    assert target_lines(files) == [setting] * 3
    text = "".join(files.values())
    assert percent_label(drawn) not in text and text.count(label) == "".join(stored.values()).count(
        percent_label(drawn))
    same = imported(build_zip(READER, on_time_target=drawn)[0])
    kept = ("charts/", "datasets/", "dashboards/")
    assert {n: t for n, t in same.items() if n.startswith(kept)} == {n: t for n, t in stored.items()
                                                                      if n.startswith(kept)}


def test_the_superset_images_layout_runs_python_m_bi(tmp_path):
    """What bi/Dockerfile copies into the Superset image is enough for `python -m bi` (standard library only,
    with the project's settings module): run here without any installed package (python -S)."""
    dockerfile = (PROJECT_ROOT / "bi" / "Dockerfile").read_text()
    for sources, destination in re.findall(r"^COPY (.+) (\S+)$", dockerfile, re.M):
        for source in sources.split():
            if source == "bi/requirements.txt":  # Superset's packages: not what python -m bi needs
                continue
            if (PROJECT_ROOT / source).is_dir():
                shutil.copytree(PROJECT_ROOT / source, tmp_path / destination, dirs_exist_ok=True)
            else:
                (tmp_path / destination).mkdir(parents=True, exist_ok=True)
                shutil.copy(PROJECT_ROOT / source, tmp_path / destination)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path), "SUPERSET_URL": "http://127.0.0.1:1",
           "SUPERSET_ADMIN_PASSWORD": "pw"}
    helped = subprocess.run([sys.executable, "-S", "-m", "bi", "import", "--help"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0, helped.stderr
    probe = ("from bi.__main__ import target; from pipeline.settings import SupersetSettings; "
             "print(target(SupersetSettings.from_env()))")
    told = subprocess.run([sys.executable, "-S", "-c", probe], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert told.returncode == 0, told.stderr
    assert told.stdout.strip() == "('http://127.0.0.1:1', 'admin', 'pw')"


def test_the_lock_pins_every_package_and_superset_s_known_good_set():
    pins = {}
    for line in LOCK_FILE.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and re.fullmatch(r"[\w.+!-]+", version), f"not pinned exactly: {line!r}"
            pins[name.lower()] = version
    assert pins["apache-superset"] == "6.1.0"
    assert {"psycopg2-binary", "rich", "cachetools", "flask-caching"} <= pins.keys()
    assert tuple(map(int, pins["flask-caching"].split(".")[:2])) < (2, 5)
    assert int(pins["sqlalchemy"].split(".")[0]) < 2, "Superset 6.1 needs SQLAlchemy < 2"


def test_the_import_zip_points_at_the_reader_and_carries_no_password():
    uri, password = superset_uri(READER)
    assert uri == f"postgresql+psycopg2://bi_reader:{MASK}@db.example.org:6543/warehouse?sslmode=require"
    assert password == "s@cret-pw"
    archive, passwords = build_zip(READER)
    assert b"s@cret-pw" not in archive and b"s%40cret-pw" not in archive
    with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
        names = zipped.namelist()
        assert all(n.startswith("cchc_bi_bundle/") for n in names)
        contents = {n.split("/", 1)[1]: yaml.safe_load(zipped.read(n)) for n in names}
    assert contents["metadata.yaml"]["type"] == "assets", "the assets import overwrites charts and datasets too"
    [database] = [n for n in contents if n.startswith("databases/")]
    assert contents[database]["sqlalchemy_uri"] == uri
    assert passwords == {database: "s@cret-pw"}
    # everything else is the bundle, unchanged
    original = load_bundle()
    assert {n: d for n, d in contents.items() if n not in (database, "metadata.yaml")} == \
        {n: d for n, d in original.items() if n not in (database, "metadata.yaml")}
    with pytest.raises(ValueError, match="postgresql://bi_reader"):
        superset_uri("mysql://bi_reader@x/warehouse")


def test_an_export_written_back_is_the_bundle_again(tmp_path: Path):
    """What Superset's export looks like (a root folder, instance ids in the names, escaped unicode, the
    address of the exporting instance's warehouse) becomes the repository's files again."""
    original = load_bundle()
    export = io.BytesIO()
    with zipfile.ZipFile(export, "w") as zipped:
        for i, (name, data) in enumerate(original.items()):
            data = json.loads(json.dumps(data))
            if name.startswith("databases/"):
                data["sqlalchemy_uri"] = f"postgresql+psycopg2://bi_reader:{MASK}@10.0.0.5:5432/warehouse"
            exported = name if name == "metadata.yaml" else name.replace(".yaml", f"_{i + 1}.yaml")
            zipped.writestr(f"dashboard_export_20240101T000000/{exported}", yaml.safe_dump(data))
    out = tmp_path / "bundle"
    (out / "charts").mkdir(parents=True)
    (out / "charts" / "a_chart_deleted_in_the_ui.yaml").write_text("slice_name: gone\n")
    written = write_export(export.getvalue(), out)
    assert sorted(written) == sorted(original)
    assert {p.relative_to(out).as_posix(): yaml.safe_load(p.read_text(encoding="utf-8"))
            for p in out.rglob("*.yaml")} == original
    assert "Tỷ lệ" in next((out / "charts").glob("*on-time_rate_by_level.yaml")).read_text(encoding="utf-8")
