"""Benchmark 2: an IndexTTS book of asynchronous tasks (submit → poll → download) through the
whole runner, in-process, against the IndexTTS emulator (in a process of its own) on loopback
with a compressed plan.

Figures:
- make-span (first request to last reply, from the emulator's ledger) against a lower bound:
  every task needs at least three requests through the account's one budget (submit, one poll,
  download), so 3W requests cannot fit in less than floor((3W-1)/N)*T; nor can the book finish
  before its slowest task has been processed. The requests the run really sent give a second
  reference (how much of the span is polling overhead rather than pacing), and so do the
  emulator's own reply times: with C requests in flight, no schedule beats their sum / C;
- polls per task (median, from `task_done` events);
- lateness: how long after a task was really done the runner noticed (`task_done` seconds
  minus the emulator's processing time, base + per_char * characters of its segment), median,
  also relative to the processing time;
- deferrals, 429s and the worst window the emulator saw.

Shapes: A, the plan's budget is the bottleneck; B, budget to spare, so lateness depends on
polling alone, from a first run that knows only the prior; C, as B, after a book of as many
other texts ran on the same state (a nightly job's second night): what was learned then times
the first polls; D, as A, with every text's audio already made by the emulator (the same book
ran first, on another state): a download then serves a file, as a provider's file server does.
In A the emulator renders each download's audio when it is asked for, on the two cores the
runner needs too (about 30 ms of CPU each), and the last windows wait for the machine; D is
the runner's own make-span.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import anyio
from benchlib import EventLog, SandboxBox, Table, pct, refused, window_stats

from runner.events import Events
from runner.manifest import load_manifest
from runner.providers.context import RetryPolicy
from runner.run import RunOptions, run_manifest

__all__ = ["main"]

SIGN = "index-sign-bench-7f3a9c2e11"
VOICE = "VoiceBench123"


@dataclass(frozen=True)
class Shape:
    name: str
    tasks: int
    n: int  #: request starts per window
    t: float  #: window, seconds
    c: int  #: requests in flight
    #: a book of as many other texts runs first on the same state, as last night's cron job
    #: did: the measured run starts from the processing times that one learned
    learned: bool = False
    #: the same book runs first on another state, so the emulator has made (and keeps) every
    #: text's audio (it keeps the last 512): the measured run's downloads take none of this
    #: machine's time to render
    prerendered: bool = False


SHAPES = (
    # The account's budget is the bottleneck: the make-span against the plan's bound.
    Shape("A: rate-bound", 300, 150, 2.0, 10),
    # Budget to spare: how soon a finished task is noticed depends on polling alone.
    Shape("B: budget to spare", 60, 2000, 2.0, 20),
    Shape("C: budget to spare, after an earlier book", 60, 2000, 2.0, 20, learned=True),
    Shape("D: rate-bound, audio made beforehand", 300, 150, 2.0, 10, prerendered=True),
)
BASE, PER_CHAR = 0.5, 0.004  #: the emulator's processing time: 0.67 s to 1.72 s
PARA = "\n\n"
RETRY = RetryPolicy(attempts=6, base_delay=0.01, max_delay=0.05)

WORDS = [
    "lighthouse",
    "keeper",
    "harbour",
    "evening",
    "lantern",
    "fisherman",
    "quiet",
    "tide",
    "morning",
    "stairs",
    "window",
    "village",
    "children",
    "brightest",
    "star",
    "ocean",
    "storm",
    "rope",
    "boat",
    "returned",
    "smiled",
]


def texts(count: int) -> list[str]:
    """Unique English texts of 1 to 6 sentences (43 to 305 characters)."""
    out = []
    for i in range(count):
        sentences = []
        for j in range(1 + (i * 7) % 6):
            words = [WORDS[(i * 3 + j * 5 + k) % len(WORDS)] for k in range(5)]
            sentences.append(f"{' '.join(words).capitalize()} number {i}-{j}.")
        out.append(" ".join(sentences))
    return out


def sandbox(shape: Shape) -> SandboxBox:
    account = {
        "label": "acct",
        "credential_envs": ["BENCH_INDEX_SIGN"],
        "voices": [VOICE],
        "rate": {"requests": shape.n, "per_seconds": shape.t, "concurrent": shape.c},
    }
    config = {
        "indextts": {
            "accounts": [account],
            "accept_any_credential": False,
            "processing_base": BASE,
            "processing_per_char": PER_CHAR,
            # the measured run of D asks again for what the book before it asked: processed
            # again, not answered as done at once
            "reuse_identical": not shape.prerendered,
        }
    }
    return SandboxBox(config, {"BENCH_INDEX_SIGN": SIGN})


def manifest(url: str, items: list[str], shape: Shape) -> str:
    lines = [
        "providers:",
        f"  index: {{kind: indextts, base_url: '{url}',"
        f" limits: {{requests: {shape.n}, per_seconds: {shape.t}, concurrent: {shape.c}}}}}",
        "voices:",
        f"  n: {{provider: index, audio_id: {VOICE}, style: 2, speed: 1.0}}",
        # One chapter, a paragraph (so a segment, so a task) per text: the book's assembly stays
        # a small part of the benchmark's time.
        f"texts: [{{id: book, text: {json.dumps(PARA.join(items))}}}]",
    ]
    return "\n".join(lines) + "\n"


async def main() -> dict[str, object]:
    return {shape.name: await scenario(shape) for shape in SHAPES}


async def scenario(shape: Shape) -> dict[str, object]:
    TASKS, N, T, C = shape.tasks, shape.n, shape.t, shape.c
    earlier, items = ([], texts(TASKS)) if not shape.learned else _halves(texts(2 * TASKS))
    with (
        tempfile.TemporaryDirectory(prefix="tts-bench-indextts-") as tmp,
        sandbox(shape) as box,
    ):
        root = Path(tmp)
        path = root / "book.yaml"
        environ = {"INDEX_API_SIGN": SIGN, "TTS_RUNNER_HOME": str(root / "home")}
        options = RunOptions(state_dir=root / "state", retry=RETRY, environ=environ)
        if earlier:
            path.write_text(manifest(box.urls["indextts"], earlier, shape))
            if (await run_manifest(load_manifest(path), options, Events([]))).exit_code:
                raise RuntimeError("the earlier book did not finish")
        if shape.prerendered:
            path.write_text(manifest(box.urls["indextts"], items, shape))
            other = replace(options, state_dir=root / "made-beforehand")
            if (await run_manifest(load_manifest(path), other, Events([]))).exit_code:
                raise RuntimeError("the book that makes the audio did not finish")
            await anyio.sleep(T + 0.5)  # its requests have left the emulator's window
        seen = len(box.entries("indextts"))
        path.write_text(manifest(box.urls["indextts"], items, shape))
        log = EventLog()
        began = time.monotonic()
        result = await run_manifest(load_manifest(path), options, Events([log]))
        ended = time.monotonic()
        wall = ended - began
        # this run's requests only: the earlier book's came first
        entries = sorted(box.entries("indextts"), key=lambda e: e.seq)[seen:]
        n429 = refused(entries)

    stats = result.stats.accounts.get("index")
    deferred = stats.deferred if stats else -1
    chars = {str(e["key"]): int(str(e["chars"])) for e in log.of("segment_done")}
    polls: list[int] = []
    late: list[float] = []
    late_rel: list[float] = []
    actuals: list[float] = []
    for done in log.of("task_done"):
        polls.append(int(str(done["polls"])))
        actual = BASE + PER_CHAR * chars[str(done["key"])]
        actuals.append(actual)
        late.append(float(str(done["seconds"])) - actual)
        late_rel.append(late[-1] / actual)

    if len(polls) != TASKS:  # one paragraph, one segment, one task
        raise RuntimeError(f"expected {TASKS} tasks done, the run reports {len(polls)}")
    requests = len(entries)
    first = min(e.started_at for e in entries)
    last = max(e.finished_at for e in entries)
    span = last - first
    longest = max(actuals)
    by_rate = (3 * TASKS - 1) // N * T
    bound = max(by_rate, longest)
    # With C in flight, the requests cannot finish sooner than their own durations at the
    # emulator allow (it shares this machine's two cores with the runner).
    by_replies = sum(e.finished_at - e.started_at for e in entries) / C
    by_sent = (requests - 1) // N * T
    window = window_stats([e.started_at for e in entries], N, T)
    kinds: dict[str, int] = {}
    for e in entries:
        kinds[str(e.operation)] = kinds.get(str(e.operation), 0) + 1

    table = Table(
        f"2{shape.name[0]}. IndexTTS pipeline, {shape.name[3:]}: {TASKS} tasks, plan {N} per "
        f"{T:g} s and {C} in flight, "
        f"processing {BASE:g} s + {PER_CHAR:g} s/char",
        ["figure", "value", "baseline", "ratio"],
    )
    table.add(
        "make-span (ledger) vs lower bound",
        f"{span:.2f} s",
        f"{bound:.2f} s",
        f"{span / bound:.3f}x",
    )
    table.add(
        "make-span vs emulator reply times / C",
        f"{span:.2f} s",
        f"{by_replies:.2f} s",
        f"{span / by_replies:.3f}x",
    )
    table.add(
        "make-span vs requests sent / rate",
        f"{span:.2f} s",
        f"{by_sent:.2f} s",
        f"{span / by_sent:.3f}x" if by_sent else "-",
    )
    table.add(
        "requests sent vs minimum (3 per task)",
        requests,
        3 * TASKS,
        f"{requests / (3 * TASKS):.3f}x",
    )
    table.add("polls per task, median (target <= 4)", f"{statistics.median(polls):g}", 4, "")
    table.add("polls per task, max", max(polls), "", "")
    table.add(
        "lateness noticed, median (vs processing)",
        f"{statistics.median(late):.3f} s",
        f"{statistics.median(actuals):.3f} s",
        pct(statistics.median(late_rel)),
    )
    table.add("lateness relative, 90th percentile", "", "", pct(_quantile(late_rel, 0.9)))
    table.add("deferrals", deferred, 0, "")
    table.add("429s from the emulator", n429, 0, "")
    table.add(
        "worst window (emulator starts)", f"{window.worst}/{N}", N, f"{window.worst / N:.3f}x"
    )
    table.add("run wall time", f"{wall:.2f} s", "", "")
    table.add("  before the first request", f"{first - began:.2f} s", "", "")
    table.add("  after the last reply (assembly...)", f"{ended - last:.2f} s", "", "")
    table.add("exit code", result.exit_code, 0, "")
    table.print()
    return {
        "tasks": TASKS,
        "plan": {"requests": N, "per_seconds": T, "concurrent": C},
        "processing": {"base": BASE, "per_char": PER_CHAR},
        "make_span_s": round(span, 3),
        "lower_bound_s": round(bound, 3),
        "lower_bound_by_rate_s": by_rate,
        "bound_by_reply_times_s": round(by_replies, 3),
        "longest_processing_s": round(longest, 3),
        "requests_sent": requests,
        "requests_by_operation": kinds,
        "requests_sent_over_rate_s": by_sent,
        "polls_median": statistics.median(polls),
        "polls_max": max(polls),
        "polls_mean": round(statistics.fmean(polls), 3),
        "lateness_median_s": round(statistics.median(late), 4),
        "lateness_relative_median": round(statistics.median(late_rel), 4),
        "lateness_relative_p90": round(_quantile(late_rel, 0.9), 4),
        "deferred": deferred,
        "server_429": n429,
        "worst_window": window.worst,
        "wall_s": round(wall, 3),
        "before_first_request_s": round(first - began, 3),
        "after_last_reply_s": round(ended - last, 3),
        "exit_code": result.exit_code,
    }


def _halves(items: list[str]) -> tuple[list[str], list[str]]:
    """Every other text for each book: both have the same mix of lengths."""
    return items[0::2], items[1::2]


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


if __name__ == "__main__":
    anyio.run(main)
