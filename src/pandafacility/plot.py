"""Line plots as SVG text, drawn on the server: the monitor's pages need no JavaScript
library and work in any browser, including a headless one in the tests.

A plot reads at a glance: round values on the y axis and time ticks on the x axis
(whole hours, days or weeks, in UTC), each with its gridline, and both axes labelled."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from html import escape

COLOURS = {
    "activated": "#1f77b4",
    "sent": "#9467bd",
    "starting": "#bcbd22",
    "running": "#2ca02c",
    "finished": "#17becf",
    "failed": "#d62728",
    "cancelled": "#7f7f7f",
    "idle": "#1f77b4",
    "held": "#d62728",
}
GRID = "#ddd"
# Time tick spacings, shortest first: the first that leaves at most MAX_X_TICKS is used.
TICK_SPANS = [timedelta(hours=h) for h in (1, 2, 3, 6, 12, 24, 48, 168)]
MAX_X_TICKS = 8
MAX_Y_TICKS = 5


def y_ticks(peak: float) -> list[int]:
    """Round values from 0 to at least ``peak``: steps of 1, 2 or 5 times a power of ten."""
    if peak <= 0:
        return [0, 1]
    rough = peak / MAX_Y_TICKS
    power = 10 ** math.floor(math.log10(rough)) if rough >= 1 else 1
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= rough)
    step = max(1, int(step))
    return list(range(0, math.ceil(peak / step) * step + 1, step))


def x_ticks(first: datetime, last: datetime) -> tuple[list[datetime], str]:
    """Whole-hour, day or week times within [first, last], and their label format."""
    span = last - first
    step = next((s for s in TICK_SPANS if span / s <= MAX_X_TICKS), TICK_SPANS[-1])
    # Counted from midnight (hours a multiple of the step), weeks from Monday.
    start = datetime(first.year, first.month, first.day)
    if step >= timedelta(days=7):
        start -= timedelta(days=first.weekday())
    while start < first:
        start += step
    ticks = []
    while start <= last:
        ticks.append(start)
        start += step
    return ticks, ("%m-%d" if step >= timedelta(days=1) else "%m-%d %H:%M")


def line_plot(
    series: dict[str, list[int]],
    times: list[datetime],
    title: str,
    y_label: str,
    width: int = 760,
    height: int = 280,
) -> str:
    """One polyline per series over shared, evenly spaced times, with a legend."""
    left, right, top, bottom = 60, 120, 30, 48
    inner_w, inner_h = width - left - right, height - top - bottom
    yt = y_ticks(max([0, *(v for values in series.values() for v in values)]))
    peak = yt[-1]
    first, last = (times[0], times[-1]) if times else (datetime(1970, 1, 1),) * 2
    span = (last - first).total_seconds() or 1.0

    def x_at(t: datetime) -> float:
        return left + inner_w * (t - first).total_seconds() / span

    def y_at(v: float) -> float:
        return top + inner_h * (1 - v / peak)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}" font-family="sans-serif">',
        f'<text x="{left}" y="18" font-size="14">{escape(title)}</text>',
    ]
    for v in yt:
        y = y_at(v)
        parts += _tick("ytick", (left, y, left + inner_w, y), (left - 6, y + 4, "end"), str(v))
    ticks, fmt = x_ticks(first, last) if times else ([], "")
    for t in ticks:
        x = x_at(t)
        label = (x, top + inner_h + 14, "middle")
        parts += _tick("xtick", (x, top, x, top + inner_h), label, t.strftime(fmt))
    parts += [
        f'<line x1="{left}" y1="{top + inner_h}" x2="{left + inner_w}" y2="{top + inner_h}" '
        'stroke="#333"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + inner_h}" stroke="#333"/>',
        f'<text x="{left + inner_w / 2:.0f}" y="{height - 8}" font-size="11" '
        'text-anchor="middle">time (UTC)</text>',
        f'<text x="14" y="{top + inner_h / 2:.0f}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 14 {top + inner_h / 2:.0f})">{escape(y_label)}</text>',
    ]
    points = max(1, len(times) - 1)
    for index, (name, values) in enumerate(sorted(series.items())):
        colour = COLOURS.get(name, "#000")
        coords = " ".join(
            f"{left + inner_w * i / points:.1f},{y_at(v):.1f}" for i, v in enumerate(values)
        )
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}"/>'
        )
        y = top + 14 * index + 6
        parts.append(
            f'<rect x="{width - right + 10}" y="{y - 8}" width="10" height="10" fill="{colour}"/>'
        )
        parts.append(f'<text x="{width - right + 24}" y="{y}" font-size="11">{escape(name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _tick(
    kind: str, line: tuple[float, float, float, float], at: tuple[float, float, str], text: str
) -> list[str]:
    """A gridline and its tick label (``kind`` ytick or xtick; ``at`` x, y, anchor)."""
    x1, y1, x2, y2 = line
    x, y, anchor = at
    return [
        f'<line class="grid" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
        f'stroke="{GRID}"/>',
        f'<text class="{kind}" x="{x:.1f}" y="{y:.1f}" font-size="10" '
        f'text-anchor="{anchor}">{escape(text)}</text>',
    ]
