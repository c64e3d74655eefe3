"""Line plots as SVG text, drawn on the server: the monitor's pages need no JavaScript
library and work in any browser, including a headless one in the tests."""

from __future__ import annotations

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


def line_plot(
    series: dict[str, list[int]],
    labels: list[str],
    title: str,
    width: int = 760,
    height: int = 260,
) -> str:
    """One polyline per series over shared x labels (e.g. hours), with a legend."""
    left, right, top, bottom = 50, 120, 30, 30
    inner_w, inner_h = width - left - right, height - top - bottom
    peak = max([1, *(v for values in series.values() for v in values)])
    points = max(1, len(labels) - 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}">',
        f'<text x="{left}" y="18" font-size="14">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top + inner_h}" x2="{left + inner_w}" y2="{top + inner_h}" '
        'stroke="#333"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + inner_h}" stroke="#333"/>',
        f'<text x="{left - 6}" y="{top + 4}" font-size="10" text-anchor="end">{peak}</text>',
        f'<text x="{left - 6}" y="{top + inner_h}" font-size="10" text-anchor="end">0</text>',
    ]
    if labels:
        parts.append(f'<text x="{left}" y="{height - 8}" font-size="10">{escape(labels[0])}</text>')
        parts.append(
            f'<text x="{left + inner_w}" y="{height - 8}" font-size="10" text-anchor="end">'
            f"{escape(labels[-1])}</text>"
        )
    for index, (name, values) in enumerate(sorted(series.items())):
        colour = COLOURS.get(name, "#000")
        coords = " ".join(
            f"{left + inner_w * i / points:.1f},{top + inner_h * (1 - v / peak):.1f}"
            for i, v in enumerate(values)
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
