"""A bar chart drawn on the server as inline SVG: no script, no image request, readable by screen readers."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

WIDTH = 480
HEIGHT = 120
AXIS = 16  # room under the bars for the first and last label


def bars(values: Sequence[int], labels: Sequence[str], *, title: str) -> Markup:
    """One bar per value, scaled to the largest; each bar carries its label and value as a tooltip
    (<title>), and the chart as a whole an accessible name."""
    if len(values) != len(labels):
        raise ValueError("one label per value")
    top = max(values, default=0) or 1
    slot = WIDTH / max(len(values), 1)
    plot = HEIGHT - AXIS
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line x1="0" y1="{plot}" x2="{WIDTH}" y2="{plot}" class="axis"/>',
    ]
    for n, (value, label) in enumerate(zip(values, labels, strict=True)):
        height = round(plot * value / top, 1)
        x = round(n * slot + slot * 0.1, 1)
        parts.append(
            f'<rect x="{x}" y="{round(plot - height, 1)}" width="{round(slot * 0.8, 1)}" height="{height}">'
            f"<title>{escape(label)}: {value}</title></rect>"
        )
    if labels:
        parts.append(f'<text x="0" y="{HEIGHT - 2}">{escape(labels[0])}</text>')
        parts.append(f'<text x="{WIDTH}" y="{HEIGHT - 2}" text-anchor="end">{escape(labels[-1])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above
