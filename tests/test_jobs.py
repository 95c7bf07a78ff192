"""The crontab of jobs/README.md, run as written (in a copy of jobs/): the nightly `run` with
its deadline and notification, then the hourly `collect`."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

REPO = Path(__file__).resolve().parent.parent
CRON_LINE = re.compile(r"^(\S+ \S+ \S+ \S+ \S+)\s+cd /srv/tts-runner && (.+?) >> (\S+) 2>&1$")


def _crontab() -> list[tuple[str, list[str]]]:
    text = (REPO / "jobs" / "README.md").read_text()
    block = text.split("```cron\n", 1)[1].split("```", 1)[0]
    lines = []
    for line in block.strip().splitlines():
        found = CRON_LINE.match(line)
        assert found, f"not a crontab line of the documented shape: {line!r}"
        lines.append((found[1], shlex.split(found[2])))
    return lines


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, object]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Hook.received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    _Hook.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/tts"
    server.shutdown()
    server.server_close()


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    assert argv[0] == ".venv/bin/tts-runner"
    return subprocess.run(
        [sys.executable, "-m", "runner", *argv[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def test_the_documented_crontab_runs_the_jobs_and_collects(tmp_path: Path, hook: str) -> None:
    (nightly, run), (hourly, collect) = _crontab()
    assert nightly.split()[:2] == ["30", "1"]
    assert hourly.split()[1:] == ["*", "*", "*", "*"]
    assert run[1:3] == ["run", "jobs"]
    assert collect[1:3] == ["collect", "jobs"]
    shutil.copytree(REPO / "jobs", tmp_path / "jobs", ignore=shutil.ignore_patterns("out*"))

    index = run.index("--notify-url")
    run[index + 1] = hook
    night = _run(run, tmp_path)
    assert night.returncode == 0, night.stderr
    summary = night.stdout.strip().splitlines()
    assert summary[0].startswith("nightly: ")  # one line per manifest, for the log
    events = [json.loads(line) for line in night.stderr.splitlines()]  # not a tty: JSON lines
    assert {e["event"] for e in events} >= {"plan", "segment_done", "summary"}
    (notified,) = _Hook.received
    (job,) = notified["runs"]  # type: ignore[misc]
    assert job["exit_code"] == 0
    assert job["manifest"].endswith("jobs/nightly.yaml")
    texts = sorted((tmp_path / "jobs" / "texts").glob("*.txt"))
    chapters = sorted((tmp_path / "jobs" / "out" / "nightly").glob("*.wav"))
    assert len(chapters) == len(texts) > 0

    hourly_run = _run(collect, tmp_path)
    assert hourly_run.returncode == 0, hourly_run.stderr  # nothing pending
    requests = [json.loads(line) for line in hourly_run.stderr.splitlines()]
    assert [e for e in requests if e["event"] == "request"] == []


def test_a_notification_that_fails_does_not_fail_the_run(tmp_path: Path) -> None:
    shutil.copytree(REPO / "jobs", tmp_path / "jobs", ignore=shutil.ignore_patterns("out*"))
    done = subprocess.run(
        [sys.executable, "-m", "runner", "run", "jobs", "--notify-url", "http://127.0.0.1:9/x"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "warning: could not notify http://127.0.0.1:9/x" in done.stderr
