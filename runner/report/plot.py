"""An inline SVG bar chart: request starts per window, with the plan's limit as a line."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Final

__all__ = ["clock", "requests_plot"]

WIDTH: Final = 1000
HEIGHT: Final = 220
_LEFT, _RIGHT, _TOP, _BOTTOM = 44, 12, 14, 30
_MAX_BAR: Final = 60.0


def clock(seconds: float) -> str:
    """`m:ss`, or `h:mm:ss` from an hour on."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def requests_plot(line: Mapping[str, object], label: str) -> str:
    bars = _ints(line.get("bars"))
    limit = line.get("limit")
    window = float(str(line.get("window", 1.0)))
    group = int(str(line.get("group", 1)))
    top = max([*bars, limit if isinstance(limit, int) else 0, 1])
    scale = _nice_ceiling(top * 1.1)
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM
    step = plot_w / max(len(bars), 1)

    def y(value: float) -> float:
        return _TOP + plot_h - plot_h * value / scale

    parts = [
        f'<svg class="plot" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">',
        f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" class="frame"/>',
    ]
    for tick in (0, scale / 2, scale):
        parts.append(
            f'<line x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            f'class="grid"/><text x="{_LEFT - 6}" y="{y(tick) + 4:.1f}" class="tick" '
            f'text-anchor="end">{tick:g}</text>'
        )
    width = min(max(step * 0.8, 0.5), _MAX_BAR)  # a run shorter than a window: one slim bar
    for i, count in enumerate(bars):
        x = _LEFT + i * step + (step - width) / 2
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y(count):.1f}" width="{width:.1f}" '
            f'height="{y(0) - y(count):.1f}"><title>{clock(i * group * window)}: '
            f"{count} starts</title></rect>"
        )
    for i in _label_positions(len(bars)):
        parts.append(
            f'<text x="{_LEFT + i * step:.1f}" y="{HEIGHT - 10}" class="tick" '
            f'text-anchor="middle">{clock(i * group * window)}</text>'
        )
    if isinstance(limit, int):
        parts.append(
            f'<line x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y(limit):.1f}" y2="{y(limit):.1f}" '
            f'class="limit"/><text x="{WIDTH - _RIGHT - 4}" y="{y(limit) - 5:.1f}" '
            f'class="limit-label" text-anchor="end">plan: {limit} per {window:g} s</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _ints(value: object) -> list[int]:
    return [v for v in value if isinstance(v, int)] if isinstance(value, Sequence) else []


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5 × 10^k that is at least `value` (an even axis)."""
    exponent = 10 ** math.floor(math.log10(max(value, 1e-9)))
    for mantissa in (1, 2, 5, 10):
        if mantissa * exponent >= value:
            return float(mantissa * exponent)
    return float(10 * exponent)


def _label_positions(count: int) -> list[int]:
    """About six evenly spaced bar indices for time labels, the first and last included."""
    if count <= 1:
        return [0]
    stride = max(1, math.ceil(count / 6))
    return [*range(0, count, stride), count]
