"""Charts as inline SVG drawn on the server: pure functions from numbers to markup, no JavaScript.

Why this way: the dashboard's CSP allows no inline ``style`` and no script but its own files, and people
should not wait for a chart library to draw what the server already knows. Every chart is an
``<svg role="img">`` labelled by its ``<title>`` (what it is) and ``<desc>`` (a one-line summary of the
numbers); the same numbers come as a table (:func:`table`) for screen readers and for reading exact values.

Sizing: the drawing is laid out on a viewBox :data:`WIDTH` units wide and shown at ``width="100%"``, so
it scales with its panel. Text is :data:`FONT` units high; the dashboard keeps a chart's panel between
about 330 px (a 390 px phone) and 420 px wide, so labels stay between 12 and 16 px on screen. Colours and
line styles come from CSS classes (``s0``..``s5`` per series) in ``static/ordersync.css``.

Every label that comes from data is escaped (``markupsafe.escape``): a consumer or team name is text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 360
FONT = 14
LEFT, RIGHT, TOP, BOTTOM = 44, 10, 12, 28
#: series classes (colours in the stylesheet); more series than this share the last one
SERIES_CLASSES = 6
Format = Callable[[float], str]


@dataclass(frozen=True)
class Series:
    """One named row of values, one per category (None: no value, e.g. an hour without samples)."""

    name: str
    values: tuple[float | None, ...]


def count_label(value: float) -> str:
    """A count: ``7``, ``1,250``."""
    return f"{value:,.0f}"


def seconds_label(value: float) -> str:
    """A duration, short: ``45s``, ``1m 30s``, ``12m``, ``3h``, ``2h 30m``, ``2d``."""
    s = round(value)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m" + (f" {s % 60}s" if s % 60 and s < 600 else "")
    if s < 86400:
        return f"{s // 3600}h" + (f" {s % 3600 // 60}m" if s % 3600 // 60 else "")
    return f"{s // 86400}d" + (f" {s % 86400 // 3600}h" if s % 86400 // 3600 else "")


COUNT_STEPS = (1, 2, 5)
#: tick steps for durations, in seconds: round minutes and hours
SECOND_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 4 * 3600, 6 * 3600,
                12 * 3600, 86400, 2 * 86400, 7 * 86400)


def ticks(top: float, *, seconds: bool = False, most: int = 5) -> list[float]:
    """Axis ticks from 0 to a round value at or above ``top``, at most ``most`` + 1 of them."""
    top = max(top, 1.0)
    if seconds:
        step = next((float(s) for s in SECOND_STEPS if top / s <= most), float(SECOND_STEPS[-1]))
        while top / step > most:
            step *= 2
    else:
        magnitude = 10 ** math.floor(math.log10(top / most)) if top > most else 1
        step = next(float(m * magnitude) for m in (*COUNT_STEPS, 10) if top / (m * magnitude) <= most)
    n = math.ceil(top / step - 1e-9)
    return [i * step for i in range(n + 1)]


def _n(value: float) -> str:
    """A coordinate: one decimal, no trailing zero."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _svg(chart_id: str, title: str, summary: str, height: float, body: list[str]) -> Markup:
    cid = escape(chart_id)
    return Markup(
        f'<svg id="{cid}" class="chart" viewBox="0 0 {WIDTH} {_n(height)}" width="100%" role="img" '
        f'aria-labelledby="{cid}-title {cid}-desc" preserveAspectRatio="xMidYMid meet">'
        f'<title id="{cid}-title">{escape(title)}</title><desc id="{cid}-desc">{escape(summary)}</desc>'
        + "".join(body) + "</svg>")


def _y_axis(scale: list[float], plot_top: float, plot_bottom: float, fmt: Format, unit: str) -> list[str]:
    """Grid lines with their values on the left, and the unit above the axis."""
    top = scale[-1] or 1.0
    out = [f'<text class="unit" x="2" y="{FONT - 2}">{escape(unit)}</text>'] if unit else []
    for v in scale:
        y = plot_bottom - v / top * (plot_bottom - plot_top)
        out.append(f'<line class="grid" x1="{LEFT}" y1="{_n(y)}" x2="{WIDTH - RIGHT}" y2="{_n(y)}"/>'
                   f'<text class="tick" x="{LEFT - 4}" y="{_n(y + FONT / 3)}" text-anchor="end">'
                   f"{escape(fmt(v))}</text>")
    return out


def _x_labels(labels: Sequence[str], every: int, x_of: Callable[[int], float], y: float) -> list[str]:
    return [f'<text class="tick" x="{_n(x_of(i))}" y="{_n(y)}" text-anchor="middle">{escape(label)}</text>'
            for i, label in enumerate(labels) if label and i % every == 0]


def _empty(text: str, y: float) -> str:
    x = _n((LEFT + WIDTH - RIGHT) / 2)
    return f'<text class="empty" x="{x}" y="{_n(y)}" text-anchor="middle">{escape(text)}</text>'


def _cls(i: int) -> str:
    return f"s{min(i, SERIES_CLASSES - 1)}"


def _check(labels: Sequence[str], series: Sequence[Series]) -> None:
    for s in series:
        if len(s.values) != len(labels):
            raise ValueError(f"series {s.name!r} has {len(s.values)} values for {len(labels)} categories")


def columns(chart_id: str, title: str, summary: str, labels: Sequence[str], series: Sequence[Series], *,
            unit: str = "", fmt: Format = count_label, seconds: bool = False, label_every: int = 1,
            stacked: bool = True, height: float = 220, data_name: str = "key",
            keys: Sequence[str] | None = None, empty: str = "") -> Markup:
    """Vertical bars, one column per category: the series stacked (``stacked``) or side by side.
    Each column is a ``<g class="bar" data-<data_name>="key" data-count="total">`` with a tooltip;
    ``empty`` is said in the middle when every value is zero."""
    _check(labels, series)
    n = max(1, len(labels))
    totals = [sum(s.values[i] or 0 for s in series) for i in range(len(labels))]
    highest = max(totals if stacked else [v or 0 for s in series for v in s.values], default=0)
    scale = ticks(highest, seconds=seconds)
    plot_top, plot_bottom = TOP + 16, height - BOTTOM
    span = plot_bottom - plot_top
    slot = (WIDTH - LEFT - RIGHT) / n
    gap = min(2.0, slot * 0.15)
    body = _y_axis(scale, plot_top, plot_bottom, fmt, unit)
    for i, label in enumerate(labels):
        key = keys[i] if keys is not None else label
        tip = f"{label}: " + ", ".join(f"{s.name} {fmt(s.values[i] or 0)}" for s in series) if len(series) > 1 \
            else f"{label}: {fmt(totals[i])} {unit}".rstrip()
        parts = [f'<g class="bar" data-{escape(data_name)}="{escape(key)}" data-count="{_n(totals[i])}">'
                 f"<title>{escape(tip)}</title>"]
        base = plot_bottom
        width = (slot - 2 * gap) / (1 if stacked else max(1, len(series)))
        for j, s in enumerate(series):
            value = s.values[i] or 0
            h = value / scale[-1] * span
            x = LEFT + i * slot + gap + (0 if stacked else j * width)
            y = base - h if stacked else plot_bottom - h
            if value:
                parts.append(f'<rect class="{_cls(j)}" x="{_n(x)}" y="{_n(y)}" width="{_n(width)}" height="{_n(h)}"/>')
            if stacked:
                base -= h
        body.append("".join(parts) + "</g>")
    if not any(totals) and empty:
        body.append(_empty(empty, (plot_top + plot_bottom) / 2))
    body.append(f'<line class="axis" x1="{LEFT}" y1="{_n(plot_bottom)}" x2="{WIDTH - RIGHT}" y2="{_n(plot_bottom)}"/>')
    body += _x_labels(labels, label_every, lambda i: LEFT + (i + 0.5) * slot, height - 8)
    return _svg(chart_id, title, summary, height, body)


def bars(chart_id: str, title: str, summary: str, labels: Sequence[str], series: Sequence[Series], *,
         unit: str = "", fmt: Format = count_label, label_width: float = 128, row: float = 26,
         data_name: str = "key", keys: Sequence[str] | None = None) -> Markup:
    """Horizontal bars, one row per category (its label on the left, its total at the end), the series
    stacked: for categories with long names (states, teams) on a narrow screen."""
    _check(labels, series)
    totals = [sum(s.values[i] or 0 for s in series) for i in range(len(labels))]
    scale = ticks(max(totals, default=0))
    left, right = label_width, WIDTH - RIGHT - 34
    height = TOP + row * max(1, len(labels)) + BOTTOM
    axis_y = TOP + row * max(1, len(labels))
    body = []
    for v in scale:
        x = left + v / scale[-1] * (right - left)
        body.append(f'<line class="grid" x1="{_n(x)}" y1="{TOP}" x2="{_n(x)}" y2="{_n(axis_y)}"/>'
                    f'<text class="tick" x="{_n(x)}" y="{_n(axis_y + FONT + 4)}" text-anchor="middle">'
                    f"{escape(fmt(v))}</text>")
    for i, label in enumerate(labels):
        key = keys[i] if keys is not None else label
        y = TOP + i * row
        tip = f"{label}: {fmt(totals[i])} {unit}".rstrip()
        if len(series) > 1:
            tip += " (" + ", ".join(f"{s.name} {fmt(s.values[i] or 0)}" for s in series if s.values[i]) + ")"
        parts = [f'<g class="bar" data-{escape(data_name)}="{escape(key)}" data-count="{_n(totals[i])}">'
                 f"<title>{escape(tip)}</title>"
                 f'<text class="label" x="{_n(left - 6)}" y="{_n(y + row / 2 + FONT / 3)}" text-anchor="end">'
                 f"{escape(label)}</text>"]
        x = float(left)
        for j, s in enumerate(series):
            w = (s.values[i] or 0) / scale[-1] * (right - left)
            if w:
                parts.append(f'<rect class="{_cls(j)}" x="{_n(x)}" y="{_n(y + 4)}" width="{_n(w)}" '
                             f'height="{_n(row - 8)}"/>')
            x += w
        parts.append(f'<text class="value" x="{_n(x + 4)}" y="{_n(y + row / 2 + FONT / 3)}">{escape(fmt(totals[i]))}'
                     "</text></g>")
        body.append("".join(parts))
    body.append(f'<line class="axis" x1="{left}" y1="{TOP}" x2="{left}" y2="{_n(axis_y)}"/>')
    return _svg(chart_id, title, summary, height, body)


def lines(chart_id: str, title: str, summary: str, labels: Sequence[str], series: Sequence[Series], *,
          unit: str = "", fmt: Format = count_label, seconds: bool = False, label_every: int = 1,
          threshold: tuple[str, float] | None = None, height: float = 220, empty: str = "") -> Markup:
    """One line per series over the categories (hours); a point on every value, a gap where there is
    none; ``threshold`` (name, value) is drawn as a dashed line across (named at the top instead when it
    is more than three times the highest value); ``empty`` is said in the middle when there is no value."""
    _check(labels, series)
    n = max(1, len(labels))
    values = [v for s in series for v in s.values if v is not None]
    highest = max(values, default=0)
    # a threshold far above every value would squash the lines to the floor: it is named, not drawn
    far = threshold is not None and values and threshold[1] > 3 * highest
    scale = ticks(highest if far or threshold is None else max(highest, threshold[1]), seconds=seconds)
    plot_top, plot_bottom = TOP + 16, height - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / n

    def x_of(i: int) -> float:
        return LEFT + (i + 0.5) * slot

    def y_of(v: float) -> float:
        return plot_bottom - v / scale[-1] * (plot_bottom - plot_top)

    body = _y_axis(scale, plot_top, plot_bottom, fmt, unit)
    if threshold is not None and far:
        body.append(f'<text class="note" x="{WIDTH - RIGHT}" y="{FONT - 2}" text-anchor="end">'
                    f"{escape(threshold[0])} {escape(fmt(threshold[1]))}, far above</text>")
    elif threshold is not None:
        y = y_of(threshold[1])
        body.append(f'<g class="threshold"><title>{escape(threshold[0])}: {escape(fmt(threshold[1]))}</title>'
                    f'<line x1="{LEFT}" y1="{_n(y)}" x2="{WIDTH - RIGHT}" y2="{_n(y)}"/></g>')
    for j, s in enumerate(series):
        runs: list[list[str]] = [[]]
        points = []
        for i, v in enumerate(s.values):
            if v is None:
                runs.append([])
                continue
            runs[-1].append(f"{_n(x_of(i))},{_n(y_of(v))}")
            points.append(f'<circle cx="{_n(x_of(i))}" cy="{_n(y_of(v))}" r="3">'
                          f"<title>{escape(s.name)} at {escape(labels[i])}: {escape(fmt(v))}</title></circle>")
        paths = "".join(f'<polyline points="{" ".join(run)}"/>' for run in runs if len(run) > 1)
        body.append(f'<g class="line {_cls(j)}" data-series="{escape(s.name)}">{paths}{"".join(points)}</g>')
    if not values and empty:
        body.append(_empty(empty, (plot_top + plot_bottom) / 2))
    body.append(f'<line class="axis" x1="{LEFT}" y1="{_n(plot_bottom)}" x2="{WIDTH - RIGHT}" y2="{_n(plot_bottom)}"/>')
    body += _x_labels(labels, label_every, x_of, height - 8)
    return _svg(chart_id, title, summary, height, body)


def legend(series: Sequence[Series], threshold: str = "") -> Markup:
    """The series' names with their colours, as an HTML list (wraps on a narrow screen); ``threshold``
    names the dashed line of :func:`lines`."""
    items = "".join(f'<li><span class="swatch {_cls(j)}" aria-hidden="true"></span>{escape(s.name)}</li>'
                    for j, s in enumerate(series))
    if threshold:
        items += f'<li><span class="swatch threshold" aria-hidden="true"></span>{escape(threshold)}</li>'
    return Markup(f'<ul class="legend">{items}</ul>')


def table(caption: str, head: str, labels: Sequence[str], series: Sequence[Series], *,
          fmt: Format = count_label, total: bool = False, empty: str = "-") -> Markup:
    """The chart's numbers as a table: a row per category, a column per series (and the row's total)."""
    _check(labels, series)
    cols = "".join(f'<th scope="col" class="num">{escape(s.name)}</th>' for s in series)
    cols += '<th scope="col" class="num">Total</th>' if total else ""
    rows = []
    for i, label in enumerate(labels):
        cells = "".join(f'<td class="num">{escape(empty if s.values[i] is None else fmt(s.values[i] or 0))}</td>'
                        for s in series)
        if total:
            cells += f'<td class="num">{escape(fmt(sum(s.values[i] or 0 for s in series)))}</td>'
        rows.append(f'<tr><th scope="row">{escape(label)}</th>{cells}</tr>')
    return Markup(f'<table class="chart-data"><caption>{escape(caption)}</caption><thead><tr>'
                  f'<th scope="col">{escape(head)}</th>{cols}</tr></thead><tbody>{"".join(rows)}</tbody></table>')
