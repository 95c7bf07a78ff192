"""Request starts over time, per account, against the plan's line.

Starts are counted in consecutive windows of the plan's length (`per_seconds`), so each bar is
directly comparable with the plan's `requests`. The bars are a fixed grid, though, and the
limiter promises more than that: no *sliding* window of that length ever holds more than
`requests` starts. `peak_in_window` is that sliding maximum, found with two pointers over the
sorted starts, and is the number to hold against the plan.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from runner.plans import Limits

__all__ = ["MAX_BARS", "timeline"]

#: More windows than this are drawn in groups: each bar is then the busiest window of its group,
#: still comparable with the plan's line.
MAX_BARS: Final = 240
#: Without a plan window, the run is cut into about this many windows of a round length.
_AUTO_BARS: Final = 40
_ROUND: Final = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)


def timeline(
    starts: Sequence[float], limits: Limits, begin: float, end: float, source: str
) -> dict[str, object]:
    """A plain dict: window length, bars (starts per window), the plan's line, the peak."""
    times = sorted(starts)
    end = max(end, times[-1] if times else begin, begin)
    begin = min(begin, times[0]) if times else begin
    span = max(end - begin, 1e-3)
    window = limits.per_seconds or _round_window(span / _AUTO_BARS)
    counts = [0] * max(1, math.ceil(span / window))
    for t in times:
        counts[min(int((t - begin) // window), len(counts) - 1)] += 1
    group = max(1, math.ceil(len(counts) / MAX_BARS))
    bars = [max(counts[i : i + group]) for i in range(0, len(counts), group)]
    return {
        "source": source,
        "begin": round(begin, 3),
        "end": round(end, 3),
        "window": window,
        "group": group,  #: windows per bar (each bar shows the busiest of its group)
        "bars": bars,
        "limit": limits.requests if limits.per_seconds else None,
        "starts": len(times),
        "peak_in_window": _sliding_peak(times, window),
    }


def _sliding_peak(times: Sequence[float], window: float) -> int:
    """The most starts in any half-open interval [t, t + window)."""
    peak, first = 0, 0
    for last, t in enumerate(times):
        while times[first] <= t - window:
            first += 1
        peak = max(peak, last - first + 1)
    return peak


def _round_window(seconds: float) -> float:
    for candidate in _ROUND:
        if candidate >= seconds:
            return float(candidate)
    return float(_ROUND[-1])
