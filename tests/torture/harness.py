"""The torture harness: a sandbox in its own process, the runner as a real subprocess that can be
kill -9'd, a history of everything both sides said, and a checker.

- `SandboxProcess` runs the sandbox in its own process (`sandbox_server.py`, the synthetic voice,
  by default; `tts-runner sandbox --config FILE` itself with `product=True`) and reads its
  announced URLs; the ledger, deviations and faults are reached through the sandbox's admin
  app over HTTP, so the history survives every kill of the runner.
- `Book` writes a manifest mixing synchronous providers (TTS.ai, VoxCPM, Fish via yuntts,
  fishaudio.net) with IndexTTS tasks, aimed at one sandbox; `segments()` expands it in-process
  so ledger entries can be tied back to segment keys.
- `RunLog` is one runner process: its JSON log (stderr) and summary (stdout) in files, read
  tolerantly because a kill can cut the last line in half.
- `run_with_kills` SIGKILLs runs where a seeded `KillPlan` says and resumes until one exits 0.
- `check_history` is the ledger half of the checker: nothing paid twice except re-requests the
  logs list, no payment without a result delivered intact; the tests add the rest (every
  segment done, chapters byte-identical to an undisturbed run, cache intact).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import selectors
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]

#: The credentials of every account, by the environment variable the manifest names. The
#: sandbox process reads the same variables (`credential_envs`), so no file holds them.
CREDENTIALS = {
    "TTSAI_API_KEY": "sk-tts-torture-0d1e2f3a4b5c",
    "YUNTTS_TOKEN": "tok-yuntts-torture-6d7e8f",
    "FISHAUDIO_NET_TOKEN": "tok-fishnet-torture-9a0b1c",
    "INDEX_API_SIGN": "sign-index-torture-2d3e4f",
}

#: Plans generous enough that a plan is never the bottleneck of a test (pacing has its own
#: tests); the runner is told the same limits, so it never provokes a 429 by itself.
RUNNER_LIMITS = "{requests: 400, per_seconds: 1, concurrent: 4, max_chars: 80}"
SANDBOX_RATE = {"requests": 2000, "per_seconds": 1.0, "concurrent": 16}

#: Providers of the mix, as the sandbox (and the ledger) names them.
PROVIDERS = ("ttsai", "voxcpm", "fish_yuntts", "fishaudio_net", "indextts")
SYNC = frozenset(PROVIDERS) - {"indextts"}


def python_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIALS}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.update(extra or {})
    return env


# -- the sandbox ------------------------------------------------------------------------------


def sandbox_config(
    *,
    seed: int = 0,
    faults: Mapping[str, float] | None = None,
    slow_seconds: float = 3.0,
    retry_after: float = 1.0,
    credential_envs: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A sandbox config (as YAML data) with one account per provider of the mix.

    `credential_envs` maps provider → environment variable holding the credential the sandbox
    accepts (default: the variables of CREDENTIALS).
    """
    envs = {
        "ttsai": "TTSAI_API_KEY",
        "fish_yuntts": "YUNTTS_TOKEN",
        "fishaudio_net": "FISHAUDIO_NET_TOKEN",
        "indextts": "INDEX_API_SIGN",
        **(credential_envs or {}),
    }
    fault = {"rates": dict(faults or {}), "slow_seconds": slow_seconds, "retry_after": retry_after}

    def account(provider: str, **extra: object) -> dict[str, object]:
        return {
            "label": provider,
            "credential_envs": [envs[provider]],
            "adopt_unknown_voices": True,
            "rate": SANDBOX_RATE,
            **extra,
        }

    return {
        "seed": seed,
        "indextts": {
            "accounts": [account("indextts")],
            "accept_any_credential": False,
            "processing_base": 0.15,
            "processing_per_char": 0.002,
            "faults": fault,
        },
        "voxcpm": {"servers": 2, "latency_base": 0.01, "faults": fault},
        "fish_yuntts": {
            "accounts": [account("fish_yuntts", model_limit=None)],
            "accept_any_credential": False,
            "faults": fault,
        },
        "fishaudio_net": {
            "accounts": [account("fishaudio_net")],
            "accept_any_credential": False,
            "faults": fault,
        },
        "ttsai": {
            "accounts": [account("ttsai", plan="torture")],
            "accept_any_credential": False,
            "plans": {
                "torture": {
                    "requests": SANDBOX_RATE["requests"],
                    "per_seconds": SANDBOX_RATE["per_seconds"],
                    "concurrent": SANDBOX_RATE["concurrent"],
                    "max_chars": 5000,
                }
            },
            "faults": fault,
        },
    }


class SandboxProcess:
    """A sandbox in a child process; the admin app answers for it.

    By default `sandbox_server.py` (the synthetic voice: identical requests give identical
    bytes in every process); `product=True` runs `tts-runner sandbox` itself (espeak-ng voice).
    """

    def __init__(
        self,
        directory: Path,
        config: Mapping[str, Any],
        env: Mapping[str, str] | None = None,
        *,
        product: bool = False,
        startup_timeout: float = 30.0,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.config_path = directory / "sandbox.yaml"
        self.config_path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
        self.stderr_path = directory / "sandbox.stderr"
        self._stderr = self.stderr_path.open("wb")
        if product:
            command = ["-m", "runner", "sandbox", "--config", str(self.config_path)]
        else:
            command = [str(Path(__file__).with_name("sandbox_server.py")), str(self.config_path)]
        self.proc = subprocess.Popen(
            [sys.executable, *command],
            cwd=directory,
            env=python_env({**CREDENTIALS, **(env or {})}),
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        try:
            self.urls = self._announcement(startup_timeout)
        except BaseException:
            self.close()
            raise
        self.admin = str(self.urls["admin"])

    def _announcement(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                raise RuntimeError(f"the sandbox announced nothing in {timeout} s")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the sandbox exited: {self.stderr_path.read_text()}")
        urls: dict[str, Any] = json.loads(line)
        return urls

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # `tts-runner sandbox` stops on Ctrl-C
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(self.admin + path, timeout=30) as reply:
            return json.loads(reply.read())

    def _post(self, path: str, payload: object) -> Any:
        request = urllib.request.Request(
            self.admin + path,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            return json.loads(reply.read())

    def ledger(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self._get("/ledger")["entries"]
        return entries

    def deviations(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._get("/deviations")["deviations"]
        return found

    def set_faults(self, provider: str, **body: object) -> None:
        self._post("/faults", {"provider": provider, **body})


# -- the book ---------------------------------------------------------------------------------

_SUBJECTS = ("The keeper", "A traveler", "The old clock", "Every river", "My neighbor", "The wind")
_VERBS = ("remembers", "carries", "follows", "answers", "paints", "counts")
_OBJECTS = (
    "the long road home",
    "a quiet song at dusk",
    "seven lanterns by the sea",
    "the letters nobody sent",
    "a map of forgotten towns",
    "the colour of early rain",
)


def sentence(k: int) -> str:
    """A distinct sentence for every k (so every segment has its own text)."""
    return f"{_SUBJECTS[k % 6]} {_VERBS[(k // 6) % 6]} {_OBJECTS[(k // 36) % 6]}, number {k}."


@dataclass(frozen=True)
class Book:
    """A manifest of `chapters` chapters, `per_chapter` one-sentence segments each, the
    chapters dealt round-robin to the five providers of the mix."""

    directory: Path
    urls: Mapping[str, Any]
    chapters: int
    per_chapter: int
    account_options: str = ""  #: e.g. "timeout: 2": more keys for every account
    voices: Mapping[str, str] = field(
        default_factory=lambda: {
            "ttsai": "{provider: tts, model: kokoro, voice: af_bella, format: wav}",
            "voxcpm": '{provider: vox, prompt: "a calm, warm narrator"}',
            "fish_yuntts": "{provider: fish, reference_id: alice, format: wav}",
            "fishaudio_net": "{provider: net, reference_id: voiceA, format: wav}",
            "indextts": "{provider: index, audio_id: ABuVg22s3ydwS7RtkVyVN86Egq}",
        }
    )

    @property
    def manifest(self) -> Path:
        return self.directory / "book.yaml"

    @property
    def home(self) -> Path:
        """TTS_RUNNER_HOME of the runs of this book (its account history lives there)."""
        return self.directory / "home"

    def write(self) -> Path:
        u = self.urls
        pool = ", ".join(f'"{url}"' for url in u["voxcpm_pool"])
        # `limits: {...}`, then any further keys of the account's mapping
        limits = RUNNER_LIMITS + (f", {self.account_options}" if self.account_options else "")
        lines = [
            "version: 1",
            "name: torture",
            "output: {dir: out, format: wav, pause_ms: 200, paragraph_pause_ms: 400}",
            "providers:",
            f'  tts: {{kind: ttsai, base_url: "{u["ttsai"]}", limits: {limits}}}',
            f"  vox: {{kind: voxcpm, base_urls: [{pool}], limits: {limits}}}",
            f'  fish: {{kind: fish_yuntts, base_url: "{u["fish_yuntts"]}", limits: {limits}}}',
            f'  net: {{kind: fishaudio_net, base_url: "{u["fishaudio_net"]}", limits: {limits}}}',
            f'  index: {{kind: indextts, base_url: "{u["indextts"]}", limits: {limits}}}',
            "voices:",
            *(f"  {p}: {spec}" for p, spec in self.voices.items()),
            "texts:",
        ]
        k = 0
        for c in range(self.chapters):
            provider = PROVIDERS[c % len(PROVIDERS)]
            text = " ".join(sentence(k + i) for i in range(self.per_chapter))
            k += self.per_chapter
            lines.append(f"  - {{id: ch{c:03d}, voice: {provider}, text: {json.dumps(text)}}}")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.manifest.write_text("\n".join(lines) + "\n")
        return self.manifest

    def segments(self) -> dict[str, SegmentInfo]:
        """Every unique segment of the manifest, by key."""
        from runner.manifest import load_manifest
        from runner.plan import expand

        manifest = load_manifest(self.manifest)
        return {
            key: SegmentInfo(key, s.text, manifest.accounts[s.account].kind, s.account)
            for key, s in expand(manifest).unique_segments().items()
        }


@dataclass(frozen=True)
class SegmentInfo:
    key: str
    text: str
    kind: str  #: provider kind, as the sandbox names it
    account: str

    @property
    def text_hash(self) -> str:
        from runner.sandbox.ids import digest

        return digest(self.text)


# -- runner processes -------------------------------------------------------------------------


def read_events(path: Path, kind: str | Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The complete JSON-log lines of `path` (a kill may leave the last one cut short)."""
    kinds = {kind} if isinstance(kind, str) else set(kind) if kind is not None else None
    found: list[dict[str, Any]] = []
    if not path.exists():
        return found
    for line in path.read_text(errors="replace").splitlines():
        if not (line.startswith("{") and line.endswith("}")):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if kinds is None or event.get("event") in kinds:
            found.append(event)
    return found


@dataclass
class RunLog:
    """One runner process and what it left behind."""

    number: int
    log: Path  #: stderr: the JSON log
    out: Path  #: stdout: the summary line
    proc: subprocess.Popen[bytes]
    started: float  #: time.monotonic() at the start
    wall_started: float = field(default_factory=time.time)  #: the same on the log's clock
    killed: bool = False
    kill_trigger: str = ""
    exit_code: int | None = None
    seconds: float = 0.0

    def events(self, kind: str | Iterable[str] | None = None) -> list[dict[str, Any]]:
        return read_events(self.log, kind)

    def keys(self, kind: str) -> list[str]:
        return [str(e["key"]) for e in self.events(kind) if "key" in e]

    def in_flight_at_kill(self) -> set[str]:
        """Segments this run sent a synthesis request for and never logged done."""
        if not self.killed:
            return set()
        return set(self.keys("request")) - set(self.keys("segment_done"))

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout=timeout)
        self.exit_code = code
        self.seconds = time.monotonic() - self.started
        return code


def start_run(
    manifest: Path, directory: Path, number: int, env: Mapping[str, str] | None = None
) -> RunLog:
    """`python -m runner run MANIFEST --json-log`, with TTS_RUNNER_HOME in `directory/home`."""
    log, out = directory / f"run-{number:03d}.log", directory / f"run-{number:03d}.out"
    home = {"TTS_RUNNER_HOME": str(directory / "home")}
    with log.open("wb") as stderr, out.open("wb") as stdout:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runner", "run", manifest.name, "--json-log"],
            cwd=manifest.parent,
            env=python_env({**CREDENTIALS, **home, **(env or {})}),
            stdout=stdout,
            stderr=stderr,
        )
    return RunLog(number, log, out, proc, time.monotonic())


class Children:
    """Every process a test started, reaped whatever the test asserts."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def add(self, run: RunLog) -> RunLog:
        self.procs.append(run.proc)
        return run

    def reap(self) -> None:
        while self.procs:
            proc = self.procs.pop()
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


def outputs(directory: Path) -> dict[str, str]:
    """sha256 of every chapter file in `directory/out`."""
    out = directory / "out"
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.wav"))}


def done_segments(state: Path) -> dict[str, tuple[str, Path]]:
    """(sha256, cached file) of every done segment, from a state database (read-only)."""
    import sqlite3

    db = sqlite3.connect(f"file:{state / 'state.db'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT key, sha256, path FROM segments WHERE state = 'done'").fetchall()
    finally:
        db.close()
    return {str(k): (str(h), state / str(p)) for k, h, p in rows}


def segment_hashes(state: Path) -> dict[str, str]:
    """sha256 of every done segment's cached audio."""
    return {k: sha for k, (sha, _) in done_segments(state).items()}


def undisturbed(
    workdir: Path, chapters: int, per_chapter: int, config: Mapping[str, Any], timeout: float
) -> tuple[dict[str, str], dict[str, str], list[dict[str, Any]]]:
    """The reference: the same book, against a fresh sandbox, run once without interference.
    Returns (chapter hashes, segment hashes, ledger)."""
    with SandboxProcess(workdir / "sandbox", config) as box:
        book = Book(workdir / "book", box.urls, chapters, per_chapter)
        book.write()
        run = start_run(book.manifest, book.directory, 0)
        try:
            code = run.wait(timeout)
        finally:
            if run.proc.poll() is None:
                run.proc.kill()
                run.proc.wait()
        assert code == 0, run.log.read_text()[-3000:]
        ledger = box.ledger()
    return outputs(book.directory), segment_hashes(book.directory / ".tts-runner"), ledger


# -- the checker ------------------------------------------------------------------------------


@dataclass
class Verdict:
    """What the history shows, for the report and the assertions."""

    kills: int = 0
    runs: int = 0
    paid: Counter[str] = field(default_factory=Counter)  #: paid synthesis entries per segment
    allowed_extra: Counter[str] = field(default_factory=Counter)  #: re-requests the logs list
    re_request_events: int = 0
    in_flight_at_kills: int = 0
    extra_payments: int = 0  #: paid beyond the first, not counting results lost to faults
    lost_to_faults: int = 0  #: paid results an injected fault kept from the runner
    lost_to_kills: int = 0  #: paid results the runner went away from (killed mid-request)
    unmatched: list[Mapping[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        return (
            f"runs={self.runs} kills={self.kills} paid={sum(self.paid.values())} "
            f"extra_payments={self.extra_payments} (listed: re_request events="
            f"{self.re_request_events}, in flight at kills={self.in_flight_at_kills}) "
            f"lost_to_kills={self.lost_to_kills} lost_to_faults={self.lost_to_faults} "
            f"faults={dict(sorted(self.faults.items()))} "
            f"retries={dict(sorted(self.retries.items()))}"
        )


def synthesis_by_segment(
    ledger: Iterable[Mapping[str, Any]], segments: Mapping[str, SegmentInfo]
) -> tuple[dict[str, list[Mapping[str, Any]]], list[Mapping[str, Any]]]:
    """Paid synthesis entries of the ledger grouped by segment key (by provider and text hash),
    and those that match no segment."""
    by_text = {(s.kind, s.text_hash): key for key, s in segments.items()}
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    unmatched = []
    for e in ledger:
        if e["operation"] != "synthesize" or not e["paid"]:
            continue
        key = by_text.get((e["provider"], e["text_hash"]))
        if key is None:
            unmatched.append(e)
        else:
            grouped.setdefault(key, []).append(e)
    return grouped, unmatched


def _lost(e: Mapping[str, Any]) -> bool:
    return bool(e["paid"] and not e["delivered"] and not e["retrievable"])


def check_history(
    runs: list[RunLog],
    ledger: list[dict[str, Any]],
    segments: Mapping[str, SegmentInfo],
) -> Verdict:
    """The ledger against the runs' logs. Problems (in `problems`) are:

    - a segment never paid for, or whose only payments never reached the runner intact;
    - an IndexTTS segment paid more than once (its tasks can always be found again);
    - a synchronous segment paid more often than once plus the re-requests the runs' logs list
      for it (`re_request` events: a resumed run found it `submitting`, so its answer may have
      been paid for and lost with the killed run).

    Payments whose result an injected fault kept from the runner (dropped, cut short, corrupt)
    are lost by the provider's doing and must be requested again; they are counted apart.
    `in_flight_at_kills` counts the `request`s a killed run logged without their segment done:
    the re-requests a resumed run is expected to list (a kill can also cut a log line short,
    so the two need not match exactly).
    """
    v = Verdict(kills=sum(r.killed for r in runs), runs=len(runs))
    for run in runs:
        for event in run.events("retry"):
            v.retries[str(event.get("cause", "?"))] += 1
        re_requested = run.keys("re_request")
        v.re_request_events += len(re_requested)
        v.allowed_extra.update(re_requested)
        v.in_flight_at_kills += len(run.in_flight_at_kill())
    grouped, v.unmatched = synthesis_by_segment(ledger, segments)
    for e in ledger:
        if e["fault"]:
            v.faults[e["fault"]] += 1
    for key, segment in segments.items():
        paid = grouped.get(key, [])
        v.paid[key] = len(paid)
        by_fault = [e for e in paid if _lost(e) and e["fault"]]
        by_kill = [e for e in paid if _lost(e) and not e["fault"]]
        v.lost_to_faults += len(by_fault)
        v.lost_to_kills += len(by_kill)
        intact = [e for e in paid if not _lost(e)]
        name = f"{segment.kind} segment {key[:12]}"
        if not intact:
            v.problems.append(f"{name}: no payment delivered intact ({len(paid)} paid)")
            continue
        extra = len(paid) - len(by_fault) - 1
        v.extra_payments += extra
        if segment.kind == "indextts" and len(paid) > 1:
            seqs = [(e["seq"], e["status"], e["fault"]) for e in paid]
            v.problems.append(f"{name} paid {len(paid)} times; ledger (seq, status, fault): {seqs}")
        elif extra > v.allowed_extra[key]:
            seqs = [(e["seq"], e["status"], e["fault"]) for e in paid]
            v.problems.append(
                f"{name} paid {len(paid)} times; the logs list {v.allowed_extra[key]} "
                f"re-request(s); ledger (seq, status, fault): {seqs}"
            )
    return v


def iter_files(*roots: Path) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from (p for p in sorted(root.rglob("*")) if p.is_file())


# -- the kill loop ----------------------------------------------------------------------------


@dataclass
class KillPlan:
    """Where the kills land, drawn from a seeded RNG.

    - "done": once the run has finished 1–3 segments, then a random few milliseconds more: the
      book advances and every phase of the work is hit (synchronous requests in flight, tasks
      created, polled and downloaded, results being verified and stored);
    - "plan": 0–10 ms after the run logged its plan: resuming itself (reconciling `submitting`
      tasks, re-requesting, the first requests of the run);
    - "time": a random moment before a run gets that far (state opened, lock, migrations).

    A "done" kill lets a run finish several segments (results arrive in bursts, above all right
    after a resume), so once what is left would not last the kills still to come at the pace
    measured so far, the kills move to "plan" and "time", which cost (almost) no progress.
    """

    seed: int
    kills: int
    startup_share: float = 0.15  #: "plan" or "time" kills anyway

    def trigger(
        self,
        rng: random.Random,
        remaining: int,
        kills_left: int,
        pace: float,  #: segments a "done" kill let a run finish, on average so far
        planned_after: float,  #: fewest seconds from a run's start to its plan event
    ) -> tuple[str, float]:
        early = remaining < 1.2 * pace * kills_left
        if early or rng.random() < self.startup_share:
            if rng.random() < 0.5:
                return "plan", rng.uniform(0.0, 0.01)
            return "time", rng.uniform(0.05, 0.9 * planned_after)
        return "done", float(rng.randint(1, 3))


def run_with_kills(
    book: Book,
    plan: KillPlan,
    children: Children,
    *,
    segments: int,
    max_runs: int,
    run_timeout: float,
    env: Mapping[str, str] | None = None,
) -> list[RunLog]:
    """Run the book, SIGKILLing runs as `plan` says, then resuming, until a run exits 0."""
    rng = random.Random(plan.seed)
    runs: list[RunLog] = []
    done: set[str] = set()
    paces: list[int] = []
    planned_after = 0.5
    while len(runs) < max_runs:
        kills = sum(r.killed for r in runs)
        run = children.add(start_run(book.manifest, book.directory, len(runs) + 1, env))
        runs.append(run)
        how = ""
        if kills < plan.kills:
            pace = sum(paces) / len(paces) if paces else 4.0
            how, amount = plan.trigger(
                rng, segments - len(done), plan.kills - kills, pace, planned_after
            )
            delay = rng.choice((0.0, rng.uniform(0.0, 0.005), rng.uniform(0.0, 0.03)))
            if how == "plan":
                how, amount, delay = "plan", 1.0, amount
            if _wait_for_trigger(run, how, amount, deadline=time.monotonic() + run_timeout):
                time.sleep(delay)
                if run.proc.poll() is None:
                    run.proc.send_signal(signal.SIGKILL)
                    run.killed = True
                    run.kill_trigger = f"{how}:{amount:g}+{delay * 1000:.0f}ms"
        code = run.wait(run_timeout)
        before = len(done)
        done.update(run.keys("segment_done"))
        if how == "done" and run.killed:
            paces.append(len(done) - before)
        for event in run.events("plan")[:1]:
            planned_after = min(planned_after, float(event["ts"]) - run.wall_started)
        if run.killed:
            assert code == -signal.SIGKILL, (code, run.log.read_text()[-2000:])
            continue
        assert code in (0, 3), f"run {run.number} exited {code}: {run.log.read_text()[-3000:]}"
        if code == 0:
            return runs
    raise AssertionError(f"no run exited 0 in {max_runs} runs")


def _wait_for_trigger(run: RunLog, how: str, amount: float, deadline: float) -> bool:
    """Wait until the trigger fires (True) or the run ends first (False)."""
    if how == "time":
        end = run.started + amount
        while time.monotonic() < end:
            if run.proc.poll() is not None:
                return False
            time.sleep(0.002)
        return True
    kind = "segment_done" if how == "done" else "plan"
    while time.monotonic() < deadline:
        if run.proc.poll() is not None:
            return False
        if len(run.events(kind)) >= amount:
            return True
        time.sleep(0.002)
    raise AssertionError(f"run {run.number} logged no {amount:g} {kind} events in time")
