"""Characters per second of the embedded engine: the raw ctypes binding against the whole runner
(chunking, state, verification, cache, assembly) on the same text, measured in the same run."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from support import english_prose

from runner.providers.espeak import engine
from runner.text import chunk_text

REPEATS = 3


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


def main() -> None:
    text = "\n\n".join(english_prose(55, seed=i * 55) for i in range(20))
    raw = statistics.median(raw_binding(text) for _ in range(REPEATS))
    runner = statistics.median(through_runner(text) for _ in range(REPEATS))
    print(f"embedded engine, {len(text):,} characters of English, median of {REPEATS}:")
    print(f"  raw binding     {raw:10,.0f} chars/s")
    print(f"  whole runner    {runner:10,.0f} chars/s  ({runner / raw:.0%} of raw; includes")
    print("                  interpreter start-up, state, verification, cache and assembly)")


if __name__ == "__main__":
    main()
