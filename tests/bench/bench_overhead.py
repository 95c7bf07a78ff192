"""Benchmark 3: the runner's own cost per segment, each figure beside a baseline of the same run.

Books of tiny segments (`limits.max_chars` 16 and sentences of 12 characters, so each sentence
is one segment; no pauses) go through a real `python -m runner run` process, twice over:

- against a sandbox in its own process (the TTS.ai emulator with its synthetic voice, a plan of
  no practical limits, no artificial latency; `format: wav`): a *paid* account, so every
  request is written ahead durably. Baseline: a bare aiohttp client asking the same sandbox
  the same requests, as many at once as the runner's workers. At 10,000 and 100,000 segments;
  `plan` and a second run (everything done, the resume) are timed at 100,000 too.
- through the embedded espeak-ng engine (unpaid), 10,000 segments. Baseline: the raw espeak-ng
  binding speaking the same texts in this process (every 4th segment: its time per segment
  hardly varies). 100,000 through the engine would take minutes of espeak-ng alone.

Figures: whole run (process wall time; also minus that of a one-segment book, the fixed cost
of interpreter start-up and imports), synthesis phase (from the `plan` event to the last
`segment_done`: state writes, write-ahead, verification, cache), assembly (last
`segment_done` to the summary), peak RSS of the run process (its own high-water mark).

Each resume is timed right after the first run (the page cache and the disk as the run left
them: 10 GB written at 100,000 segments) and then three times more (the median is given).
The package is compiled to bytecode first, as an installed tts-runner is, whatever
PYTHONDONTWRITEBYTECODE says.

`TTS_BENCH_OVERHEAD_SCALE` (default 1) scales every book, for quick trials.
"""

from __future__ import annotations

import compileall
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anyio
from benchlib import SandboxBox, Table

from runner.manifest import load_manifest
from runner.plan import expand
from runner.providers.espeak import engine
from runner.providers.local import resolve_params
from tests.torture.harness import CREDENTIALS, python_env

__all__ = ["main"]

SCALE = float(os.environ.get("TTS_BENCH_OVERHEAD_SCALE", "1"))
ENGINE_BOOK = (10, round(1000 * SCALE))  #: chapters, segments per chapter
SANDBOX_BOOKS = ((10, round(1000 * SCALE)), (100, round(1000 * SCALE)))
RAW_SAMPLE = 4  #: the raw engine speaks every 4th segment (its time per segment is steady)
BASELINE_REQUESTS = round(3000 * SCALE)  #: requests of the bare client against the sandbox
#: The 100,000-segment run (about ten minutes here: assembly and the report work per second of
#: audio, and this book is most of a day of it) is skipped when the 10,000 one says it would
#: take longer than this many seconds.
RUN_BUDGET = float(os.environ.get("TTS_BENCH_OVERHEAD_BUDGET", "1200"))
WORKERS = 16  #: requests in flight: the runner's workers for an account without a cap
RESUMES = 3  #: resumes timed after the first one (which follows the first run)
KEY_ENV = "TTSAI_API_KEY"
VOICE = "{provider: tts, model: kokoro, voice: af_bella, format: wav}"
#: A TTS.ai plan that never refuses: the runner, not the plan, is the bottleneck.
SANDBOX_CONFIG: dict[str, Any] = {
    "ttsai": {
        "accounts": [
            {
                "label": "bench",
                "credential_envs": [KEY_ENV],
                "adopt_unknown_voices": True,
                "plan": "unlimited",
                "balance": 1e12,
            }
        ],
        "accept_any_credential": False,
        "plans": {
            "unlimited": {
                "requests": 1_000_000_000,
                "per_seconds": 1.0,
                "concurrent": 1_000_000,
                "max_chars": 5000,
            }
        },
    }
}


def book(
    root: Path,
    chapters: int,
    per_chapter: int,
    *,
    account: str = "{kind: local, limits: {max_chars: 16}}",
    voice: str = "{provider: loc, voice: en-us, rate: 450}",
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    # Tiny in sound too (the fastest rate, no pauses): assembly works per sample, and the
    # benchmark is about the runner's cost per segment.
    name = "tts" if "ttsai" in account else "loc"
    lines = [
        "output: {dir: out, pause_ms: 0, paragraph_pause_ms: 0}",
        "providers:",
        f"  {name}: {account}",
        "voices:",
        f"  n: {voice}",
        "defaults: {voice: n}",
        "texts:",
    ]
    for c in range(chapters):
        text = " ".join(f"Entry {c * per_chapter + i:06d}." for i in range(per_chapter))
        lines.append(f"  - {{id: c{c:04d}, text: {text!r}}}")
    path = root / "book.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def sandbox_book(root: Path, url: str, chapters: int, per_chapter: int) -> Path:
    limits = f"{{requests: 1000000, per_seconds: 1, concurrent: {WORKERS}, max_chars: 16}}"
    account = f'{{kind: ttsai, base_url: "{url}", limits: {limits}}}'
    return book(root, chapters, per_chapter, account=account, voice=VOICE)


@dataclass
class Process:
    wall: float
    rss_mb: float
    started: float  #: time.time() just before the process started
    events: list[dict[str, object]]
    stdout: str


#: `python -m runner`, reporting its own peak RSS on exit. The kernel's high-water mark starts
#: afresh at exec, whereas wait4's ru_maxrss counts the copy of this (benchmark) process that
#: the child was before it exec'd, which is the larger of the two here.
PEAK_MARK = "PEAK_RSS_KB "
RUNNER_WITH_PEAK = f"""
import atexit, runpy, sys

def peak():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                sys.stderr.write({PEAK_MARK!r} + line.split()[1] + "\\n")

atexit.register(peak)
sys.argv[0] = "runner"
runpy.run_module("runner", run_name="__main__", alter_sys=True)
"""


def run(*args: str, cwd: Path, env: Mapping[str, str] | None = None) -> Process:
    """`python -m runner ARGS` with its peak RSS (its own high-water mark, see above)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.time()
        began = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", RUNNER_WITH_PEAK, *args],
            cwd=cwd,
            stdout=out,
            stderr=err,
            env=None if env is None else dict(env),
        )
        _, status, _ = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - began
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"runner {' '.join(args)} exited {proc.returncode}: {stderr[-2000:]}")
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    peaks = [
        int(line[len(PEAK_MARK) :]) for line in stderr.splitlines() if line.startswith(PEAK_MARK)
    ]
    if not peaks:
        raise RuntimeError(f"runner {' '.join(args)} reported no peak RSS: {stderr[-2000:]}")
    return Process(wall, peaks[-1] / 1024, started, events, stdout)


def raw_engine(path: Path) -> tuple[float, int]:
    """Seconds per segment the bare binding takes to speak the book's segments (every
    `RAW_SAMPLE`-th one, to keep the benchmark short), and how many segments the book has."""
    segments = list(expand(load_manifest(path)).unique_segments().values())
    speak = engine().speak
    calls = []
    for s in segments[::RAW_SAMPLE]:
        p = resolve_params(s.params, s.text)
        calls.append((s.text, str(p["voice"]), int(str(p["rate"])), int(str(p["pitch"]))))
    speak(*calls[0])  # voice loading is a one-off for both sides
    began = time.perf_counter()
    for call in calls:
        speak(*call)
    return (time.perf_counter() - began) / len(calls), len(segments)


async def bare_client(url: str, key: str, n: int) -> float:
    """Seconds per request of a plain aiohttp client asking the sandbox for `n` segments'
    audio, `WORKERS` at a time: what the sandbox itself costs, without the runner."""
    todo = iter(range(n))
    headers = {"Authorization": f"Bearer {key}"}

    async def worker(session: aiohttp.ClientSession) -> None:
        for i in todo:
            body = {"model": "kokoro", "voice": "af_bella", "format": "wav"}
            body["text"] = f"Entry {900000 + i:06d}."
            async with session.post(url.rstrip("/") + "/tts/", json=body) as reply:
                reply.raise_for_status()
                await reply.read()

    async with aiohttp.ClientSession(headers=headers) as session:
        began = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(WORKERS):
                tg.start_soon(worker, session)
        return (time.perf_counter() - began) / n


@dataclass
class Figures:
    n: int
    whole: Process
    synth_phase: float
    assembly: float
    startup: float


def figures(whole: Process, n: int) -> Figures:
    done = [e for e in whole.events if e["event"] == "segment_done"]
    if len(done) != n:
        raise RuntimeError(f"expected {n} segments synthesised, the run reports {len(done)}")
    plan_ts = min(float(str(e["ts"])) for e in whole.events if e["event"] == "plan")
    last_done = max(float(str(e["ts"])) for e in done)
    summary_ts = max(float(str(e["ts"])) for e in whole.events if e["event"] == "summary")
    return Figures(n, whole, last_done - plan_ts, summary_ts - last_done, plan_ts - whole.started)


def add_rows(table: Table, f: Figures, fixed: Process, base_each: float, label: str) -> None:
    n, base_ms = f.n, base_each * 1000
    whole_ms = (f.whole.wall - fixed.wall) / n * 1000
    synth_ms = f.synth_phase / n * 1000
    table.add(
        f"{n:,}: segments/s, whole run (goal >= 2,000)",
        f"{n / f.whole.wall:,.0f}",
        f"{1 / base_each:,.0f} ({label})",
        f"{1 / base_each / (n / f.whole.wall):.2f}x slower",
    )
    table.add(
        f"{n:,}: segments/s, synthesis phase",
        f"{n / f.synth_phase:,.0f}",
        f"{1 / base_each:,.0f}",
        f"{f.synth_phase / n / base_each:.2f}x slower",
    )
    table.add(
        f"{n:,}: ms per segment, whole run minus 1-segment run",
        f"{whole_ms:.3f} ms",
        f"{base_ms:.3f} ms",
        f"overhead {whole_ms - base_ms:.3f} ms",
    )
    table.add(
        f"{n:,}: ms per segment, synthesis phase",
        f"{synth_ms:.3f} ms",
        f"{base_ms:.3f} ms",
        f"overhead {synth_ms - base_ms:.3f} ms",
    )
    table.add(f"{n:,}: start-up to `plan` event", f"{f.startup:.2f} s", "", "")
    table.add(f"{n:,}: assembly, report (after the last segment)", f"{f.assembly:.2f} s", "", "")
    table.add(f"{n:,}: peak RSS of the run (goal <= 200 MB)", f"{f.whole.rss_mb:.0f} MB", "", "")


def as_dict(f: Figures, fixed: Process, base_each: float) -> dict[str, object]:
    return {
        "segments": f.n,
        "run_wall_s": round(f.whole.wall, 3),
        "segments_per_s_whole": round(f.n / f.whole.wall, 1),
        "segments_per_s_synthesis": round(f.n / f.synth_phase, 1),
        "baseline_per_s": round(1 / base_each, 1),
        "whole_ms_per_segment": round((f.whole.wall - fixed.wall) / f.n * 1000, 4),
        "synthesis_ms_per_segment": round(f.synth_phase / f.n * 1000, 4),
        "baseline_ms_per_segment": round(base_each * 1000, 4),
        "startup_to_plan_s": round(f.startup, 3),
        "assembly_s": round(f.assembly, 3),
        "peak_rss_mb": round(f.whole.rss_mb, 1),
    }


def sandbox_part(root: Path, results: dict[str, object]) -> Table:
    key = CREDENTIALS[KEY_ENV]
    env = python_env({KEY_ENV: key, "TTS_RUNNER_HOME": str(root / "home")})
    table = Table(
        "3a. Runner overhead against a sandbox of no limits and no latency (TTS.ai emulator in "
        "its own process, a paid account: durable write-ahead)",
        ["figure", "value", "baseline", "ratio"],
    )
    with SandboxBox(SANDBOX_CONFIG, {KEY_ENV: key}) as sandbox:
        url = sandbox.urls["ttsai"]
        one = sandbox_book(root / "s-one", url, 1, 1)
        fixed = run("run", one.name, "--json-log", cwd=one.parent, env=env)
        base_each = anyio.run(bare_client, url, key, BASELINE_REQUESTS)
        label = f"bare aiohttp client, {WORKERS} at once"
        table.add("one-segment run (fixed cost)", f"{fixed.wall:.2f} s", "", "")
        done: Figures | None = None
        path: Path | None = None
        for chapters, per_chapter in SANDBOX_BOOKS:
            n = chapters * per_chapter
            path = sandbox_book(root / f"s-{n}", url, chapters, per_chapter)
            if done is not None and n / (done.n / done.whole.wall) > RUN_BUDGET:
                table.add(
                    f"{n:,}: not run",
                    f"would take ~{n / (done.n / done.whole.wall):.0f} s",
                    f"budget {RUN_BUDGET:.0f} s",
                    "",
                )
                break
            done = figures(run("run", path.name, "--json-log", cwd=path.parent, env=env), n)
            add_rows(table, done, fixed, base_each, label)
            results[f"sandbox_{n}"] = as_dict(done, fixed, base_each)
        assert done is not None
        assert path is not None
        # the resume of the largest book run; `plan` of the largest book (run or not)
        resumed = root / f"s-{done.n}" / path.name
        again = run("run", resumed.name, "--json-log", cwd=resumed.parent, env=env)
        repeated = [
            run("run", resumed.name, "--json-log", cwd=resumed.parent, env=env).wall
            for _ in range(RESUMES)
        ]
        plan = run("plan", path.name, cwd=path.parent, env=env)
    m = done.n
    table.add(
        f"{m:,}: second run, all done (resume; goal <= 3 s at 100k)", f"{again.wall:.2f} s", "", ""
    )
    resume = statistics.median(repeated)
    spread = f"{min(repeated):.2f}-{max(repeated):.2f} s"
    table.add(f"{m:,}: the resume repeated, median of {RESUMES}", f"{resume:.2f} s", spread, "")
    table.add(f"{m:,}: peak RSS of the second run", f"{again.rss_mb:.0f} MB", "", "")
    table.add(f"{n:,}: `plan` (goal <= 5 s)", f"{plan.wall:.2f} s", "", "")
    table.add(f"{n:,}: peak RSS of `plan`", f"{plan.rss_mb:.0f} MB", "", "")
    results["sandbox_resume_s"] = round(again.wall, 3)
    results["sandbox_resume_repeated_s"] = [round(wall, 3) for wall in repeated]
    results["sandbox_resume_peak_rss_mb"] = round(again.rss_mb, 1)
    results["sandbox_plan_s"] = round(plan.wall, 3)
    results["sandbox_plan_peak_rss_mb"] = round(plan.rss_mb, 1)
    results["sandbox_resume_segments"] = m
    results["sandbox_plan_segments"] = n
    results["sandbox_bare_client_ms_per_request"] = round(base_each * 1000, 4)
    return table


def engine_part(root: Path, results: dict[str, object]) -> Table:
    one = book(root / "e-one", 1, 1)
    big = book(root / "e-big", *ENGINE_BOOK)
    fixed = run("run", one.name, "--json-log", cwd=one.parent)
    whole = run("run", big.name, "--json-log", cwd=big.parent)
    again = run("run", big.name, "--json-log", cwd=big.parent)
    repeated = [run("run", big.name, "--json-log", cwd=big.parent).wall for _ in range(RESUMES)]
    plan = run("plan", big.name, cwd=big.parent)
    raw_each, n = raw_engine(big)
    f = figures(whole, n)
    table = Table(
        f"3b. Runner overhead through the embedded engine (unpaid: no durable write-ahead), "
        f"{n:,} segments",
        ["figure", "value", "baseline", "ratio"],
    )
    table.add("one-segment run (fixed cost)", f"{fixed.wall:.2f} s", "", "")
    add_rows(table, f, fixed, raw_each, "raw espeak-ng binding")
    table.add(f"{n:,}: second run, all done (resume)", f"{again.wall:.2f} s", "", "")
    spread = f"{min(repeated):.2f}-{max(repeated):.2f} s"
    resume = statistics.median(repeated)
    table.add(f"{n:,}: the resume repeated, median of {RESUMES}", f"{resume:.2f} s", spread, "")
    table.add(f"{n:,}: `plan`", f"{plan.wall:.2f} s", "", "")
    results[f"engine_{n}"] = as_dict(f, fixed, raw_each)
    results["engine_resume_s"] = round(again.wall, 3)
    results["engine_resume_repeated_s"] = [round(wall, 3) for wall in repeated]
    results["engine_plan_s"] = round(plan.wall, 3)
    return table


def main() -> dict[str, object]:
    results: dict[str, object] = {}
    compileall.compile_dir(Path(__file__).resolve().parents[2] / "runner", quiet=1)
    with tempfile.TemporaryDirectory(prefix="tts-bench-overhead-") as tmp:
        root = Path(tmp)
        # Account histories go to a directory of the benchmark's own, never the user's.
        os.environ["TTS_RUNNER_HOME"] = str(root / "home")
        sandbox_part(root, results).print()
        engine_part(root, results).print()
    print(
        "   (100,000 segments are run against the sandbox only: through the embedded engine "
        "they would take minutes of espeak-ng alone.)\n",
        flush=True,
    )
    return results


if __name__ == "__main__":  # through run.py, which puts the repository on sys.path
    main()
