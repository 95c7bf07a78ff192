"""Helpers shared by the tests: the real CLI in a subprocess, deterministic texts, audio stats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Completed:
    code: int
    stdout: str
    stderr: str

    def events(self, kind: str | None = None) -> list[dict[str, object]]:
        """The JSON-log events on stderr (optionally only those of one kind)."""
        return json_events(self.stderr, kind)


def json_events(text: str, kind: str | None = None) -> list[dict[str, object]]:
    """The JSON-log events in `text` (optionally only those of one kind); a line a running
    process has not finished writing is left out."""
    found = []
    for line in text.splitlines():
        if line.startswith("{") and line.endswith("}"):
            event = json.loads(line)
            if kind is None or event["event"] == kind:
                found.append(event)
    return found


def tts_runner(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> Completed:
    """Run the real entry point (`python -m runner`) in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "runner", *map(str, args)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Completed(proc.returncode, proc.stdout, proc.stderr)


_started: list[subprocess.Popen[bytes]] = []


def start_runner(
    *args: str, cwd: Path, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`python -m runner ARGS` in the background, its stderr to `log`. Whatever the test
    asserts, the process is killed when the test ends (`reap_started`, in conftest.py)."""
    with log.open("wb") as stderr:  # the child keeps its own descriptor
        child = subprocess.Popen(
            [sys.executable, "-m", "runner", *args],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    _started.append(child)
    return child


def reap_started() -> None:
    """Kill and wait for every process `start_runner` started that still runs."""
    while _started:
        child = _started.pop()
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)


def wait_for_events(
    log: Path, kind: str, count: int, proc: subprocess.Popen[bytes], limit: float = 60
) -> None:
    """Until the process writing `log` has logged `count` events of `kind`."""
    deadline = time.monotonic() + limit
    while len(json_events(log.read_text(errors="replace"), kind)) < count:
        assert proc.poll() is None, f"the run ended before {count} {kind} events"
        assert time.monotonic() < deadline, f"no {count} {kind} events in {limit} s"
        time.sleep(0.02)


def english_prose(sentences: int, seed: int = 0) -> str:
    """Deterministic English prose, a paragraph every eight sentences."""
    subjects = [
        "The keeper",
        "A traveler",
        "The old clock",
        "Every river",
        "My neighbor",
        "The wind",
    ]
    verbs = ["remembers", "carries", "follows", "answers", "paints", "counts"]
    objects = [
        "the long road home",
        "a quiet song at dusk",
        "seven lanterns by the sea",
        "the letters nobody sent",
        "a map of forgotten towns",
        "the colour of early rain",
    ]
    out = []
    for i in range(sentences):
        k = i + seed
        out.append(f"{subjects[k % 6]} {verbs[(k // 6) % 6]} {objects[(k // 36) % 6]}, number {k}.")
        if i % 8 == 7:
            out.append("\n\n")
    return " ".join(out)


def wav_stats(path: Path) -> tuple[int, float, float]:
    """(sample rate, duration in seconds, RMS in dBFS) of a WAV file."""
    from runner.audio import decode

    samples, rate = decode(path.read_bytes(), "wav")
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return rate, len(samples) / rate, 20 * np.log10(max(rms, 1e-12))
