"""`run --sandbox` on examples/all-providers/: one book spoken by every provider kind, rehearsed
through the real CLI against the emulators, with zero deviations from the documented APIs —
and the control that shows a deviation, when there is one, is reported."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from support import REPO, Completed, tts_runner, wav_stats

from runner.cli import main
from runner.manifest import load_manifest
from runner.manifest.model import Manifest

EXAMPLE = REPO / "examples" / "all-providers"
KINDS = {"local", "indextts", "voxcpm", "fish_yuntts", "fishaudio_net", "ttsai"}
STATE = ".tts-runner-sandbox"


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """An environment whose HOME is inside tmp_path: no providers file and no limit history of
    the user's (empty variables count as unset). A rehearsal needs no credentials."""
    (tmp_path / "home").mkdir()
    unset = ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "TTS_RUNNER_PROVIDERS")
    return {"HOME": str(tmp_path / "home"), **dict.fromkeys(unset, "")}


def rehearse(directory: Path, env: dict[str, str]) -> Completed:
    return tts_runner(
        "run", "book.yaml", "--sandbox", "--json-log", cwd=directory, env=env, timeout=180
    )


@pytest.fixture(scope="module")
def example() -> Manifest:
    return load_manifest(EXAMPLE / "book.yaml")


def test_the_example_uses_every_kind_and_mode(example: Manifest) -> None:
    """What the rehearsal below covers: every provider kind, and the modes the README names."""
    assert {a.kind for a in example.accounts.values()} == KINDS

    def has(kind: str, *keys: str, **values: object) -> bool:
        return any(
            v.kind == kind
            and all(k in v.params for k in keys)
            and all(v.params.get(k, 0) == x for k, x in values.items())
            for v in example.voices.values()
        )

    modes = {
        "indextts audio_id": has("indextts", "audio_id", genre=0),
        "indextts genre 1": has("indextts", "emotion", genre=1),
        "indextts genre 2 + emotion_ref": has("indextts", "emotion_ref", genre=2),
        "indextts clone": has("indextts", "clone"),
        "voxcpm prompt": has("voxcpm", "prompt"),
        "voxcpm ultimate clone": has("voxcpm", "reference_audio", "reference_text"),
        "fish s1": has("fish_yuntts", "reference_id", model="s1"),
        "fish s2-pro speakers, stream false": has(
            "fish_yuntts", "speakers", model="s2-pro", stream=False
        ),
        "fish references": has("fish_yuntts", "references"),
        "fishaudio_net": has("fishaudio_net", "reference_id"),
        "ttsai kokoro": has("ttsai", "voice", model="kokoro"),
        "ttsai clone": has("ttsai", "clone"),
        "local": has("local", "language"),
    }
    assert all(modes.values()), [m for m, ok in modes.items() if not ok]
    pool = [a for a in example.accounts.values() if a.kind == "voxcpm"]
    assert [len(a.base_urls) for a in pool] == [2]
    packed = {
        a.options.get("msgpack", False)
        for a in example.accounts.values()
        if a.kind == "fishaudio_net"
    }
    assert packed == {True, False}
    assert all(v.account in example.accounts for v in example.voices.values())
    # credentials only by the names of environment variables
    text = (EXAMPLE / "book.yaml").read_text(encoding="utf-8")
    assert "sk-" not in text
    for account in example.accounts.values():
        assert all(var.isupper() for var in account.credentials.values())
    # the reference recordings are small stand-ins
    for wav in (EXAMPLE / "voices").glob("*.wav"):
        rate, seconds, _ = wav_stats(wav)
        assert (rate, wav.stat().st_size <= 100_000) == (16_000, True)
        assert 2.0 <= seconds <= 3.0


def test_defaults_reach_only_the_voices_whose_mode_takes_them(example: Manifest) -> None:
    """`defaults.speed` sets the speed of the voices that leave it unset, but is left out of
    the TTS.ai clone, whose endpoint has no speed (set there, it is an error: corpus 80, 81)."""
    voices = example.voices
    assert voices["cloned"].kind == "ttsai"
    assert "speed" not in voices["cloned"].params
    assert voices["ann"].params["speed"] == voices["joyful"].params["speed"] == 0.95
    assert voices["bella"].params["speed"] == 1.05  # its own


def test_the_example_validates(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(EXAMPLE / "book.yaml")]) == 0
    capsys.readouterr()


def test_every_provider_rehearses_with_zero_deviations(
    tmp_path: Path, home: dict[str, str], example: Manifest
) -> None:
    book = tmp_path / "book"
    shutil.copytree(EXAMPLE, book)
    done = rehearse(book, home)

    assert done.code == 0, done.stderr
    assert done.events("sandbox_deviation") == []
    assert done.events("warning") == [], done.events("warning")
    assert "0 failed" in done.stdout.splitlines()[0], done.stdout
    (summary,) = done.events("summary")
    assert summary["failed"] == 0
    assert summary["warnings"] == []

    # every chapter, with real audio
    ids = [text.id for text in example.texts]
    assert len(ids) == len(set(ids)) >= 12
    for text in example.texts:
        _, seconds, rms = wav_stats(book / "out" / f"{text.id}.wav")
        chars = len(text.body)
        assert 0.02 * chars < seconds < 0.5 * chars + 3, (text.id, seconds, chars)
        assert rms > -35, f"{text.id} is near-silent ({rms:.1f} dBFS)"
    index = json.loads((book / "out" / "index.json").read_text(encoding="utf-8"))
    assert len(index["chapters"]) == len(ids)

    # every provider kind was sent work: by the JSON log, and by the journal in the state
    kind_of = {name: account.kind for name, account in example.accounts.items()}
    requested = {kind_of[str(e["account"])] for e in done.events("request")}
    assert requested == KINDS
    with sqlite3.connect(book / STATE / "state.db") as db:
        starts = dict(
            db.execute("SELECT account, count(*) FROM events WHERE kind = 'start' GROUP BY account")
        )
    assert set(starts) == set(example.accounts), starts
    # IndexTTS: a voice model, an emotion reference, then per segment a create, polls, a download
    assert starts["index"] >= 2 + 3 * sum(
        1 for t in example.texts if kind_of[example.voices[t.voice].account] == "indextts"
    )
    assert [e["name"] for e in done.events("voice_model_created")] == ["Ann"]
    assert len(done.events("reference_uploaded")) == 1

    # nothing of the run landed in the repository's example
    assert not (EXAMPLE / "out").exists()
    assert not (EXAMPLE / STATE).exists()


DIALOGUE_FOR_ONE = """version: 1
name: one-voice-dialogue
output: {dir: out, format: wav}
providers:
  fish: {kind: fish_yuntts}
voices:
  solo: {provider: fish, model: s2-pro, reference_id: 7f92f8afb8ec43bf81429cc1c9199cb1}
texts:
  - id: talk
    text: "<|speaker:0|>Is the lamp lit? <|speaker:1|>It is, and the boat is in."
"""


def test_a_deviation_is_reported(tmp_path: Path, home: dict[str, str]) -> None:
    """The control: a manifest the loader accepts, which the Fish API documents no meaning
    for — `<|speaker:N|>` tags in a text spoken by a single `reference_id`, not `speakers` —
    is answered (as a lenient server would), and reported as a deviation and a warning.

    If the manifest check ever refuses speaker tags outside a `speakers` voice, this test
    needs another deviation a valid manifest can cause."""
    (tmp_path / "book.yaml").write_text(DIALOGUE_FOR_ONE, encoding="utf-8")
    done = rehearse(tmp_path, home)

    assert done.code == 0, done.stderr
    (deviation,) = done.events("sandbox_deviation")
    assert deviation["provider"] == "fish_yuntts"
    assert deviation["endpoint"] == "POST /api/v1/fish-audio/tts"
    assert deviation["field"] == "text"
    assert deviation["problem"] == "speaker tags with a single reference_id"
    assert deviation["expected"] == "a reference list"
    (warning,) = done.events("warning")
    assert "the sandbox found 1 deviation(s) from the documented APIs" in str(warning["message"])
    (summary,) = done.events("summary")
    assert summary["warnings"] == [warning["message"]]
    assert (tmp_path / "out" / "talk.wav").is_file()
