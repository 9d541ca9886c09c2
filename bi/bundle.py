"""The dashboards as Superset's export bundle: ``bi/bundle/`` holds the export zip's content as YAML files.

| folder | what |
|---|---|
| ``metadata.yaml`` | the bundle's version and type |
| ``databases/`` | the warehouse connection, as ``bi_reader`` (password masked) |
| ``datasets/<database>/`` | the virtual datasets: SQL over ``marts`` only, their columns and saved metrics |
| ``charts/`` | one file per chart: its form data (``params``) and the query it runs (``query_context``) |
| ``dashboards/`` | the two dashboards' layout and settings |

``build_zip(reader_url, bundle_dir, on_time_target)`` zips it for an import: the connection's host, port,
database and options become those of ``reader_url`` (the warehouse the importing Superset reaches), the
password stays masked in the zip and is returned apart, for the import's ``passwords`` field; the metadata's
type becomes ``assets`` so that the import overwrites the datasets and charts too (see ``bi.client``). The
on-time target is the configured one (``PUBLICATION_ON_TIME_TARGET``, by default; the marts' ``below_target``
follows the same setting): the charts' target line (their ``FORMULA`` annotation layers) is drawn at it, and
the labels naming the bundle's target ("95%") name it instead (``with_target``).

``write_export(zip_bytes, bundle_dir)`` does the reverse for dashboards edited in the UI: it unzips an
export into ``bundle_dir``, replacing the YAML there, with three normalisations so that a diff shows only
what changed: file names lose the instance's ids (``chart_12.yaml`` → ``chart.yaml``), the connection's
address becomes the canonical one (``CANONICAL_URI``, the private warehouse), and the YAML is written with
its Vietnamese as letters (Superset escapes it as ``\\u1EF7``) and SQL as literal blocks. The content is
otherwise Superset's own.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bi import BUNDLE_DIR
from pipeline.settings import PublicationTargets

MASK = "XXXXXXXXXX"  # what Superset's export puts in place of a password
CANONICAL_URI = f"postgresql+psycopg2://bi_reader:{MASK}@127.0.0.1:55432/warehouse"
ROOT = "cchc_bi_bundle"
FOLDERS = ("databases", "datasets", "charts", "dashboards")
URI_LINE = re.compile(r"^sqlalchemy_uri: .*$", re.M)
TYPE_LINE = re.compile(r"^type: .*$", re.M)
INSTANCE_ID = re.compile(r"_\d+\.yaml$")


class BundleError(ValueError):
    """The bundle or the export is not what the project expects."""


def bundle_files(bundle_dir: Path = BUNDLE_DIR) -> dict[str, str]:
    """Every YAML file of the bundle: path relative to ``bundle_dir`` → text."""
    files = {p.relative_to(bundle_dir).as_posix(): p.read_text(encoding="utf-8")
             for p in sorted(bundle_dir.rglob("*.yaml"))}
    if "metadata.yaml" not in files:
        raise BundleError(f"{bundle_dir} has no metadata.yaml: not a Superset export")
    return files


def superset_uri(reader_url: str) -> tuple[str, str]:
    """``postgresql://user:password@host:port/db?opts`` → (SQLAlchemy URI with the password masked, password)."""
    parts = urlsplit(reader_url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname or not parts.username:
        raise BundleError("the reader URL must look like postgresql://bi_reader:PASSWORD@host:port/warehouse")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = f"{parts.username}:{MASK}@{host}" + (f":{parts.port}" if parts.port else "")
    uri = f"postgresql+psycopg2://{netloc}{parts.path or '/warehouse'}" + (f"?{parts.query}" if parts.query else "")
    return uri, unquote(parts.password or "")


def build_zip(reader_url: str, bundle_dir: Path = BUNDLE_DIR,
              on_time_target: float | None = None) -> tuple[bytes, dict[str, str]]:
    """The bundle as an import zip for a Superset reaching the warehouse at ``reader_url``, with the target
    line at ``on_time_target`` (default: the configured target), and the passwords of its database files (see
    the module docstring)."""
    uri, password = superset_uri(reader_url)
    target = PublicationTargets.from_env().on_time_target if on_time_target is None else on_time_target
    files = with_target(bundle_files(bundle_dir), target)
    passwords = {}
    for name, text in files.items():
        if name.startswith("databases/"):
            text, found = URI_LINE.subn(f"sqlalchemy_uri: {json.dumps(uri)}", text)
            if found != 1:
                raise BundleError(f"{name}: expected one sqlalchemy_uri line, found {found}")
            files[name] = text
            passwords[name] = password
        elif name == "metadata.yaml":
            files[name] = TYPE_LINE.sub("type: assets", text)
    if not passwords:
        raise BundleError(f"{bundle_dir} holds no database: the charts would have no connection")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(f"{ROOT}/{name}", text)
    return out.getvalue(), passwords


# ------------------------------------------------------------------------------------------------ the target

def percent_label(fraction: float) -> str:
    """A target as the labels print it, the Vietnamese way: 0.95 → ``95%``, 0.925 → ``92,5%``."""
    return f"{fraction * 100:.2f}".rstrip("0").rstrip(".").replace(".", ",") + "%"


def formula_layers(chart: dict) -> list[dict]:
    """The FORMULA annotation layers (a horizontal line) of a chart file: in its form data (``params``) and in
    its saved query (``query_context``: the form data again and each query); edit them, then
    ``json.dumps`` the saved query back (see ``with_target``)."""
    layers = list((chart.get("params") or {}).get("annotation_layers") or [])
    context = chart.get("_query_context")
    if context is not None:
        layers += (context.get("form_data") or {}).get("annotation_layers") or []
        for query in context.get("queries") or []:
            layers += query.get("annotation_layers") or []
    return [layer for layer in layers if layer.get("annotationType") == "FORMULA"]


def _chart(text: str) -> dict:
    import yaml  # PyYAML: in Superset's environment and the project's

    chart = yaml.safe_load(text)
    if chart.get("query_context"):
        chart["_query_context"] = json.loads(chart["query_context"])
    return chart


def bundle_target(files: dict[str, str]) -> float:
    """The on-time target the bundle's target lines are drawn at (one value across the charts)."""
    values = {float(layer["value"]) for name, text in files.items() if name.startswith("charts/") and "FORMULA" in text
              for layer in formula_layers(_chart(text))}
    if len(values) != 1:
        raise BundleError(f"expected one target line value across the charts, found {sorted(values)}")
    return values.pop()


def with_target(files: dict[str, str], target: float) -> dict[str, str]:
    """The bundle's files with the target line at ``target`` and the labels that name the bundle's target
    (``percent_label``: "Mục tiêu 95%", "Dưới 95%") naming ``target``."""
    drawn = bundle_target(files)
    if drawn == target:
        return dict(files)
    old, new = percent_label(drawn), percent_label(target)
    out = {}
    for name, text in files.items():
        text = text.replace(old, new)
        if name.startswith("charts/") and "FORMULA" in text:
            chart = _chart(text)
            for layer in formula_layers(chart):
                layer["value"] = repr(float(target))
            context = chart.pop("_query_context", None)
            if context is not None:
                chart["query_context"] = json.dumps(context, ensure_ascii=False)
            text = _dump(chart)
        out[name] = text
    return out


# ------------------------------------------------------------------------------------------------ export

def _dump(data) -> str:
    import yaml  # Superset's environment and the project's both have PyYAML; the import path does not need it

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper, value: str):
        style = "|" if "\n" in value and not re.search(r"[ \t]\n|\t", value) else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return yaml.dump(data, Dumper=Dumper, allow_unicode=True, sort_keys=False, width=120)


def normalise(name: str, data: dict) -> dict:
    """One exported file's content, made independent of the exporting instance."""
    if name.startswith("databases/"):
        data["sqlalchemy_uri"] = CANONICAL_URI
    if name.startswith("charts/") and data.get("query_context"):
        data["query_context"] = json.dumps(json.loads(data["query_context"]), ensure_ascii=False)
    return data


def write_export(archive: bytes, bundle_dir: Path = BUNDLE_DIR) -> list[str]:
    """Replace the YAML of ``bundle_dir`` by the content of an export zip (see the module docstring); returns
    the files written."""
    import yaml

    with zipfile.ZipFile(io.BytesIO(archive)) as export:
        members = {}
        for info in export.infolist():
            if info.is_dir() or not info.filename.endswith(".yaml"):
                continue
            name = info.filename.split("/", 1)[1] if "/" in info.filename else info.filename
            members[name] = yaml.safe_load(export.read(info).decode("utf-8"))
    if "metadata.yaml" not in members or not any(n.startswith("dashboards/") for n in members):
        raise BundleError("not a dashboard export: no metadata.yaml or no dashboard in it")
    renamed: dict[str, dict] = {}
    for name, data in members.items():
        stable = INSTANCE_ID.sub(".yaml", name)
        if stable in renamed or (stable in members and stable != name):
            stable = INSTANCE_ID.sub(f"_{str(data.get('uuid', ''))[:8]}.yaml", name)
        renamed[stable] = normalise(stable, data)
    for folder in FOLDERS:
        for old in (bundle_dir / folder).rglob("*.yaml"):
            old.unlink()
    written = []
    for name, data in sorted(renamed.items()):
        path = bundle_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_dump(data), encoding="utf-8")
        written.append(name)
    for folder in FOLDERS:  # folders of a database name that no longer exists
        for directory in sorted((bundle_dir / folder).glob("**/"), reverse=True):
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
    return written
