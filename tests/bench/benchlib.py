"""Shared pieces of the benchmarks: sliding-window arithmetic, an event sink, table printing,
and a sandbox served from a process of its own.

Nothing here asserts a timing: the benchmarks print figures next to baselines measured in the
same run, and `run.py` writes everything to one JSON file as well.
"""

from __future__ import annotations

import bisect
import statistics
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tests.torture.harness import SandboxProcess

__all__ = [
    "EventLog",
    "SandboxBox",
    "Table",
    "WindowStats",
    "max_overlap",
    "median",
    "refused",
    "window_stats",
]


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


def max_overlap(spans: Iterable[tuple[float, float]]) -> int:
    """Most (start, end) spans open at one moment; one ending as another starts does not count."""
    pairs = list(spans)
    events = sorted([(a, 1) for a, _ in pairs] + [(b, -1) for _, b in pairs])
    best = now = 0
    for _, delta in events:
        now += delta
        best = max(best, now)
    return best


def refused(entries: Iterable[SimpleNamespace]) -> int:
    """Requests of `entries` (ledger entries) the emulator refused for a rate or concurrency
    limit: a 429 or a throttled reply."""
    return sum(1 for e in entries if e.status == 429 or e.throttled)


class SandboxBox(SandboxProcess):
    """A sandbox served by a process of its own, for timing: a sandbox thread in the measuring
    process would share its interpreter lock, and under a burst of requests the emulator would
    stamp each arrival tens of milliseconds late, which no real server a network away does.

    `config` is sandbox YAML data; credentials reach the sandbox process through `env`.
    """

    def __init__(self, config: Mapping[str, Any], env: Mapping[str, str]) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="tts-bench-sandbox-")
        try:
            super().__init__(Path(self._tmp.name), config, env)
        except BaseException:
            self._tmp.cleanup()
            raise

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._tmp.cleanup()

    def entries(self, provider: str) -> list[SimpleNamespace]:
        """The emulator's ledger entries of `provider` (attributes as `LedgerEntry`)."""
        return [SimpleNamespace(**e) for e in self.ledger() if e["provider"] == provider]

    def count_429(self, provider: str) -> int:
        return refused(self.entries(provider))

    def max_in_flight(self, provider: str) -> int:
        return max_overlap((e.started_at, e.finished_at) for e in self.entries(provider))
