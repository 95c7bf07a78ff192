"""Characters per second of the embedded engine: the raw ctypes binding against the whole runner
(chunking, state, verification, cache, assembly) on the same text, measured in the same run."""

from __future__ import annotations

import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from runner.providers.espeak import engine
from runner.text import chunk_text

# tests/support.py, found by path (tests/ is not a package) so that mypy need not know where.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
english_prose: Callable[..., str] = importlib.import_module("support").english_prose

REPEATS = 3  #: the raw binding: median of three
RUNNER_REPEATS = 1  #: the whole runner takes ten times longer; once keeps `make bench` short
PARAGRAPHS = 10  #: of 55 sentences each, about 31,000 characters


def raw_binding(text: str) -> float:
    chunks = [c.text for c in chunk_text(text, 1000, 40)]
    speak = engine().speak
    started = time.perf_counter()
    for chunk in chunks:
        speak(chunk, "en-us", 175, 50)
    return sum(map(len, chunks)) / (time.perf_counter() - started)


def through_runner(text: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "book.txt").write_text(text)
        (root / "book.yaml").write_text("texts:\n  - {id: book, file: book.txt}\n")
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "runner", "run", "book.yaml", "--json-log"],
            cwd=root,
            check=True,
            capture_output=True,
        )
        elapsed = time.perf_counter() - started
    return len(text) / elapsed


def main() -> dict[str, object]:
    text = "\n\n".join(english_prose(55, seed=i * 55) for i in range(PARAGRAPHS))
    raw = statistics.median(raw_binding(text) for _ in range(REPEATS))
    runner = statistics.median(through_runner(text) for _ in range(RUNNER_REPEATS))
    print(f"embedded engine, {len(text):,} characters of English:")
    print(f"  raw binding     {raw:10,.0f} chars/s  (median of {REPEATS})")
    print(f"  whole runner    {runner:10,.0f} chars/s  ({runner / raw:.0%} of raw, runs: ", end="")
    print(f"{RUNNER_REPEATS}; includes")
    print("                  interpreter start-up, state, verification, cache and assembly)")
    print(flush=True)
    return {
        "characters": len(text),
        "raw_chars_per_s": round(raw, 1),
        "runner_chars_per_s": round(runner, 1),
        "runner_over_raw": round(runner / raw, 4),
    }


if __name__ == "__main__":
    main()
