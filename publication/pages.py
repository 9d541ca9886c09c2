"""HTML pages from the Jinja2 templates in ``publication/templates`` (the report, the monthly publication).

The templates hold the markup, the CSS and the Vietnamese copy; the figures come in as context, and numbers
are formatted by the filters below, the Vietnamese way (``publication.formatting``): ``count`` (1.234),
``percent`` (95,3%), ``billion`` (tỷ đồng), ``number``, ``day`` (30/09/2023), ``month`` (09/2023), and
``exact``, the exact value a ``data-value`` attribute carries for machines.

Autoescaping is on for every template, so any text from the warehouse (unit, field and investor names, the
province's name) is escaped wherever a template puts it, in text and attributes alike. Only markup built
by the publication's own code comes in marked safe (``Markup``): the SVG charts of ``publication.charts``,
which escape their own text, and the figures' JSON of ``publication.figures.to_json``, which escapes ``<``,
``>`` and ``&`` so that it is inert inside its ``<script type="application/json">`` element. ``None`` renders
as nothing; a name missing from the context is an error, not an empty string.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from publication.formatting import fmt_billion, fmt_date, fmt_int, fmt_month, fmt_number, fmt_percent

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


def exact(value) -> str:
    """The exact value of a figure for a ``data-value`` attribute: an integer as its digits, a rate as the
    shortest text that reads back as the same float, a flag as ``true``/``false``, nothing for None."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def _none_as_blank(value):
    return "" if value is None else value


def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        finalize=_none_as_blank,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(count=fmt_int, percent=fmt_percent, billion=fmt_billion, number=fmt_number,
                               day=fmt_date, month=fmt_month, exact=exact)
    return environment


_ENVIRONMENT = _environment()


def render_page(template: str, **context) -> str:
    """The page of ``template`` (a file name in ``publication/templates``) rendered with ``context``."""
    return _ENVIRONMENT.get_template(template).render(**context)
