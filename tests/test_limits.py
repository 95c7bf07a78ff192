"""The account limiter under a virtual clock: no window ever holds more than N starts, no more
than C requests are ever in flight, and under saturation it reaches the plan's rate.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from dataclasses import dataclass, field

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.limits import POLL, WORK, Limiter, Priority, download_priority
from runner.plans import Limits


@dataclass
class VirtualClock:
    """Time that only moves when every task is blocked: to the next sleeper's wake-up."""

    now: float = 0.0
    _sleepers: list[tuple[float, int, anyio.Event]] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        event = anyio.Event()
        heapq.heappush(self._sleepers, (self.now + max(seconds, 0.0), next(self._seq), event))
        await event.wait()

    async def drive(self, done: anyio.Event) -> None:
        while not done.is_set():
            await _all_other_tasks_blocked()
            if self._sleepers:
                wake, _, event = heapq.heappop(self._sleepers)
                self.now = max(self.now, wake)
                event.set()


async def _all_other_tasks_blocked() -> None:
    """Like anyio.wait_all_tasks_blocked, without its 0.1 s real-time polling (asyncio only)."""
    me = asyncio.current_task()
    while True:
        await asyncio.sleep(0)
        runnable = [
            t
            for t in asyncio.all_tasks()
            if t is not me and (t._fut_waiter is None or t._fut_waiter.done())  # type: ignore[attr-defined]
        ]
        if not runnable:
            return


@dataclass
class Spy:
    starts: list[float] = field(default_factory=list)
    order: list[int] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0


async def _simulate(
    limits: Limits, arrivals: list[tuple[float, float]], margin: float | None = None
) -> Spy:
    clock = VirtualClock()
    limiter = Limiter(limits, clock=clock, sleep=clock.sleep, margin=margin)
    spy = Spy()
    done = anyio.Event()

    async def request(index: int, arrival: float, duration: float) -> None:
        await clock.sleep(arrival)
        async with limiter.slot():
            spy.starts.append(clock.now)
            spy.order.append(index)
            spy.in_flight += 1
            spy.max_in_flight = max(spy.max_in_flight, spy.in_flight)
            await clock.sleep(duration)
            spy.in_flight -= 1

    async with anyio.create_task_group() as tg:
        tg.start_soon(clock.drive, done)
        async with anyio.create_task_group() as requests:
            for i, (arrival, duration) in enumerate(arrivals):
                requests.start_soon(request, i, arrival, duration)
        done.set()
    return spy


def _max_in_window(starts: list[float], window: float) -> int:
    """Most starts inside any half-open window [t, t + window)."""
    ordered = sorted(starts)
    best, j = 0, 0
    for i, t in enumerate(ordered):
        while ordered[i] - ordered[j] >= window:
            j += 1
        best = max(best, i - j + 1)
        del t
    return best


limits_strategy = st.builds(
    Limits,
    requests=st.integers(1, 12),
    per_seconds=st.floats(0.5, 30, allow_nan=False),
    concurrent=st.one_of(st.none(), st.integers(1, 6)),
)
arrivals_strategy = st.lists(
    st.tuples(st.floats(0, 40, allow_nan=False), st.floats(0, 5, allow_nan=False)),
    min_size=1,
    max_size=50,
)


@pytest.mark.anyio
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(limits=limits_strategy, arrivals=arrivals_strategy)
async def test_no_window_exceeds_the_plan_and_concurrency_holds(
    limits: Limits, arrivals: list[tuple[float, float]]
) -> None:
    spy = await _simulate(limits, arrivals)
    assert len(spy.starts) == len(arrivals)
    assert limits.requests is not None
    assert limits.per_seconds is not None
    assert _max_in_window(spy.starts, limits.per_seconds) <= limits.requests
    if limits.concurrent is not None:
        assert spy.max_in_flight <= limits.concurrent


@pytest.mark.anyio
@pytest.mark.parametrize(("requests", "per_seconds"), [(60, 60.0), (300, 60.0), (10, 2.0)])
async def test_saturation_reaches_the_plan(requests: int, per_seconds: float) -> None:
    windows = 4
    spy = await _simulate(
        Limits(requests=requests, per_seconds=per_seconds),
        [(0.0, 0.0)] * (requests * windows + 1),
    )
    horizon = windows * per_seconds
    started = sum(1 for t in spy.starts if t < horizon)
    assert started / (requests * windows) >= 0.995
    assert _max_in_window(spy.starts, per_seconds) == requests


@pytest.mark.anyio
async def test_starts_are_served_in_arrival_order() -> None:
    spy = await _simulate(
        Limits(requests=3, per_seconds=1.0, concurrent=2),
        [(i * 0.01, 0.3) for i in range(20)],
    )
    assert spy.order == list(range(20))


@pytest.mark.anyio
async def test_pause_holds_every_start_until_it_ends() -> None:
    clock = VirtualClock()
    limiter = Limiter(Limits(requests=100, per_seconds=1.0), clock=clock, sleep=clock.sleep)
    limiter.pause_until(7.5)
    starts: list[float] = []
    done = anyio.Event()

    async def one() -> None:
        async with limiter.slot():
            starts.append(clock.now)

    async with anyio.create_task_group() as tg:
        tg.start_soon(clock.drive, done)
        async with anyio.create_task_group() as inner:
            for _ in range(5):
                inner.start_soon(one)
        done.set()
    assert starts == [7.5] * 5


@pytest.mark.anyio
async def test_remembered_history_prevents_a_burst_after_a_previous_run() -> None:
    clock = VirtualClock(now=100.0)
    limiter = Limiter(
        Limits(requests=5, per_seconds=10.0), clock=clock, sleep=clock.sleep, margin=0
    )
    limiter.remember([95.0, 96.0, 97.0, 98.0, 99.0])  # the previous run used the whole window
    starts: list[float] = []
    done = anyio.Event()

    async def one() -> None:
        async with limiter.slot():
            starts.append(clock.now)

    async with anyio.create_task_group() as tg:
        tg.start_soon(clock.drive, done)
        async with anyio.create_task_group() as inner:
            for _ in range(3):
                inner.start_soon(one)
        done.set()
    assert starts == [105.0, 106.0, 107.0]
    assert _max_in_window([95.0, 96.0, 97.0, 98.0, 99.0, *starts], 10.0) == 5


def test_repr_names_the_limits() -> None:
    limiter = Limiter(Limits(requests=60, per_seconds=60.0, concurrent=5))
    assert repr(limiter) == "<Limiter requests=60 per=60.0s concurrent=5 in_flight=0>"


@pytest.mark.anyio
async def test_downloads_by_expiry_then_new_work_then_polls() -> None:
    clock = VirtualClock()
    limiter = Limiter(Limits(requests=1, per_seconds=1.0), clock=clock, sleep=clock.sleep, margin=0)
    served: list[str] = []
    done = anyio.Event()

    async def one(name: str, priority: Priority) -> None:
        async with limiter.slot(priority):
            served.append(name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(clock.drive, done)
        async with anyio.create_task_group() as inner:
            inner.start_soon(one, "first", WORK)  # takes the window's only start
            await clock.sleep(0)
            for name, priority in [
                ("submit-a", WORK),
                ("poll", POLL),
                ("download-late", download_priority(2000.0)),
                ("submit-b", WORK),
                ("download-soon", download_priority(1000.0)),
            ]:
                inner.start_soon(one, name, priority)
                await clock.sleep(0)  # let it queue before the next one arrives
        done.set()
    assert served == ["first", "download-soon", "download-late", "submit-a", "submit-b", "poll"]


def test_repeated_429s_stretch_the_window_and_quiet_windows_shrink_it_back() -> None:
    clock = VirtualClock()
    limiter = Limiter(Limits(requests=10, per_seconds=10.0), clock=clock, margin=0)
    limiter.throttled(1.0)
    assert limiter.stretch() == 1.0  # one 429: a pause, not a slowdown
    assert limiter.next_start() == 1.0
    clock.now = 5.0
    limiter.throttled(1.0)  # again within two windows: slower
    assert limiter.stretch() == pytest.approx(1.25)
    for _ in range(10):
        limiter.throttled(0.0)
    assert limiter.stretch() == 4.0  # capped
    clock.now = 5.0 + 10.0 * 1.5  # within one quiet window of the last: unchanged
    assert limiter.stretch() == 4.0
    clock.now = 5.0 + 10.0 * 2  # a whole window quiet after the first: one step of recovery
    assert limiter.stretch() == pytest.approx(4.0 * 0.9)
    clock.now = 5.0 + 10.0 * 200
    assert limiter.stretch() == 1.0
    assert limiter.throttles == 12


@pytest.mark.anyio
async def test_a_stretched_window_lowers_the_rate_and_never_breaches_the_plan() -> None:
    clock = VirtualClock()
    limiter = Limiter(Limits(requests=4, per_seconds=2.0), clock=clock, sleep=clock.sleep, margin=0)
    limiter.throttled(0.0)
    limiter.throttled(0.0)  # stretch 1.25: windows of 2.5 s
    starts: list[float] = []
    done = anyio.Event()

    async def one() -> None:
        async with limiter.slot():
            starts.append(clock.now)

    async with anyio.create_task_group() as tg:
        tg.start_soon(clock.drive, done)
        async with anyio.create_task_group() as inner:
            for _ in range(12):
                inner.start_soon(one)
        done.set()
    assert _max_in_window(starts, 2.5) == 4
    assert starts[4] == pytest.approx(2.5)
    assert starts[-1] < 2.5 * 2 + 0.01  # shrinking back was not due within this short burst


def test_every_request_is_logged_when_it_leaves_and_again_when_its_reply_came() -> None:
    log: list[tuple[str, int, float]] = []
    clock = VirtualClock(now=3.0)

    class Log:
        def started(self, at: float) -> int:
            log.append(("started", len(log) + 1, at))
            return len(log)

        def finished(self, handle: int, at: float) -> None:
            log.append(("finished", handle, at))

    limiter = Limiter(Limits(requests=5, per_seconds=1.0), clock=clock, log=Log())

    async def one() -> None:
        async with limiter.slot():
            clock.now = 3.25

    anyio.run(one)
    assert log == [("started", 1, 3.0), ("finished", 1, 3.25)]


@pytest.mark.anyio
async def test_a_start_counts_from_when_its_request_really_left() -> None:
    """Two slots granted at 0 whose requests left at 0.5 (a connection was opened first): the
    server counts them at 0.5, so the third may not start before 0.5 + T."""
    clock = VirtualClock()
    limiter = Limiter(Limits(requests=2, per_seconds=1.0), clock=clock, sleep=clock.sleep, margin=0)
    starts: list[float] = []
    done = anyio.Event()

    async def slow_to_connect() -> None:
        async with limiter.slot() as slot:
            starts.append(clock.now)
            await clock.sleep(0.5)
            slot.sent()

    async def later() -> None:
        await clock.sleep(0.1)
        async with limiter.slot():
            starts.append(clock.now)

    async with anyio.create_task_group() as tg:
        tg.start_soon(clock.drive, done)
        async with anyio.create_task_group() as inner:
            inner.start_soon(slow_to_connect)
            inner.start_soon(slow_to_connect)
            inner.start_soon(later)
        done.set()
    assert starts == [0.0, 0.0, 1.5]
    assert limiter.recent_starts() == [0.5, 1.5]


def test_a_quick_reply_bounds_when_the_server_counted_and_a_slow_one_counts_from_sending() -> None:
    """Both sent at 0.1: a reply at 0.12 (within `lag`) moves its start there, the latest the
    server can have counted it, however long its queue; a reply at 5.0 was synthesis, not
    queueing, so that start stays `lag` after sending. The next start waits for the first."""
    clock = VirtualClock()
    limiter = Limiter(Limits(requests=2, per_seconds=1.0), clock=clock, margin=0)
    limiter.lag = 0.05

    async def two() -> None:
        async with limiter.slot() as quick, limiter.slot() as slow:
            clock.now = 0.1
            quick.sent()
            slow.sent()
            clock.now = 0.12
            quick.answered()
            assert limiter.recent_starts() == pytest.approx([0.1, 0.12])
            clock.now = 5.0
            slow.answered()

    anyio.run(two)
    assert limiter.recent_starts() == pytest.approx([0.12, 0.15])
    assert limiter.next_start() == pytest.approx(1.12)


def test_the_default_margin_and_lag_cost_at_most_0_35_percent_of_a_real_window() -> None:
    limiter = Limiter(Limits(requests=60, per_seconds=60.0))
    assert (limiter.margin + limiter.lag) / 60.0 <= 0.0035
    assert limiter.lag >= 0.1  # a real network's front-door delay fits in it
