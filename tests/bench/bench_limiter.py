"""Benchmark 1: pacing at a plan of N request starts per sliding window of T seconds.

TTS.ai's Pro (60 per minute, 5 at once) and Enterprise (300 per minute, 20 at once) plans,
compressed 20 times in time: 60 per 3 s and 300 per 3 s, with the plans' concurrency; a
concurrency-bound plan, where each request takes 0.2 s at the server and only 3 may be in
flight; and the Pro plan compressed only twice (60 per 30 s), where fixed costs per window
weigh a tenth as much.

Contestants, each against its own fresh TTS.ai emulator (runner/sandbox, served by a process of
its own, as a real server is) whose plan is the same compressed N per T:
- `runner.limits.Limiter` (ours), used directly around raw HTTP requests;
- `aiolimiter.AsyncLimiter(N, T)`, the usual off-the-shelf choice (a leaky bucket), plus an
  `asyncio.Semaphore(C)` where the plan caps concurrency (the naive gather runner);
- strictly spaced starts, one every T/N, aiometer style (`next = max(next, now) + T/N`), plus
  the same semaphore;
- the whole tts-runner pipeline (`run_manifest`), where noted.

Every contestant gets all of its work at once (saturation). Figures:
- pace: the plan's minimum time for the W starts (the W-th start cannot come before
  floor((W-1)/N)*T, nor, with C in flight, before the shortest W-C request durations laid into
  C lanes) divided by the time the contestant took from its first start to its last. 100 % is
  exactly at the plan; above 100 % is faster than the plan allows (it breaches).
- worst: most starts in any window (t-T, t]; over: starts whose trailing window holds more
  than N (each would be refused by a server counting a sliding window); both from the client's
  own start times. The emulator's ledger gives the 429s and its own view of the worst window.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Protocol

import aiohttp
import anyio
from aiolimiter import AsyncLimiter
from benchlib import EventLog, SandboxBox, Table, WindowStats, max_overlap, pct, window_stats

from runner.events import Events
from runner.limits import Limiter
from runner.manifest import load_manifest
from runner.plans import Limits
from runner.providers.context import RetryPolicy
from runner.run import RunOptions, run_manifest

__all__ = ["main"]

KEY = "sk-tts-bench-0123456789abcdef"
LABEL = "bench"
BODY = {"model": "kokoro", "voice": "af_bella", "text": "A short line.", "format": "wav"}
FAST_RETRY = RetryPolicy(attempts=6, base_delay=0.01, max_delay=0.05)


@dataclass(frozen=True)
class Case:
    name: str
    n: int  #: request starts per window
    t: float  #: window, seconds
    work: int  #: requests to make
    concurrent: int | None = None  #: plan's concurrency cap (None: unbounded)
    hold: float = 0.0  #: seconds the server holds each reply (a `slow` fault on every request)

    def describe(self) -> str:
        conc = f"{self.concurrent} in flight" if self.concurrent else "no concurrency cap"
        hold = f", each request held {self.hold:.2f} s by the server" if self.hold else ""
        return f"{self.n} per {self.t:g} s, {conc}, {self.work} requests{hold}"


CASES = (
    Case("A: 60 per 3 s (Pro shape)", 60, 3.0, 121, concurrent=5),
    Case("B: 300 per 3 s (Enterprise shape)", 300, 3.0, 601, concurrent=20),
    Case("C: concurrency-bound", 60, 3.0, 60, concurrent=3, hold=0.2),
    # What a window of a fixed cost (a reply's latency, a timer's lateness) weighs shrinks
    # with the window: the Pro plan compressed only twice, one window long.
    Case("E: 60 per 30 s (Pro shape, 2x compressed)", 60, 30.0, 61, concurrent=5),
)


# -- contestants --------------------------------------------------------------------------------


class Gate(Protocol):
    def slot(self) -> AbstractAsyncContextManager[object]: ...


class Ours:
    def __init__(self, n: int, t: float, concurrent: int | None, limiter: Limiter | None = None):
        self.limiter = limiter or Limiter(Limits(requests=n, per_seconds=t, concurrent=concurrent))

    def slot(self) -> AbstractAsyncContextManager[object]:
        return self.limiter.slot()


class Aio:
    def __init__(self, n: int, t: float, concurrent: int | None) -> None:
        self.limiter = AsyncLimiter(n, t)
        self.sem = anyio.Semaphore(concurrent) if concurrent else None

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self.sem or nullcontext(), self.limiter:
            yield


class Spaced:
    """aiometer's `max_per_second` meter: starts at least T/N apart, never bunched up."""

    def __init__(self, n: int, t: float, concurrent: int | None) -> None:
        self.period = t / n
        self.next = 0.0
        self.lock = anyio.Lock()
        self.sem = anyio.Semaphore(concurrent) if concurrent else None

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self.sem or nullcontext():
            async with self.lock:
                while (wait := self.next - time.monotonic()) > 0:
                    await anyio.sleep(wait)
                self.next = max(self.next, time.monotonic()) + self.period
            yield


GateFactory = Callable[[int, float, int | None], Gate]
CONTESTANTS: tuple[tuple[str, GateFactory], ...] = (
    ("tts-runner Limiter", Ours),
    ("aiolimiter+Semaphore", Aio),
    ("spaced (aiometer)", Spaced),
)


# -- measuring ----------------------------------------------------------------------------------


@dataclass
class Trial:
    contestant: str
    starts: list[float]  #: client-side, time.monotonic (the sandbox clock shares it)
    durations: list[float]
    statuses: list[int]
    wall: float
    server_starts: list[float]
    server_429: int
    server_in_flight: int
    client_in_flight: int


def sandbox(n: int, t: float, concurrent: int | None, hold: float) -> SandboxBox:
    """A TTS.ai emulator in its own process whose one key has a plan of N per T."""
    plan = {"requests": n, "per_seconds": t, "concurrent": concurrent or 100_000, "max_chars": 5000}
    faults = {"rates": {"slow": 1.0}, "slow_seconds": hold} if hold else {}
    account = {"label": LABEL, "credential_envs": ["BENCH_TTSAI_KEY"], "plan": "bench"}
    config = {
        "ttsai": {
            "accounts": [account],
            "accept_any_credential": False,
            "plans": {"bench": plan},
            "faults": faults,
        }
    }
    return SandboxBox(config, {"BENCH_TTSAI_KEY": KEY})


async def _headers_sent(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: object
) -> None:
    sent = getattr(context.trace_request_ctx, "sent", None)
    if sent is not None:
        sent()


def traced_session() -> aiohttp.ClientSession:
    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(_headers_sent)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), trace_configs=[trace])


async def drive(
    box: SandboxBox, session: aiohttp.ClientSession, gate: Gate, work: int
) -> tuple[list[float], list[tuple[float, float]], list[int]]:
    """Make `work` requests at once, each through `gate`; no retries (a 429 is counted)."""
    url = box.urls["ttsai"] + "tts/"
    headers = {"Authorization": f"Bearer {KEY}"}
    starts: list[float] = []
    spans: list[tuple[float, float]] = []
    statuses: list[int] = []

    async def one() -> None:
        async with gate.slot() as slot:
            began = time.monotonic()
            starts.append(began)
            # Like the runner's HTTP layer: a limiter that can hear when the request really
            # left (after connecting) is told so.
            async with session.post(
                url, json=BODY, headers=headers, trace_request_ctx=slot
            ) as reply:
                answered = getattr(slot, "answered", None)
                if answered is not None:
                    answered()
                await reply.read()
                statuses.append(reply.status)
            spans.append((began, time.monotonic()))

    async with anyio.create_task_group() as tg:
        for _ in range(work):
            tg.start_soon(one)
    return starts, spans, statuses


def server_view(box: SandboxBox) -> tuple[list[float], int, int]:
    """The emulator's own record: start times of synthesis requests, 429s, most in flight."""
    entries = [e for e in box.entries("ttsai") if e.endpoint == "/v1/tts/"]
    return [e.started_at for e in entries], box.count_429("ttsai"), box.max_in_flight("ttsai")


async def trial(case: Case, name: str, make: GateFactory) -> Trial:
    gate = make(case.n, case.t, case.concurrent)
    with sandbox(case.n, case.t, case.concurrent, case.hold) as box:
        async with traced_session() as session:
            began = time.monotonic()
            starts, spans, statuses = await drive(box, session, gate, case.work)
            wall = time.monotonic() - began
        server_starts, n429, in_flight = server_view(box)
    return Trial(
        name,
        starts,
        [b - a for a, b in spans],
        statuses,
        wall,
        server_starts,
        n429,
        in_flight,
        max_overlap(spans),
    )


async def runner_trial(case: Case, workdir: Path) -> Trial:
    """The whole pipeline: one manifest of `work` one-segment texts against the emulator."""
    texts = [f"Pacing {i:05d}." for i in range(case.work)]
    with sandbox(case.n, case.t, case.concurrent, case.hold) as box:
        began = time.monotonic()
        await run_book(box, workdir, texts, case.n, case.t, case.concurrent or case.n)
        wall = time.monotonic() - began
        server_starts, n429, in_flight = server_view(box)
        spans = [(e.started_at, e.finished_at) for e in box.entries("ttsai")]
    if len(server_starts) != case.work:  # the chunker must make one segment per sentence
        raise RuntimeError(f"expected {case.work} requests, the emulator saw {len(server_starts)}")
    return Trial(
        "tts-runner whole run",
        server_starts,
        [b - a for a, b in spans],
        [],
        wall,
        server_starts,
        n429,
        in_flight,
        in_flight,
    )


async def run_book(
    box: SandboxBox, workdir: Path, texts: list[str], n: int, t: float, concurrent: int
) -> EventLog:
    """One chapter, one segment per sentence of `texts` (9 to 16 characters: two never fit
    in one segment of at most 16), so that assembling the chapter takes little time."""
    url = box.urls["ttsai"]
    text = " ".join(texts)
    lines = [
        "output: {dir: out, format: wav}",
        "providers:",
        f"  t: {{kind: ttsai, base_url: '{url}', api_key_env: TTSAI_API_KEY,"
        f" limits: {{requests: {n}, per_seconds: {t}, concurrent: {concurrent}, max_chars: 16}}}}",
        "voices:",
        "  v: {provider: t, model: kokoro, voice: af_bella, format: wav}",
        "defaults: {voice: v}",
        f"texts: [{{id: book, text: {text!r}}}]",
    ]
    path = workdir / "book.yaml"
    path.write_text("\n".join(lines) + "\n")
    log = EventLog()
    # The account history (when the runner keeps one) lives with the state: both runs of the
    # back-to-back case share it, as two cron runs of one user would.
    environ = {"TTSAI_API_KEY": KEY, "TTS_RUNNER_HOME": str(workdir / "home")}
    options = RunOptions(state_dir=workdir / "state", retry=FAST_RETRY, environ=environ)
    result = await run_manifest(load_manifest(path), options, Events([log]))
    if result.exit_code != 0:
        raise RuntimeError(f"tts-runner run ended with exit code {result.exit_code}")
    return log


def plan_minimum(case: Case, durations: list[float]) -> float:
    """No schedule that keeps to the plan can make its W-th start earlier than this."""
    by_rate = (case.work - 1) // case.n * case.t
    by_conc = 0.0
    if case.concurrent:
        shortest = sorted(durations)[: max(0, case.work - case.concurrent)]
        by_conc = sum(shortest) / case.concurrent
    return max(by_rate, by_conc)


def report(case: Case, trials: list[Trial]) -> list[dict[str, object]]:
    table = Table(
        f"1{case.name[0]}. {case.name[3:]}: {case.describe()}",
        [
            "contestant",
            "first→last",
            "plan min",
            "pace",
            "worst/N",
            "over",
            "server worst",
            "429s",
            "in flight c/s",
            "wall",
        ],
    )
    rows: list[dict[str, object]] = []
    for tr in trials:
        span = max(tr.starts) - min(tr.starts)
        minimum = plan_minimum(case, tr.durations)
        pace = minimum / span if span > 0 else math.inf
        client = window_stats(tr.starts, case.n, case.t)
        server = window_stats(tr.server_starts, case.n, case.t)
        table.add(
            tr.contestant,
            f"{span:.3f} s",
            f"{minimum:.3f} s",
            pct(pace),
            f"{client.worst}/{case.n}",
            client.over,
            f"{server.worst}/{case.n}",
            tr.server_429,
            f"{tr.client_in_flight}/{tr.server_in_flight}",
            f"{tr.wall:.2f} s",
        )
        rows.append(
            {
                "contestant": tr.contestant,
                "starts": len(tr.starts),
                "first_to_last_start_s": round(span, 4),
                "plan_minimum_s": round(minimum, 4),
                "pace_of_plan": round(pace, 5),
                "client_window": asdict(client),
                "server_window": asdict(server),
                "server_429": tr.server_429,
                "max_in_flight_client": tr.client_in_flight,
                "max_in_flight_server": tr.server_in_flight,
                "wall_s": round(tr.wall, 3),
            }
        )
    ours, *baselines = rows
    for base in baselines:
        if base["contestant"] == "tts-runner whole run":
            continue
        table.add(
            f"  Limiter / {base['contestant']}",
            "",
            "",
            f"{float(str(ours['pace_of_plan'])) / float(str(base['pace_of_plan'])):.4f}x",
            "",
            "",
            "",
            "",
            "",
            "",
        )
    table.print()
    return rows


# -- back-to-back cron runs -----------------------------------------------------------------------


@dataclass
class BackToBack:
    variant: str
    first: list[float]
    second: list[float]
    second_wall: float
    server_starts: list[float]
    server_429: int


async def back_to_back(variant: str, n: int, t: float, history: Path) -> BackToBack:
    """Two runs of N requests each, the second started the moment the first ends."""
    with sandbox(n, t, None, 0.0) as box:
        async with traced_session() as session:
            if variant.startswith("Limiter"):
                # Wall-clock starts, as a run would persist them for the next process to read.
                first_gate = Ours(n, t, None, Limiter(Limits(n, t), clock=time.time))
                first, _, _ = await drive(box, session, first_gate, n)
                history.write_text(json.dumps(first_gate.limiter.recent_starts()))
                limiter = Limiter(Limits(n, t), clock=time.time)
                if "remember" in variant:
                    limiter.remember(json.loads(history.read_text()))
                second_gate: Gate = Ours(n, t, None, limiter)
            else:
                make: GateFactory = Aio if variant.startswith("aiolimiter") else Spaced
                first, _, _ = await drive(box, session, make(n, t, None), n)
                second_gate = make(n, t, None)
            began = time.monotonic()
            second, _, _ = await drive(box, session, second_gate, n)
            wall = time.monotonic() - began
        server_starts, n429, _ = server_view(box)
    return BackToBack(variant, first, second, wall, server_starts, n429)


async def runner_back_to_back(n: int, t: float, workdir: Path) -> BackToBack:
    """Two real runs on one state directory, the second started the moment the first ends."""
    with sandbox(n, t, None, 0.0) as box:
        await run_book(
            box,
            workdir,
            [f"First {i:05d}." for i in range(n)],
            n,
            t,
            n,
        )
        first = sorted(e.started_at for e in box.entries("ttsai"))
        began = time.monotonic()
        await run_book(
            box,
            workdir,
            [f"Again {i:05d}." for i in range(n)],
            n,
            t,
            n,
        )
        wall = time.monotonic() - began
        server_starts, n429, _ = server_view(box)
        second = [s for s in server_starts if s >= began]
    return BackToBack("tts-runner whole run x2", first, second, wall, server_starts, n429)


def report_back_to_back(n: int, t: float, trials: list[BackToBack]) -> list[dict[str, object]]:
    table = Table(
        f"1D. back-to-back cron runs: {n} per {t:g} s, two runs of {n} requests, "
        "the second starting as the first ends",
        ["contestant", "worst/N", "over", "server worst", "429s", "run 2 wall", "run 2 waited"],
    )
    rows: list[dict[str, object]] = []
    for b in trials:
        both: WindowStats = window_stats(b.first + b.second, n, t)
        server = window_stats(b.server_starts, n, t)
        waited = min(b.second) - max(b.first)
        table.add(
            b.variant,
            f"{both.worst}/{n}",
            both.over,
            f"{server.worst}/{n}",
            b.server_429,
            f"{b.second_wall:.2f} s",
            f"{waited:.2f} s",
        )
        rows.append(
            {
                "contestant": b.variant,
                "client_window": asdict(both),
                "server_window": asdict(server),
                "server_429": b.server_429,
                "run2_wall_s": round(b.second_wall, 3),
                "run2_first_start_after_run1_last_s": round(waited, 3),
            }
        )
    table.print()
    return rows


async def main() -> dict[str, object]:
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="tts-bench-limiter-") as tmp:
        root = Path(tmp)
        for i, case in enumerate(CASES):
            trials = [await trial(case, name, make) for name, make in CONTESTANTS]
            if not case.hold:  # the plan shapes (C is about concurrency alone)
                workdir = root / f"whole-{i}"
                workdir.mkdir()
                trials.append(await runner_trial(case, workdir))
            out[case.name] = {"plan": asdict(case), "rows": report(case, trials)}
        n, t = 60, 3.0
        variants = (
            "Limiter + remember()",
            "Limiter, fresh",
            "aiolimiter (no history)",
            "spaced (no history)",
        )
        b2b = [await back_to_back(v, n, t, root / "history.json") for v in variants]
        workdir = root / "whole-b2b"
        workdir.mkdir()
        b2b.append(await runner_back_to_back(n, t, workdir))
        out["D: back-to-back cron runs"] = report_back_to_back(n, t, b2b)
    return out


if __name__ == "__main__":
    anyio.run(main)
