"""Several manifests in one process (`tts-runner run a.yaml b.yaml`, or a directory): one
limiter per provider account across all of them, fair interleaving, a priority per manifest,
and one manifest that cannot run does not stop the others."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from support import english_prose, tts_runner

from runner.sandbox import AccountConfig, SandboxConfig, SandboxThread
from runner.sandbox.config import Plan, TTSAIConfig

KEY = "sk-tts-together-0123456789"
ENV = {"SHARED_TTSAI_KEY": KEY}
PLAN = Plan(requests=6, per_seconds=2.0, concurrent=3, max_chars=5_000)


def _sentences(count: int, seed: int) -> list[str]:
    found = [s.strip() + "." for s in english_prose(count, seed=seed).split(".") if s.strip()]
    assert len(found) == count
    return found


def _book(
    path: Path, url: str, texts: list[str], *, account: str, priority: int = 0, name: str = ""
) -> Path:
    """A manifest whose account (named differently in each file) is the one TTS.ai key; in
    `path`/book.yaml, or in `path`/`name`.yaml beside others."""
    path.mkdir(parents=True, exist_ok=True)
    lines = [
        f"name: {name or path.name}",
        f"priority: {priority}",
        f"output: {{dir: {name or 'out'}}}",
        "providers:",
        f'  {account}: {{kind: ttsai, base_url: "{url}", api_key_env: SHARED_TTSAI_KEY,'
        " limits: {requests: 6, per_seconds: 2, concurrent: 3}}",
        "voices:",
        f"  v: {{provider: {account}, model: kokoro, voice: af_bella}}",
        "texts:",
        *(f"  - {{id: t{i:02d}, text: {text!r}}}" for i, text in enumerate(texts)),
    ]
    manifest = path / f"{name or 'book'}.yaml"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def _starts(manifest: Path) -> list[float]:
    with sqlite3.connect(manifest.parent / ".tts-runner" / "state.db") as db:
        return [at for (at,) in db.execute("SELECT at FROM events WHERE kind = 'start'")]


def _sandbox() -> SandboxThread:
    account = AccountConfig(label="shared", credentials=(KEY,), plan="together")
    return SandboxThread(
        SandboxConfig(ttsai=TTSAIConfig(accounts=(account,), plans={"together": PLAN}))
    )


def test_manifests_run_together_share_the_accounts_plan_and_take_turns(tmp_path: Path) -> None:
    with _sandbox() as box:
        url = box.urls["ttsai"]
        big = _book(tmp_path / "jobs" / "big", url, _sentences(14, seed=1), account="tts")
        small = _book(tmp_path / "jobs" / "small", url, _sentences(4, seed=2), account="main")
        third = _book(tmp_path / "jobs" / "third", url, _sentences(6, seed=7), account="x")
        done = tts_runner("run", big, small, third, "--json-log", cwd=tmp_path, env=ENV)
        assert done.code == 0, done.stderr
        summary = box.summary(PLAN.per_seconds, provider="ttsai", account="shared")
        assert box.deviations("ttsai") == ()
    assert summary.requests == 24
    assert summary.throttled == 0
    assert summary.max_starts_in_window <= PLAN.requests  # one budget for both manifests
    # Fair turns: the small book is not starved until the big one is done.
    assert max(_starts(small)) < max(_starts(big))
    summaries = {e["manifest"]: e for e in done.events("summary")}
    assert {Path(str(m)).parent.name for m in summaries} == {"big", "small", "third"}
    assert all(e["exit_code"] == 0 for e in summaries.values())


def test_a_higher_priority_manifest_goes_first_on_a_shared_account(tmp_path: Path) -> None:
    with _sandbox() as box:
        url = box.urls["ttsai"]
        low = _book(tmp_path / "low", url, _sentences(8, seed=3), account="tts")
        high = _book(tmp_path / "high", url, _sentences(8, seed=4), account="tts", priority=5)
        done = tts_runner("run", low, high, "--json-log", cwd=tmp_path, env=ENV)
        assert done.code == 0, done.stderr
    # 16 requests at 6 per 2 s: the urgent book is through while the other still waits.
    assert max(_starts(high)) < max(_starts(low))
    assert sorted(_starts(high))[-1] <= sorted(_starts(low))[-3]


def test_a_directory_of_manifests_where_one_cannot_run(tmp_path: Path) -> None:
    """jobs/*.yaml, as cron gives them: they share jobs/.tts-runner, so they run one after the
    other (a segment both need is then paid once); the broken one is reported, not fatal."""
    with _sandbox() as box:
        url = box.urls["ttsai"]
        jobs = tmp_path / "jobs"
        _book(jobs, url, _sentences(3, seed=5), account="tts", name="fine")
        broken = _book(jobs, url, _sentences(3, seed=6), account="tts", name="broken")
        broken.write_text(broken.read_text().replace("SHARED_TTSAI_KEY", "UNSET_TTSAI_KEY"))
        done = tts_runner("run", jobs, "--json-log", cwd=tmp_path, env=ENV)
        requests = box.summary(PLAN.per_seconds, provider="ttsai").requests
    assert done.code == 2  # the worst of them: a usage error
    assert "UNSET_TTSAI_KEY" in done.stderr
    (failed,) = done.events("manifest_failed")
    assert str(failed["manifest"]).endswith("broken.yaml")
    (summary,) = done.events("summary")
    assert summary["exit_code"] == 0
    assert requests == 3
    index = json.loads((jobs / "fine" / "index.json").read_text())
    assert len(index["chapters"]) == 3


def test_several_manifests_cannot_share_one_state_directory(tmp_path: Path) -> None:
    one = _book(tmp_path / "one", "http://127.0.0.1:9", ["Hello."], account="tts")
    two = _book(tmp_path / "two", "http://127.0.0.1:9", ["Hello."], account="tts")
    done = tts_runner("run", one, two, "--state", tmp_path / "st", cwd=tmp_path, env=ENV)
    assert done.code == 2
    assert "--state names the state directory of one manifest" in done.stderr
    assert not (tmp_path / "st").exists()
