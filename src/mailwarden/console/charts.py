"""Charts drawn on the server as SVG: stacked bars over days and horizontal bars for top lists.

Pure functions from numbers to markup; every label is escaped, so a sender's address cannot become
markup. No script and no inline style: colours come from CSS classes (`series-<name>`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from html import escape

from markupsafe import Markup

WIDTH = 640
BAR_ROW = 22
LABEL_WIDTH = 230


def stacked_days(
    days: Sequence[str], series: Mapping[str, Sequence[int]], *, title: str, label: Callable[[str], str] = str
) -> Markup:
    """One stacked column per day, a segment per series (in the mapping's order), with a legend. A series
    is named by its key (its CSS class, `series-<key>`); `label` gives the words shown for it."""
    height, top, bottom, left = 220, 10, 40, 40
    plot_h = height - top - bottom
    totals = [sum(values[i] for values in series.values()) for i in range(len(days))]
    peak = max(totals, default=0) or 1
    slot = (WIDTH - left - 10) / max(len(days), 1)
    bar_w = max(slot * 0.7, 1.0)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height + 20 * ((len(series) + 3) // 4)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
        f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{WIDTH - 10}" y2="{top + plot_h}"/>',
        f'<text class="tick" x="{left - 4}" y="{top + 8}" text-anchor="end">{peak}</text>',
        f'<text class="tick" x="{left - 4}" y="{top + plot_h}" text-anchor="end">0</text>',
    ]
    for i, day in enumerate(days):
        x = left + i * slot + (slot - bar_w) / 2
        y: float = top + plot_h
        for name, values in series.items():
            value = values[i]
            if not value:
                continue
            h = plot_h * value / peak
            y -= h
            parts.append(
                f'<rect class="series-{escape(name)}" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}">'
                f"<title>{escape(day)} {escape(label(name))}: {value}</title></rect>"
            )
        if len(days) <= 16 or i % max(len(days) // 8, 1) == 0:
            parts.append(
                f'<text class="tick" x="{x + bar_w / 2:.1f}" y="{top + plot_h + 14}" '
                f'text-anchor="middle">{escape(day[5:])}</text>'
            )
    for j, name in enumerate(series):
        lx, ly = left + (j % 4) * 150, height + 20 * (j // 4) - 4
        parts.append(f'<rect class="series-{escape(name)}" x="{lx}" y="{ly - 10}" width="12" height="12"/>')
        parts.append(f'<text class="legend" x="{lx + 16}" y="{ly}">{escape(label(name))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text above is escaped


def bars(items: Sequence[tuple[str, int]], *, title: str, css: str = "bar") -> Markup:
    """A horizontal bar per (label, count), longest first as given."""
    height = BAR_ROW * max(len(items), 1) + 4
    peak = max((count for _, count in items), default=0) or 1
    room = WIDTH - LABEL_WIDTH - 50
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>"
    ]
    for i, (label, count) in enumerate(items):
        y = i * BAR_ROW + 2
        w = max(room * count / peak, 1.0)
        shown = label if len(label) <= 34 else label[:33] + "…"
        parts.append(
            f'<text class="label" x="{LABEL_WIDTH - 6}" y="{y + 15}" text-anchor="end">{escape(shown)}</text>'
            f'<rect class="{escape(css)}" x="{LABEL_WIDTH}" y="{y + 3}" width="{w:.1f}" height="{BAR_ROW - 6}">'
            f"<title>{escape(label)}: {count}</title></rect>"
            f'<text class="value" x="{LABEL_WIDTH + w + 6:.1f}" y="{y + 15}">{count}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text above is escaped
