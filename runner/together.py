"""What the manifests of one process share: the accounts' limiters, and when to stop.

SIGINT/SIGTERM or the `--deadline` stop every manifest from taking new work; what is in
flight finishes (tasks already paid for are still polled and downloaded). A second signal
cancels in-flight work at once: it is resumed by the next run.
"""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio

from runner.pacing import Pacing
from runner.scheduler import StopFlag

__all__ = ["Together", "together"]


@dataclass
class Together:
    stop: StopFlag
    pacing: Pacing
    deadline_at: float | None  #: time.monotonic() of the deadline, if any


@asynccontextmanager
async def together(
    deadline: float | None, environ: Mapping[str, str] | None, sandbox: bool
) -> AsyncIterator[Together]:
    """Watch signals and the deadline for as long as the manifests run."""
    stop = StopFlag()
    pacing = Pacing(environ=environ, keep_history=not sandbox)
    deadline_at = None if deadline is None else time.monotonic() + deadline
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_signals, stop)
            if deadline is not None:
                tg.start_soon(_deadline, stop, deadline)
            yield Together(stop, pacing, deadline_at)
            tg.cancel_scope.cancel()
    finally:
        pacing.close()


async def _watch_signals(stop: StopFlag) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if stop:
                stop.cancel_now()  # a second signal: in-flight work is resumed next run
                return
            stop.set(f"stopped by {signal.Signals(signum).name}")


async def _deadline(stop: StopFlag, seconds: float) -> None:
    await anyio.sleep(seconds)
    stop.set(f"deadline of {seconds:g} s reached")
