"""Shared pieces of the benchmarks: sliding-window arithmetic, an event sink, table printing.

Nothing here asserts a timing: the benchmarks print figures next to baselines measured in the
same run, and `run.py` writes everything to one JSON file as well.
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["EventLog", "Table", "WindowStats", "median", "window_stats"]


@dataclass(frozen=True)
class WindowStats:
    starts: int
    worst: int  #: most starts in any window (t - T, t] (half-open, like the sandbox)
    excess: int  #: worst - N, at least 0
    over: int  #: starts whose trailing window holds more than N (each would be refused)


def window_stats(starts: Iterable[float], n: int, t: float) -> WindowStats:
    """Worst sliding window of length `t` over `starts`, against a plan of `n` per window."""
    times = sorted(starts)
    worst = over = 0
    for i, now in enumerate(times):
        # Starts in (now - t, now]: from the first one later than now - t up to i.
        count = i + 1 - bisect.bisect_right(times, now - t, 0, i + 1)
        worst = max(worst, count)
        over += count > n
    return WindowStats(len(times), worst, max(0, worst - n), over)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


class EventLog:
    """An Events sink that keeps every event, for reading figures after a run."""

    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, object]]] = []

    def emit(self, kind: str, fields: Mapping[str, object]) -> None:
        self.records.append((kind, dict(fields)))

    def close(self) -> None:
        pass

    def of(self, kind: str) -> list[dict[str, object]]:
        return [fields for k, fields in self.records if k == kind]


class Table:
    """A compact fixed-width table: a header row, then rows of already formatted cells."""

    def __init__(self, title: str, columns: Sequence[str]) -> None:
        self.title = title
        self.columns = list(columns)
        self.rows: list[list[str]] = []

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def render(self) -> str:
        widths = [len(c) for c in self.columns]
        for row in self.rows:
            widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

        def line(cells: Sequence[str]) -> str:
            first = cells[0].ljust(widths[0])
            rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
            return "  ".join([first, *rest]).rstrip()

        rule = "-" * len(line(self.columns))
        return "\n".join([self.title, line(self.columns), rule, *map(line, self.rows)])

    def print(self) -> None:
        print(self.render(), flush=True)
        print(flush=True)


def pct(value: float) -> str:
    return f"{value:.2%}"


def secs(value: float) -> str:
    return f"{value:.3f} s"


def ratio(value: float, baseline: float) -> str:
    if baseline == 0:
        return "-"
    return f"{value / baseline:.3f}x"
