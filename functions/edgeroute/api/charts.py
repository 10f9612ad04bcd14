"""Server-rendered SVG charts for the dashboard: no script, no library, no CDN.

Invariant: every label is HTML-escaped (tenant names and model names are operators'
and callers' text), and each bar carries its figure twice: as text a person reads and
as ``data-value`` a test reads, both from the same number. Charts scale with their
container (``viewBox``, width 100%), so they read on a phone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

_WIDTH = 640
_ROW = 26
_LABEL_W = 190
_VALUE_W = 110
_COLOURS = ("#2f6fdf", "#e07b39", "#3aa675", "#b84fc4", "#c9a227", "#5d6d7e")


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    shown: str  # the value as the page prints it


def bar_chart(chart_id: str, title: str, bars: Sequence[Bar], note: str = "") -> str:
    """Horizontal bars, one row each, longest = the largest value."""
    if not bars:
        return _figure(chart_id, title, '<p class="empty">no requests in this range</p>', note)
    top = max((b.value for b in bars), default=0) or 1
    span = _WIDTH - _LABEL_W - _VALUE_W
    rows = []
    for i, bar in enumerate(bars):
        y = i * _ROW
        width = max(bar.value / top * span, 1 if bar.value else 0)
        rows.append(
            f'<g class="bar" data-label="{escape(bar.label)}" data-value="{bar.value!r}">'
            f'<text x="{_LABEL_W - 6}" y="{y + 17}" text-anchor="end">'
            f"{escape(_short(bar.label))}</text>"
            f'<rect x="{_LABEL_W}" y="{y + 4}" width="{width:.1f}" height="{_ROW - 8}" '
            f'fill="{_COLOURS[i % len(_COLOURS)]}"/>'
            f'<text class="value" x="{_LABEL_W + width + 6:.1f}" y="{y + 17}">'
            f"{escape(bar.shown)}</text></g>"
        )
    height = len(bars) * _ROW
    svg = (
        f'<svg viewBox="0 0 {_WIDTH} {height}" width="100%" role="img" '
        f'aria-label="{escape(title)}">{"".join(rows)}</svg>'
    )
    return _figure(chart_id, title, svg, note)


def share_chart(chart_id: str, title: str, parts: Sequence[Bar], note: str = "") -> str:
    """One bar split into parts by share (each ``value`` a fraction of 1)."""
    if not any(p.value for p in parts):
        return _figure(chart_id, title, '<p class="empty">no requests in this range</p>', note)
    x = 0.0
    pieces, legend = [], []
    for i, part in enumerate(parts):
        width = part.value * _WIDTH
        colour = _COLOURS[i % len(_COLOURS)]
        pieces.append(
            f'<g class="bar" data-label="{escape(part.label)}" data-value="{part.value!r}">'
            f'<rect x="{x:.1f}" y="0" width="{width:.1f}" height="28" fill="{colour}"/></g>'
        )
        legend.append(
            f'<li><span class="swatch" style="background:{colour}"></span>'
            f'{escape(part.label)}: <span class="value">{escape(part.shown)}</span></li>'
        )
        x += width
    svg = (
        f'<svg viewBox="0 0 {_WIDTH} 28" width="100%" role="img" '
        f'aria-label="{escape(title)}">{"".join(pieces)}</svg>'
        f'<ul class="legend">{"".join(legend)}</ul>'
    )
    return _figure(chart_id, title, svg, note)


def _figure(chart_id: str, title: str, body: str, note: str) -> str:
    caption = f'<p class="note">{escape(note)}</p>' if note else ""
    return (
        f'<figure class="chart" id="{escape(chart_id)}" data-chart="{escape(chart_id)}">'
        f"<figcaption>{escape(title)}</figcaption>{body}{caption}</figure>"
    )


def _short(label: str, most: int = 26) -> str:
    return label if len(label) <= most else label[: most - 1] + "…"
