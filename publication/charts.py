"""Charts as inline SVG, in plain Python: a line chart with a target line and dated markers, horizontal
(grouped) bars and vertical grouped bars.

Every chart is one ``<svg>`` element that needs nothing else — no script, font or stylesheet: its first
child is a ``<title>`` (what screen readers and tests read), then the visible title, the axes with their
ticks and labels, a legend when there is more than one series (or a target line), and the marks, each
with a ``<title>`` tooltip giving its exact figure. Text is escaped; numbers are formatted by the caller's
``fmt`` (the Vietnamese formatting of ``publication.formatting`` by default).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from publication.formatting import fmt_number, fmt_percent

# Okabe–Ito: distinguishable with the common colour-vision deficiencies, and in greyscale print.
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#f0e442")
TARGET_COLOUR = "#c0392b"
MARKER_COLOUR = "#5f6b76"
AXIS_COLOUR = "#555555"
GRID_COLOUR = "#e3e3e3"
TEXT_COLOUR = "#222222"
FONT = "'Segoe UI', 'Noto Sans', Roboto, 'Helvetica Neue', Arial, sans-serif"
CHAR_WIDTH = 6.4  # average width of a 12px character, to size margins and the legend

Number = float | int | None
Formatter = Callable[[float], str]


@dataclass(frozen=True)
class Series:
    """A named series of values, one per category (None: no value)."""

    name: str
    values: Sequence[Number]
    dashed: bool = False


@dataclass(frozen=True)
class Marker:
    """A vertical line across a line chart at ``position``, in category units (0 is the first category's centre,
    0.5 the boundary between the first and the second), labelled at its top: an event such as the 2025
    reorganisation of the units."""

    position: float
    label: str


def _pct0(value: float) -> str:
    return fmt_percent(value, 0)


def _fmt_default(percent: bool) -> Formatter:
    return fmt_percent if percent else (lambda v: fmt_number(v, 0))


def _t(text: object) -> str:
    return escape(str(text), quote=True)


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _nice_step(span: float, ticks: int = 5) -> float:
    raw = span / max(ticks, 1)
    if raw <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * power:
            return m * power
    return 10 * power


def _axis_range(values: Sequence[float], percent: bool, target: float | None, zero: bool) -> tuple[float, float]:
    present = [v for v in values if v is not None]
    if target is not None:
        present.append(target)
    if not present:
        return 0.0, 1.0
    hi, lo = max(present), min(present)
    if percent:
        top = 1.0 if hi <= 1.0 else math.ceil(hi * 10) / 10
        bottom = 0.0 if zero else max(0.0, math.floor((lo - 0.05) * 10) / 10)
        return bottom, top
    step = _nice_step(hi - (0 if zero else lo) or abs(hi) or 1)
    top = math.ceil(hi / step) * step if hi > 0 else step
    bottom = 0.0 if zero or lo >= 0 else math.floor(lo / step) * step
    return bottom, top if top > bottom else bottom + step


def _ticks(lo: float, hi: float, percent: bool) -> list[float]:
    step = _nice_step(hi - lo)
    if percent:
        step = max(step, 0.05)
    first = math.ceil(lo / step - 1e-9) * step
    out, v = [], first
    while v <= hi + step * 1e-6:
        out.append(round(v, 10))
        v += step
    return out


def _open(width: float, height: float, title: str, description: str, chart_id: str | None) -> list[str]:
    ident = f' id="{_t(chart_id)}"' if chart_id else ""
    return [f'<svg{ident} class="chart" role="img" '
            f'viewBox="0 0 {_num(width)} {_num(height)}" width="{_num(width)}" height="{_num(height)}" '
            f'font-family="{_t(FONT)}" font-size="12" fill="{TEXT_COLOUR}">',
            f"<title>{_t(title)}</title>",
            *([f"<desc>{_t(description)}</desc>"] if description else []),
            f'<text class="chart-title" x="{_num(width / 2)}" y="20" text-anchor="middle" font-size="15" '
            f'font-weight="600">{_t(title)}</text>']


def _legend(entries: Sequence[tuple[str, str, bool, str]], width: float, y: float) -> tuple[list[str], float]:
    """Entries (name, colour, dashed, kind 'line'|'box') laid out in centred rows; returns the SVG and the
    height used."""
    if not entries:
        return [], 0.0
    items = [(e, 30 + len(e[0]) * CHAR_WIDTH + 18) for e in entries]
    rows: list[list[tuple]] = [[]]
    used = 0.0
    for item in items:
        if rows[-1] and used + item[1] > width - 40:
            rows.append([])
            used = 0.0
        rows[-1].append(item)
        used += item[1]
    out = ['<g class="legend">']
    for r, row in enumerate(rows):
        x = (width - sum(w for _, w in row)) / 2
        cy = y + r * 18
        for (name, colour, dashed, kind), w in row:
            if kind == "box":
                out.append(f'<rect x="{_num(x)}" y="{_num(cy - 5)}" width="22" height="10" fill="{colour}"/>')
            else:
                dash = ' stroke-dasharray="6 4"' if dashed else ""
                out.append(f'<line x1="{_num(x)}" y1="{_num(cy)}" x2="{_num(x + 22)}" y2="{_num(cy)}" '
                           f'stroke="{colour}" stroke-width="2.5"{dash}/>')
            out.append(f'<text x="{_num(x + 28)}" y="{_num(cy + 4)}">{_t(name)}</text>')
            x += w
    out.append("</g>")
    return out, len(rows) * 18.0


def _value_axes(out: list[str], left: float, top: float, pw: float, ph: float, ticks, y_of, tick_fmt,
                y_label: str) -> None:
    """The vertical value axis (grid lines, ticks, label) and the opening of the category axis group with
    its base line; the caller adds the category labels and closes the group."""
    out.append('<g class="axis y-axis">')
    for tick in ticks:
        y = y_of(tick)
        out.append(f'<line x1="{_num(left)}" y1="{_num(y)}" x2="{_num(left + pw)}" y2="{_num(y)}" '
                   f'stroke="{GRID_COLOUR}"/>')
        out.append(f'<text class="tick" x="{_num(left - 8)}" y="{_num(y + 4)}" text-anchor="end">'
                   f"{_t(tick_fmt(tick))}</text>")
    out.append(f'<line x1="{_num(left)}" y1="{_num(top)}" x2="{_num(left)}" y2="{_num(top + ph)}" '
               f'stroke="{AXIS_COLOUR}"/>')
    out.append(f'<text class="axis-label" transform="translate(16 {_num(top + ph / 2)}) rotate(-90)" '
               f'text-anchor="middle">{_t(y_label)}</text></g>')
    out.append('<g class="axis x-axis">')
    out.append(f'<line x1="{_num(left)}" y1="{_num(top + ph)}" x2="{_num(left + pw)}" y2="{_num(top + ph)}" '
               f'stroke="{AXIS_COLOUR}"/>')


def line_chart(title: str, categories: Sequence[str], series: Sequence[Series], *, x_label: str, y_label: str,
               target: float | None = None, target_label: str | None = None, percent: bool = True,
               fmt: Formatter | None = None, width: float = 860, height: float = 360, description: str = "",
               markers: Sequence[Marker] = (), chart_id: str | None = None) -> str:
    """Lines over categories (e.g. months), a gap where a value is missing, a dashed horizontal target, and
    ``markers``: dotted vertical lines with their label (those outside the categories are not drawn)."""
    fmt = fmt or _fmt_default(percent)
    tick_fmt = _pct0 if percent else fmt
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(series))]
    entries = [(s.name, c, s.dashed, "line") for s, c in zip(series, colours, strict=True)]
    if target is not None:
        entries.append((target_label or f"Mục tiêu {fmt(target)}", TARGET_COLOUR, True, "line"))
    out = _open(width, height, title, description, chart_id)
    legend, legend_h = _legend(entries if len(entries) > 1 else [], width, 40)
    out += legend
    left, right, top, bottom = 70.0, 24.0, 40 + legend_h + 14, 62.0
    pw, ph = width - left - right, height - top - bottom
    lo, hi = _axis_range([v for s in series for v in s.values], percent, target, zero=not percent)
    n = max(len(categories), 1)

    def x_of(i: float) -> float:
        return left + (pw * (i + 0.5) / n)

    def y_of(v: float) -> float:
        return top + ph * (1 - (v - lo) / (hi - lo))

    _value_axes(out, left, top, pw, ph, _ticks(lo, hi, percent), y_of, tick_fmt, y_label)
    every = max(1, math.ceil(n * 60 / pw))
    for i, label in enumerate(categories):
        x = x_of(i)
        out.append(f'<line x1="{_num(x)}" y1="{_num(top + ph)}" x2="{_num(x)}" y2="{_num(top + ph + 5)}" '
                   f'stroke="{AXIS_COLOUR}"/>')
        if i % every == 0 or i == n - 1:
            out.append(f'<text class="tick" x="{_num(x)}" y="{_num(top + ph + 19)}" text-anchor="middle">'
                       f"{_t(label)}</text>")
    out.append(f'<text class="axis-label" x="{_num(left + pw / 2)}" y="{_num(height - 12)}" '
               f'text-anchor="middle">{_t(x_label)}</text></g>')
    if target is not None and lo <= target <= hi:
        y = y_of(target)
        out.append(f'<g class="target"><line x1="{_num(left)}" y1="{_num(y)}" x2="{_num(left + pw)}" '
                   f'y2="{_num(y)}" stroke="{TARGET_COLOUR}" stroke-width="1.8" stroke-dasharray="7 5">'
                   f"<title>{_t(target_label or 'Mục tiêu')}: {_t(fmt(target))}</title></line></g>")
    for marker in markers:
        if not -0.5 <= marker.position <= n - 0.5:
            continue
        x = x_of(marker.position)
        anchor = "end" if x > left + pw * 0.75 else "start"
        out.append(f'<g class="marker" data-position="{_num(marker.position)}"><line x1="{_num(x)}" y1="{_num(top)}" '
                   f'x2="{_num(x)}" y2="{_num(top + ph)}" stroke="{MARKER_COLOUR}" stroke-width="1.5" '
                   f'stroke-dasharray="2 3"><title>{_t(marker.label)}</title></line>'
                   f'<text x="{_num(x + (-4 if anchor == "end" else 4))}" y="{_num(top + 12)}" text-anchor="{anchor}" '
                   f'font-size="11" fill="{MARKER_COLOUR}">{_t(marker.label)}</text></g>')
    for s, colour in zip(series, colours, strict=True):
        out.append(f'<g class="series" data-series="{_t(s.name)}">')
        path, pen = [], False
        for i, v in enumerate(s.values):
            if v is None:
                pen = False
                continue
            path.append(f"{'L' if pen else 'M'}{_num(x_of(i))} {_num(y_of(v))}")
            pen = True
        if path:
            dash = ' stroke-dasharray="6 4"' if s.dashed else ""
            out.append(f'<path d="{" ".join(path)}" fill="none" stroke="{colour}" stroke-width="2.4"'
                       f' stroke-linejoin="round"{dash}/>')
        for i, v in enumerate(s.values):
            if v is not None:
                label = categories[i] if i < len(categories) else ""
                out.append(f'<circle cx="{_num(x_of(i))}" cy="{_num(y_of(v))}" r="3.2" fill="{colour}">'
                           f"<title>{_t(s.name)} – {_t(label)}: {_t(fmt(v))}</title></circle>")
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


def hbar_chart(title: str, labels: Sequence[str], series: Sequence[Series], *, x_label: str,
               y_label: str = "", target: float | None = None, target_label: str | None = None,
               percent: bool = True, fmt: Formatter | None = None, highlight: Sequence[str] = (),
               notes: Sequence[str] | None = None, width: float = 860, label_chars: int = 42,
               description: str = "", chart_id: str | None = None) -> str:
    """Horizontal bars, one group per label (one bar per series), value printed at the end of each bar.

    ``highlight``: labels drawn in bold with a marker (e.g. the land field); ``notes``: text shown after
    the value of the first series' bar (e.g. "12/40")."""
    fmt = fmt or _fmt_default(percent)
    tick_fmt = _pct0 if percent else fmt
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(series))]
    entries = [(s.name, c, False, "box") for s, c in zip(series, colours, strict=True)]
    if target is not None:
        entries.append((target_label or f"Mục tiêu {fmt(target)}", TARGET_COLOUR, True, "line"))
    shown = [_shorten(str(label), label_chars) for label in labels]
    left = 24 + (18 if y_label else 0) + min(max((len(s) for s in shown), default=4) * CHAR_WIDTH, width * 0.42)

    def value_text(k: int, i: int, v: float) -> str:
        return fmt(v) + (f" ({notes[i]})" if notes and k == 0 and notes[i] else "")

    longest = max((len(value_text(k, i, v)) for k, s in enumerate(series) for i, v in enumerate(s.values)
                   if v is not None), default=4)
    right = min(max(48.0, longest * CHAR_WIDTH * 0.92 + 14), width * 0.3)
    bar_h = 13.0 if len(series) > 1 else 16.0
    group_h = bar_h * len(series) + 9
    legend_width = width
    body_top = 40.0
    legend, legend_h = _legend(entries if len(entries) > 1 else [], legend_width, body_top)
    top = body_top + legend_h + 10
    ph = max(group_h * len(labels), 24.0)
    height = top + ph + 56
    pw = width - left - right
    out = _open(width, height, title, description, chart_id)
    out += legend
    lo, hi = _axis_range([v for s in series for v in s.values], percent, target, zero=True)

    def x_of(v: float) -> float:
        return left + pw * (v - lo) / (hi - lo)

    out.append('<g class="axis x-axis">')
    for tick in _ticks(lo, hi, percent):
        x = x_of(tick)
        out.append(f'<line x1="{_num(x)}" y1="{_num(top)}" x2="{_num(x)}" y2="{_num(top + ph)}" '
                   f'stroke="{GRID_COLOUR}"/>')
        out.append(f'<text class="tick" x="{_num(x)}" y="{_num(top + ph + 17)}" text-anchor="middle">'
                   f"{_t(tick_fmt(tick))}</text>")
    out.append(f'<line x1="{_num(left)}" y1="{_num(top + ph)}" x2="{_num(left + pw)}" y2="{_num(top + ph)}" '
               f'stroke="{AXIS_COLOUR}"/>')
    out.append(f'<text class="axis-label" x="{_num(left + pw / 2)}" y="{_num(height - 12)}" '
               f'text-anchor="middle">{_t(x_label)}</text></g>')
    out.append(f'<g class="axis y-axis"><line x1="{_num(left)}" y1="{_num(top)}" x2="{_num(left)}" '
               f'y2="{_num(top + ph)}" stroke="{AXIS_COLOUR}"/>')
    if y_label:
        out.append(f'<text class="axis-label" transform="translate(16 {_num(top + ph / 2)}) rotate(-90)" '
                   f'text-anchor="middle">{_t(y_label)}</text>')
    for i, (label, short) in enumerate(zip(labels, shown, strict=True)):
        y = top + i * group_h + group_h / 2
        bold = ' font-weight="700"' if label in highlight else ""
        marker = "▶ " if label in highlight else ""
        out.append(f'<text class="tick" x="{_num(left - 8)}" y="{_num(y + 4)}" text-anchor="end"{bold}>'
                   f"<title>{_t(label)}</title>{_t(marker + short)}</text>")
    out.append("</g>")
    for k, (s, colour) in enumerate(zip(series, colours, strict=True)):
        out.append(f'<g class="series" data-series="{_t(s.name)}">')
        for i, v in enumerate(s.values):
            y = top + i * group_h + 4.5 + k * bar_h
            label = labels[i]
            if v is None:
                out.append(f'<text x="{_num(left + 4)}" y="{_num(y + bar_h - 3)}" fill="{AXIS_COLOUR}">–'
                           f"<title>{_t(label)} – {_t(s.name)}: –</title></text>")
                continue
            x0, x1 = x_of(max(lo, 0.0)), x_of(v)
            fill = colour if label not in highlight or len(series) > 1 else PALETTE[1]
            text = value_text(k, i, v)
            out.append(f'<rect x="{_num(min(x0, x1))}" y="{_num(y)}" width="{_num(abs(x1 - x0))}" '
                       f'height="{_num(bar_h - 2)}" fill="{fill}"><title>{_t(label)} – {_t(s.name)}: '
                       f"{_t(text)}</title></rect>")
            out.append(f'<text class="value" x="{_num(max(x0, x1) + 4)}" y="{_num(y + bar_h - 4)}" '
                       f'font-size="11">{_t(text)}</text>')
        out.append("</g>")
    if target is not None and lo <= target <= hi:
        x = x_of(target)
        out.append(f'<g class="target"><line x1="{_num(x)}" y1="{_num(top - 4)}" x2="{_num(x)}" '
                   f'y2="{_num(top + ph)}" stroke="{TARGET_COLOUR}" stroke-width="1.8" stroke-dasharray="7 5">'
                   f"<title>{_t(target_label or 'Mục tiêu')}: {_t(fmt(target))}</title></line></g>")
    out.append("</svg>")
    return "\n".join(out)


def bar_chart(title: str, categories: Sequence[str], series: Sequence[Series], *, x_label: str, y_label: str,
              target: float | None = None, target_label: str | None = None, percent: bool = True,
              fmt: Formatter | None = None, width: float = 860, height: float = 340, value_labels: bool = True,
              description: str = "", chart_id: str | None = None) -> str:
    """Vertical grouped bars: one group per category, one bar per series."""
    fmt = fmt or _fmt_default(percent)
    tick_fmt = _pct0 if percent else fmt
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(series))]
    entries = [(s.name, c, False, "box") for s, c in zip(series, colours, strict=True)]
    if target is not None:
        entries.append((target_label or f"Mục tiêu {fmt(target)}", TARGET_COLOUR, True, "line"))
    out = _open(width, height, title, description, chart_id)
    legend, legend_h = _legend(entries if len(entries) > 1 else [], width, 40)
    out += legend
    left, right, top, bottom = 78.0, 20.0, 40 + legend_h + 16, 62.0
    pw, ph = width - left - right, height - top - bottom
    lo, hi = _axis_range([v for s in series for v in s.values], percent, target, zero=True)
    n = max(len(categories), 1)
    group_w = pw / n
    bar_w = min(46.0, (group_w - 12) / max(len(series), 1))

    def y_of(v: float) -> float:
        return top + ph * (1 - (v - lo) / (hi - lo))

    _value_axes(out, left, top, pw, ph, _ticks(lo, hi, percent), y_of, tick_fmt, y_label)
    chars = max(6, int(group_w / CHAR_WIDTH))
    for i, label in enumerate(categories):
        x = left + group_w * (i + 0.5)
        out.append(f'<text class="tick" x="{_num(x)}" y="{_num(top + ph + 18)}" text-anchor="middle">'
                   f"<title>{_t(label)}</title>{_t(_shorten(str(label), chars))}</text>")
    out.append(f'<text class="axis-label" x="{_num(left + pw / 2)}" y="{_num(height - 12)}" '
               f'text-anchor="middle">{_t(x_label)}</text></g>')
    for k, (s, colour) in enumerate(zip(series, colours, strict=True)):
        out.append(f'<g class="series" data-series="{_t(s.name)}">')
        for i, v in enumerate(s.values):
            if v is None:
                continue
            x = left + group_w * i + (group_w - bar_w * len(series)) / 2 + k * bar_w
            y0, y1 = y_of(max(lo, 0.0)), y_of(v)
            label = categories[i]
            out.append(f'<rect x="{_num(x + 1)}" y="{_num(min(y0, y1))}" width="{_num(bar_w - 2)}" '
                       f'height="{_num(abs(y1 - y0))}" fill="{colour}"><title>{_t(label)} – {_t(s.name)}: '
                       f"{_t(fmt(v))}</title></rect>")
            if value_labels:
                out.append(f'<text class="value" x="{_num(x + bar_w / 2)}" y="{_num(min(y0, y1) - 4)}" '
                           f'text-anchor="middle" font-size="10.5">{_t(fmt(v))}</text>')
        out.append("</g>")
    if target is not None and lo <= target <= hi:
        y = y_of(target)
        out.append(f'<g class="target"><line x1="{_num(left)}" y1="{_num(y)}" x2="{_num(left + pw)}" '
                   f'y2="{_num(y)}" stroke="{TARGET_COLOUR}" stroke-width="1.8" stroke-dasharray="7 5">'
                   f"<title>{_t(target_label or 'Mục tiêu')}: {_t(fmt(target))}</title></line></g>")
    out.append("</svg>")
    return "\n".join(out)


def empty_chart(title: str, message: str, *, width: float = 860, chart_id: str | None = None) -> str:
    """A titled placeholder when there is nothing to draw."""
    out = _open(width, 90, title, message, chart_id)
    out.append(f'<text x="{_num(width / 2)}" y="58" text-anchor="middle" fill="{AXIS_COLOUR}">{_t(message)}</text>')
    out.append("</svg>")
    return "\n".join(out)
