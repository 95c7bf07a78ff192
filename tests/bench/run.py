"""`make bench`: every benchmark in turn, each printing its table; all figures also go to one
JSON file in the system temp directory (its path is printed last).

    .venv/bin/python tests/bench/run.py [--only limiter,indextts,overhead,local_engine]

Timings are printed next to baselines measured in the same run and never asserted: a busy
machine changes the figures, not the outcome. The timing-sensitive pacing benchmarks (which
mostly wait) run first, the CPU-bound ones after them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import anyio

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parent.parent)]

import bench_indextts  # noqa: E402
import bench_limiter  # noqa: E402
import bench_overhead  # noqa: E402
import local_engine  # noqa: E402

BENCHMARKS: dict[str, Callable[[], object]] = {
    "limiter": lambda: anyio.run(bench_limiter.main),
    "indextts": lambda: anyio.run(bench_indextts.main),
    "overhead": bench_overhead.main,
    "local_engine": local_engine.main,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(BENCHMARKS)
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; known: {sorted(BENCHMARKS)}")

    results: dict[str, object] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": sys.version.split()[0],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
    }
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tts-bench-home-") as home:
        # Account histories (limit_history) of every run, in-process or not, stay in here.
        os.environ["TTS_RUNNER_HOME"] = home
        for name in names:
            print(f"== {name} ==", flush=True)
            started = time.perf_counter()
            results[name] = BENCHMARKS[name]()
            seconds = time.perf_counter() - started
            results[f"{name}_seconds"] = round(seconds, 1)
            print(f"({name}: {seconds:.0f} s)\n", flush=True)
    results["total_seconds"] = round(time.perf_counter() - began, 1)
    out = Path(tempfile.gettempdir()) / f"tts-runner-bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"total {results['total_seconds']} s; figures written to {out}")


if __name__ == "__main__":
    main()
