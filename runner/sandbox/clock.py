"""The sandbox clock: real monotonic time plus an offset that tests can advance.

Every time-to-live, processing time and rate window in the sandbox is measured on this clock, so
advancing it by a day makes a 24-hour expiry happen at once, while requests in flight keep
measuring ordinary elapsed time in between.
"""

from __future__ import annotations

import time

import anyio

__all__ = ["SandboxClock"]


class SandboxClock:
    """Monotonic seconds (`now`) and a matching wall clock (`wall`), both advanceable."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._mono_origin = time.monotonic()
        self._wall_origin = time.time()
        # Created lazily: an anyio Event needs a running event loop, the clock may not have one yet.
        self._changed: anyio.Event | None = None

    def __repr__(self) -> str:
        return f"<SandboxClock now={self.now():.3f} advanced={self._offset:.3f}s>"

    @property
    def advanced(self) -> float:
        """Total seconds added by `advance` so far."""
        return self._offset

    def now(self) -> float:
        """Seconds on the sandbox's monotonic clock."""
        return time.monotonic() + self._offset

    def wall(self) -> float:
        """Epoch seconds as the emulated services see them (real start time + sandbox elapsed)."""
        return self._wall_origin + (self.now() - self._mono_origin)

    def advance(self, seconds: float) -> None:
        """Move the clock forward; sleepers on the clock whose deadline passed wake up at once."""
        if seconds < 0:
            raise ValueError(f"the sandbox clock only moves forward, not by {seconds} s")
        self._offset += seconds
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    async def sleep(self, seconds: float) -> None:
        """Sleep `seconds` of sandbox time: real time, cut short by `advance`."""
        await self.sleep_until(self.now() + seconds)

    async def sleep_until(self, deadline: float) -> None:
        while (remaining := deadline - self.now()) > 0:
            if self._changed is None:
                self._changed = anyio.Event()
            with anyio.move_on_after(remaining):
                await self._changed.wait()
