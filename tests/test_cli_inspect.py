"""`plan` (with its cost estimate) and `status` (with tasks awaiting download) through the CLI,
on real manifests and a real state database."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from runner.cli import main
from runner.manifest import load_manifest
from runner.plan import expand
from runner.store import Store

HOUR = 3600.0


def _write(tmp_path: Path, texts: dict[str, tuple[str, str]]) -> Path:
    """A manifest of one voice per provider kind; `texts` maps id → (voice, text)."""
    path = tmp_path / "book.yaml"
    lines = [
        "providers:",
        "  index: {kind: indextts}",
        "  fish: {kind: fish_yuntts}",
        "  tts: {kind: ttsai, plan: pro}",
        "voices:",
        "  n: {provider: index, audio_id: VoiceAbc123, style: 2}",
        "  f: {provider: fish, reference_id: r1}",
        "  b: {provider: tts, model: kokoro, voice: af_bella}",
        "  l: {provider: local, language: en}",
        "texts:",
        *(f"  - {{id: {i}, voice: {v}, text: {t!r}}}" for i, (v, t) in texts.items()),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _words(chars: int) -> str:
    """Plain text of exactly `chars` characters, no sentence end."""
    text = ("lantern " * (chars // 8 + 1))[:chars]
    return text[:-1] + "x" if text.endswith(" ") else text


def _cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert err == ""
    return code, out


# -- plan ---------------------------------------------------------------------------------------


def test_plan_estimates_each_account_in_its_own_unit_and_totals_per_unit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _write(
        tmp_path,
        {
            "a": ("b", _words(1500)),  # TTS.ai kokoro: 2 credits per started 1000 characters
            "b": ("n", _words(400)),  # IndexTTS bills characters
            "c": ("f", _words(150)),  # Fish: 0.021 yuan per 150 characters
            "d": ("l", "Spoken offline."),
        },
    )
    code, out = _cli(capsys, "plan", manifest, "--json")
    assert code == 0
    plan = json.loads(out)
    accounts = plan["accounts"]
    assert (accounts["tts"]["estimated_cost"], accounts["tts"]["price_unit"]) == (4.0, "credits")
    assert accounts["tts"]["price_published"] is True
    assert (accounts["index"]["estimated_cost"], accounts["index"]["price_unit"]) == (
        400.0,
        "characters",
    )
    assert accounts["fish"]["estimated_cost"] == pytest.approx(0.021)
    assert accounts["fish"]["price_unit"] == "yuan"
    assert (accounts["local"]["estimated_cost"], accounts["local"]["price_unit"]) == (0.0, None)
    assert plan["estimated_cost"] == {"credits": 4.0, "characters": 400.0, "yuan": 0.021}

    code, out = _cli(capsys, "plan", manifest)
    assert code == 0
    lines = out.splitlines()
    assert lines[-1] == "estimated cost: ≈ 400 characters + 4 credits + 0.02 yuan"
    assert next(line for line in lines if line.startswith("  tts ")).endswith("; ≈ 4 credits")
    assert next(line for line in lines if line.startswith("  local ")).endswith("; free")


def test_segments_already_done_cost_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _write(tmp_path, {"a": ("b", _words(1500)), "b": ("b", _words(900))})
    segments = expand(load_manifest(manifest)).unique_segments()
    first = next(iter(segments))
    with Store.open(tmp_path / ".tts-runner") as store:
        store.add_segments(segments.values())
        store.mark_done(first, path="x", sha256="0" * 64, duration=1.0, sample_rate=24000, cost=4)
    code, out = _cli(capsys, "plan", manifest, "--json")
    assert code == 0
    tts = json.loads(out)["accounts"]["tts"]
    assert (tts["cached"], tts["requests"], tts["estimated_cost"]) == (1, 1, 2.0)


# -- status -------------------------------------------------------------------------------------


def _state(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A state with IndexTTS tasks in each waiting situation; returns (manifest, key by id)."""
    manifest = _write(
        tmp_path,
        {
            "fresh": ("n", "Submitted a minute ago."),
            "old": ("n", "Submitted twenty hours ago."),
            "soon": ("n", "Ready, with two hours left."),
            "gone": ("n", "Ready, but expired an hour ago."),
            "done": ("n", "Already downloaded."),
        },
    )
    plan = expand(load_manifest(manifest))
    keys = {c.id: c.segments[0].key for c in plan.chapters}
    now = time.time()
    state = tmp_path / ".tts-runner"
    with Store.open(state) as store:
        store.add_segments(plan.unique_segments().values())
        for text_id, key in keys.items():
            store.begin_submit(key, f"req-{text_id}")
            store.mark_submitted(key, f"task-{text_id}")
        store.mark_ready(keys["soon"], "https://example.invalid/soon.wav", now + 2 * HOUR)
        store.mark_ready(keys["gone"], "https://example.invalid/gone.wav", now - HOUR)
        store.mark_done(
            keys["done"], path="x", sha256="0" * 64, duration=1.0, sample_rate=24000, cost=None
        )
    with sqlite3.connect(state / "state.db") as db:
        db.execute(
            "UPDATE segments SET submitted_at = ? WHERE key = ?", (now - 20 * HOUR, keys["old"])
        )
    return manifest, keys


def test_status_lists_waiting_tasks_soonest_expiry_first_with_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest, _ = _state(tmp_path)
    code, out = _cli(capsys, "status", manifest)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].endswith(": 2 submitted, 2 ready, 1 done")
    assert lines[1] == "tasks awaiting download or still processing, soonest expiry first:"
    assert lines[2] == "  ready      index  task task-gone  expired 1h 00m ago"
    assert lines[3].startswith("  ready      index  task task-soon  expires in 1h 5")
    assert lines[4].startswith("  submitted  index  task task-old  expires in at most 3h 5")
    assert lines[5].startswith("  submitted  index  task task-fresh  expires in at most 23h 5")
    warnings = [line for line in lines if line.startswith("warning: ")]
    assert len(warnings) == 3
    assert warnings[0] == (
        "warning: task task-gone (index, ready) expired 1h 00m ago; "
        "the next run requests it again (and pays again)"
    )
    assert "task task-soon (index, ready) expires in 1h 5" in warnings[1]
    assert warnings[1].endswith("; run its manifest again before then to download it")
    assert "task task-old (index, submitted) expires in at most 3h 5" in warnings[2]


def test_status_json_marks_each_task_and_lists_the_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest, keys = _state(tmp_path)
    code, out = _cli(capsys, "status", manifest, "--json")
    assert code == 0
    status = json.loads(out)
    assert status["counts"]["submitted"] == 2
    tasks = {t["task_id"]: t for t in status["pending_tasks"]}
    assert list(tasks) == ["task-gone", "task-soon", "task-old", "task-fresh"]
    assert {t: tasks[t]["warning"] for t in tasks} == {
        "task-gone": True,
        "task-soon": True,
        "task-old": True,
        "task-fresh": False,
    }
    soon = tasks["task-soon"]
    assert soon["key"] == keys["soon"]
    assert soon["account"] == "index"
    assert soon["expires_at_is_upper_bound"] is False
    assert 2 * HOUR - 60 < soon["seconds_left"] <= 2 * HOUR
    fresh = tasks["task-fresh"]
    assert fresh["expires_at_is_upper_bound"] is True
    assert fresh["expires_at"] == pytest.approx(fresh["submitted_at"] + 24 * HOUR)
    assert tasks["task-gone"]["seconds_left"] < 0
    assert len(status["warnings"]) == 3
    assert status["warnings"][0].startswith("task task-gone (index, ready) expired")


def test_status_of_a_state_directory_alone_uses_the_default_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _state(tmp_path)
    code, out = _cli(capsys, "status", "--state", tmp_path / ".tts-runner", "--json")
    assert code == 0
    status = json.loads(out)
    assert len(status["pending_tasks"]) == 4
    assert len(status["warnings"]) == 3


def test_status_with_nothing_waiting_has_no_task_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _write(tmp_path, {"a": ("l", "Offline.")})
    code, out = _cli(capsys, "status", manifest)
    assert code == 0
    assert out == f"{tmp_path / '.tts-runner'}: 1 pending\n"
    code, out = _cli(capsys, "status", manifest, "--json")
    status = json.loads(out)
    assert (status["pending_tasks"], status["warnings"]) == ([], [])
