"""Benchmark 3: the runner's own cost per segment, against the raw engine in the same run.

A book of 10,000 tiny segments (10 chapters of 1,000 one-sentence segments: `limits.max_chars`
16 and sentences of 12 characters, so each sentence is one segment; spoken at 450 words a
minute, with no pauses) goes through the embedded
engine in a real `python -m runner run` process. The baseline is the raw espeak-ng binding
speaking exactly the same segment texts with the same settings, in this process (every 4th
segment, to keep `make bench` short: its time per segment hardly varies).

- whole run: process wall time minus that of a one-segment book (interpreter start-up, imports,
  fixed costs), per segment, minus the raw engine's time per segment;
- synthesis phase: from the `plan` event to the last `segment_done` (state writes, write-ahead,
  verification, cache), per segment, minus the raw engine's time per segment;
- assembly: from the last `segment_done` to the summary;
- peak RSS of the run process (from wait4), `plan` and a second run (everything cached).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchlib import Table

from runner.manifest import load_manifest
from runner.plan import expand
from runner.providers.espeak import engine
from runner.providers.local import resolve_params

__all__ = ["main"]

CHAPTERS, PER_CHAPTER = 10, 1000
PLAN_ONLY = (1000, 100)  #: `plan` is also timed on a book of 100,000 segments
RAW_SAMPLE = 4  #: the raw engine speaks every 4th segment (its time per segment is steady)


def book(root: Path, chapters: int, per_chapter: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    # Tiny in sound too (the fastest rate, no pauses): assembly works per sample, and the
    # benchmark is about the runner's cost per segment.
    lines = [
        "output: {dir: out, pause_ms: 0, paragraph_pause_ms: 0}",
        "providers:",
        "  loc: {kind: local, limits: {max_chars: 16}}",
        "voices:",
        "  n: {provider: loc, voice: en-us, rate: 450}",
        "defaults: {voice: n}",
        "texts:",
    ]
    for c in range(chapters):
        text = " ".join(f"Entry {c * per_chapter + i:05d}." for i in range(per_chapter))
        lines.append(f"  - {{id: c{c:04d}, text: {text!r}}}")
    path = root / "book.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Process:
    wall: float
    rss_mb: float
    started: float  #: time.time() just before the process started
    events: list[dict[str, object]]
    stdout: str


def run(*args: str, cwd: Path) -> Process:
    """`python -m runner ARGS` with its peak RSS (wait4 gives that child's own rusage)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.time()
        began = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "runner", *args], cwd=cwd, stdout=out, stderr=err
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - began
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"runner {' '.join(args)} exited {proc.returncode}: {stderr[-2000:]}")
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return Process(wall, usage.ru_maxrss / 1024, started, events, stdout)


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


def main() -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="tts-bench-overhead-") as tmp:
        root = Path(tmp)
        # Account histories go to a directory of the benchmark's own, never the user's.
        os.environ["TTS_RUNNER_HOME"] = str(root / "home")
        one = book(root / "one", 1, 1)
        big = book(root / "big", CHAPTERS, PER_CHAPTER)
        huge = book(root / "huge", *PLAN_ONLY)

        fixed = run("run", str(one.name), "--json-log", cwd=one.parent)
        whole = run("run", str(big.name), "--json-log", cwd=big.parent)
        again = run("run", str(big.name), "--json-log", cwd=big.parent)
        plan = run("plan", str(big.name), cwd=big.parent)
        plan_huge = run("plan", str(huge.name), cwd=huge.parent)
        raw_each, n = raw_engine(big)
        raw = raw_each * n

    done = [e for e in whole.events if e["event"] == "segment_done"]
    if len(done) != n:
        raise RuntimeError(f"expected {n} segments synthesised, the run reports {len(done)}")
    plan_ts = min(float(str(e["ts"])) for e in whole.events if e["event"] == "plan")
    last_done = max(float(str(e["ts"])) for e in done)
    summary_ts = max(float(str(e["ts"])) for e in whole.events if e["event"] == "summary")
    synth_phase = last_done - plan_ts
    assembly = summary_ts - last_done
    startup = plan_ts - whole.started
    raw_ms = raw / n * 1000
    whole_ms = (whole.wall - fixed.wall) / n * 1000
    synth_ms = synth_phase / n * 1000

    table = Table(
        f"3. Runner overhead: {n:,} tiny segments ({CHAPTERS} chapters x {PER_CHAPTER}) through "
        "the embedded engine",
        ["figure", "value", "baseline (raw engine)", "ratio"],
    )
    table.add(
        "whole run, ms per segment (minus 1-segment run)",
        f"{whole_ms:.3f} ms",
        f"{raw_ms:.3f} ms",
        f"{whole_ms / raw_ms:.2f}x",
    )
    table.add("  overhead per segment", f"{whole_ms - raw_ms:.3f} ms", "", "")
    table.add(
        "synthesis phase, ms per segment",
        f"{synth_ms:.3f} ms",
        f"{raw_ms:.3f} ms",
        f"{synth_ms / raw_ms:.2f}x",
    )
    table.add("  overhead per segment (state, cache...)", f"{synth_ms - raw_ms:.3f} ms", "", "")
    table.add(
        "segments/s, whole run (goal >= 2,000)",
        f"{n / whole.wall:,.0f}",
        f"{n / raw:,.0f}",
        f"{raw / whole.wall:.2f}x",
    )
    table.add("start-up to `plan` event", f"{startup:.2f} s", "", "")
    table.add("assembly (last segment to summary)", f"{assembly:.2f} s", "", "")
    table.add("one-segment run (fixed cost)", f"{fixed.wall:.2f} s", "", "")
    table.add("peak RSS of the run (goal <= 200 MB)", f"{whole.rss_mb:.0f} MB", "", "")
    table.add("second run, all cached (resume)", f"{again.wall:.2f} s", "", "")
    table.add(f"`plan` at {n:,} segments", f"{plan.wall:.2f} s", "", "")
    huge_n = PLAN_ONLY[0] * PLAN_ONLY[1]
    table.add(f"`plan` at {huge_n:,} segments (goal <= 5 s)", f"{plan_huge.wall:.2f} s", "", "")
    table.print()
    print(
        f"   ({huge_n:,} segments through `run` would take about "
        f"{whole_ms * huge_n / 1000 / 60:.0f} min here; measured at {n:,} only.)\n",
        flush=True,
    )
    return {
        "segments": n,
        "raw_engine_s_estimated": round(raw, 3),
        "raw_ms_per_segment": round(raw_ms, 4),
        "run_wall_s": round(whole.wall, 3),
        "one_segment_run_wall_s": round(fixed.wall, 3),
        "whole_ms_per_segment": round(whole_ms, 4),
        "whole_overhead_ms_per_segment": round(whole_ms - raw_ms, 4),
        "synthesis_phase_s": round(synth_phase, 3),
        "synthesis_ms_per_segment": round(synth_ms, 4),
        "synthesis_overhead_ms_per_segment": round(synth_ms - raw_ms, 4),
        "startup_to_plan_s": round(startup, 3),
        "assembly_s": round(assembly, 3),
        "segments_per_s_whole": round(n / whole.wall, 1),
        "segments_per_s_raw": round(n / raw, 1),
        "peak_rss_mb": round(whole.rss_mb, 1),
        "resume_all_cached_s": round(again.wall, 3),
        "resume_peak_rss_mb": round(again.rss_mb, 1),
        "plan_s": round(plan.wall, 3),
        "plan_100k_s": round(plan_huge.wall, 3),
        "plan_100k_peak_rss_mb": round(plan_huge.rss_mb, 1),
    }


if __name__ == "__main__":
    main()
