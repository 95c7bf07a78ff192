"""`voices`, `refs` and `quota` through the real CLI, against the sandbox over loopback.

The sandbox runs on its own thread (`SandboxThread`); the CLI runs in-process (`main([...])`)
with credentials in the environment, or as a subprocess for `--sandbox`.
"""

from __future__ import annotations

import json
import math
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from support import tts_runner

from runner.cli import main
from runner.sandbox import AccountConfig, SandboxConfig, SandboxThread
from runner.sandbox.config import FishYunTTSConfig, IndexTTSConfig, TTSAIConfig
from runner.store import AssetRow, Store

SIGN = "index-sign-5d1e0c77aa"
TOKEN = "yuntts-token-93be11f0c4"
KEY = "sk-tts-4b9e2a61d0c7"
ENV = {"INDEX_API_SIGN": SIGN, "YUNTTS_TOKEN": TOKEN, "TTSAI_API_KEY": KEY}
SECRETS = (SIGN, TOKEN, KEY)
ENV_KINDS = ("indextts", "fish_yuntts", "ttsai")
FAST = "limits: {requests: 100, per_seconds: 1}"


def _config(*, quota_available: bool = True) -> SandboxConfig:
    def account(secret: str) -> AccountConfig:
        return AccountConfig(
            label="acct",
            credentials=(secret,),
            voices=("VoiceAbc123",),
            quota_available=quota_available,
        )

    return SandboxConfig(
        indextts=IndexTTSConfig(accounts=(account(SIGN),)),
        fish_yuntts=FishYunTTSConfig(accounts=(account(TOKEN),)),
        ttsai=TTSAIConfig(accounts=(account(KEY),)),
    )


@pytest.fixture
def box() -> Iterator[SandboxThread]:
    with SandboxThread(_config()) as thread:
        yield thread


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


def _manifest(tmp_path: Path, urls: dict[str, str]) -> Path:
    path = tmp_path / "book.yaml"
    path.write_text(
        "providers:\n"
        f"  index: {{kind: indextts, base_url: '{urls['indextts']}', {FAST}}}\n"
        f"  fish: {{kind: fish_yuntts, base_url: '{urls['fish_yuntts']}', {FAST}}}\n"
        f"  tts: {{kind: ttsai, base_url: '{urls['ttsai']}'}}\n"
        "voices:\n"
        "  n: {provider: index, audio_id: VoiceAbc123, style: 2}\n"
        "  f: {provider: fish, reference_id: 7f92f8afb8ec43bf81429cc1c9199cb1}\n"
        "  b: {provider: tts, model: kokoro, voice: af_bella}\n"
        "  l: {provider: local, language: en}\n"
        "texts:\n"
        "  - {id: a, voice: n, text: Hello there.}\n"
        "  - {id: b, voice: f, text: Hello again.}\n"
        "  - {id: c, voice: b, text: And once more.}\n"
        "  - {id: d, voice: l, text: Offline too.}\n",
        encoding="utf-8",
    )
    return path


def _wav(path: Path, seconds: float = 3.0) -> Path:
    rate = 16000
    t = np.arange(int(seconds * rate)) / rate
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.sin(2 * math.pi * 220 * t) * 8000).astype("<i2").tobytes())
    return path


def _cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    for secret in SECRETS:
        assert secret not in out + err
    return code, out, err


def _sent(box: SandboxThread, provider: str) -> int:
    return len(box.ledger(provider))


@pytest.mark.usefixtures("env")
def test_voices_create_list_delete_an_indextts_model(
    box: SandboxThread, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _manifest(tmp_path, box.urls)
    voice = _wav(tmp_path / "ann.wav")
    models = box.sandbox.indextts.models

    code, out, _ = _cli(
        capsys, "voices", "create", "--provider", "index", manifest, "--name", "Ann", voice,
        "--json",
    )  # fmt: skip
    assert code == 0
    created = json.loads(out)
    model_id = created["created"]["id"]
    assert created["account"] == "index"
    assert box.call(lambda: models[model_id].name) == "Ann"

    code, out, _ = _cli(capsys, "voices", "list", "--provider", "index", manifest)
    assert code == 0
    assert out.splitlines()[0] == "index (indextts): 2 voice models"
    assert any(line.split()[:2] == [model_id, "Ann"] for line in out.splitlines())

    code, out, _ = _cli(capsys, "voices", "delete", "--provider", "index", manifest, model_id)
    assert (code, out) == (0, f"index (indextts): deleted voice model {model_id}\n")
    assert box.call(lambda: model_id in models) is False
    assert box.deviations("indextts") == ()


@pytest.mark.usefixtures("env")
def test_deleting_a_model_the_runner_made_forgets_it_in_the_state(
    box: SandboxThread, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _manifest(tmp_path, box.urls)
    code, out, _ = _cli(
        capsys, "voices", "create", "--provider", "index", manifest, "--name", "Bo",
        _wav(tmp_path / "bo.wav"), "--json",
    )  # fmt: skip
    model_id = json.loads(out)["created"]["id"]
    state = tmp_path / ".tts-runner"
    with Store.open(state) as store:
        now = time.time()
        store.save_asset(AssetRow("index", "model", "ab" * 32, model_id, now, None, now))

    code, _, _ = _cli(capsys, "voices", "delete", "--provider", "index", manifest, model_id)
    assert code == 0
    with Store.open(state) as store:
        assert store.assets("index", "model") == []
    assert box.deviations("indextts") == ()


@pytest.mark.usefixtures("env")
def test_fish_models_are_created_listed_and_deleted(
    box: SandboxThread, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _manifest(tmp_path, box.urls)
    voice = _wav(tmp_path / "cy.wav")
    code, out, _ = _cli(
        capsys, "voices", "create", "--provider", "fish", manifest, "--name", "Cy", voice,
        "--text", "A sine wave, read aloud.",
    )  # fmt: skip
    assert code == 0
    model_id = out.split("created voice model ")[1].split()[0]
    assert "reference_id: " + model_id in out
    assert box.call(lambda: box.sandbox.fish_yuntts.models[model_id].title) == "Cy"

    code, out, _ = _cli(capsys, "voices", "list", "--provider", "fish", manifest, "--json")
    assert code == 0
    assert model_id in {v["id"] for v in json.loads(out)["voices"]}

    code, _, _ = _cli(capsys, "voices", "delete", "--provider", "fish", manifest, model_id)
    assert code == 0
    assert box.call(lambda: model_id in box.sandbox.fish_yuntts.models) is False
    assert box.deviations("fish_yuntts") == ()


@pytest.mark.usefixtures("env")
def test_the_ttsai_catalogue_lists_but_cannot_create_and_nothing_is_sent_for_that(
    box: SandboxThread, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _manifest(tmp_path, box.urls)
    code, out, _ = _cli(capsys, "voices", "list", "--provider", "tts", manifest)
    assert code == 0
    assert "af_bella  Bella  (model kokoro" in out

    sent = _sent(box, "ttsai")
    voice = _wav(tmp_path / "x.wav")
    code, out, err = _cli(
        capsys, "voices", "create", "--provider", "tts", manifest, "--name", "X", voice
    )
    assert (code, out) == (2, "")
    assert "account `tts` is a ttsai account, and the ttsai API cannot create voice models" in err
    assert "accounts of this manifest that can: fish, index" in err
    assert _sent(box, "ttsai") == sent
    assert box.deviations("ttsai") == ()


@pytest.mark.usefixtures("env")
def test_the_embedded_engine_has_no_voice_models_and_no_references(
    box: SandboxThread, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _manifest(tmp_path, box.urls)
    code, _, err = _cli(capsys, "voices", "list", "--provider", "local", manifest)
    assert code == 2
    assert "the local API cannot list voice models; nothing was sent" in err
    code, _, err = _cli(capsys, "refs", "list", "--provider", "fish", manifest)
    assert code == 2
    assert "cannot keep emotion references (only IndexTTS has them)" in err
    code, _, err = _cli(capsys, "voices", "list", manifest)
    assert code == 2
    assert "several accounts" in err
    assert "name one with --provider" in err
    code, _, err = _cli(capsys, "voices", "list", "--provider", "nope", manifest)
    assert code == 2
    assert "has no account `nope`" in err


def test_a_missing_credential_is_named_and_nothing_is_sent(
    box: SandboxThread,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("INDEX_API_SIGN", raising=False)
    manifest = _manifest(tmp_path, box.urls)
    code, out, err = _cli(capsys, "voices", "list", "--provider", "index", manifest)
    assert (code, out) == (2, "")
    assert "needs the environment variable INDEX_API_SIGN" in err
    assert _sent(box, "indextts") == 0


def test_a_refused_credential_fails_without_showing_it(
    box: SandboxThread,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wrong = "index-sign-not-this-one-42"
    monkeypatch.setenv("INDEX_API_SIGN", wrong)
    manifest = _manifest(tmp_path, box.urls)
    code, out, err = _cli(capsys, "refs", "list", manifest)
    assert code == 1
    assert err.startswith("tts-runner: ")
    assert wrong not in out + err


@pytest.mark.usefixtures("env")
def test_emotion_references_are_uploaded_listed_and_deleted(
    box: SandboxThread, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _manifest(tmp_path, box.urls)
    joy = _wav(tmp_path / "joy.wav", 2.0)
    code, out, _ = _cli(capsys, "refs", "upload", manifest, joy, "--json")
    assert code == 0
    (uploaded,) = json.loads(out)["uploaded"]
    path = uploaded["emotion_path"]
    assert box.call(lambda: path in box.sandbox.indextts.references)

    code, out, _ = _cli(capsys, "refs", "list", "--provider", "index", manifest)
    assert code == 0
    assert out.splitlines()[0] == "index (indextts): 1 emotion reference"
    assert path in out

    code, _, _ = _cli(capsys, "refs", "delete", manifest, path)
    assert code == 0
    assert box.call(lambda: path in box.sandbox.indextts.references) is False
    code, _, err = _cli(capsys, "refs", "upload", manifest, tmp_path / "missing.wav")
    assert code == 2
    assert "missing.wav: no such file; nothing was sent" in err
    assert box.deviations("indextts") == ()


@pytest.mark.usefixtures("env")
def test_a_reference_uploaded_by_hand_is_reused_by_the_next_run(
    box: SandboxThread, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`refs upload` records the reference in the manifest's state (making the state if no
    run has yet): a run naming the same audio as `emotion_ref:` speaks with it instead of
    uploading it again and spending another of the account's 30."""
    _wav(tmp_path / "joy.wav", 2.0)
    manifest = tmp_path / "emotional.yaml"
    manifest.write_text(
        "providers:\n"
        f"  index: {{kind: indextts, base_url: '{box.urls['indextts']}', {FAST}}}\n"
        "voices:\n"
        "  n: {provider: index, audio_id: VoiceAbc123, genre: 2, emotion_ref: joy.wav}\n"
        "texts:\n"
        "  - {id: a, voice: n, text: What a lovely morning it is.}\n",
        encoding="utf-8",
    )
    code, out, _ = _cli(capsys, "refs", "upload", manifest, tmp_path / "joy.wav", "--json")
    assert code == 0
    (uploaded,) = json.loads(out)["uploaded"]
    with Store.open(tmp_path / ".tts-runner") as store:
        (recorded,) = store.assets("index", "emotion_ref")
    assert recorded.remote_id == uploaded["emotion_path"]

    code, _, _ = _cli(capsys, "run", manifest)
    assert code == 0
    references = box.call(lambda: list(box.sandbox.indextts.references))
    assert references == [uploaded["emotion_path"]]  # none uploaded by the run
    creates = [e for e in box.ledger("indextts") if e.endpoint.endswith("/tts/create")]
    assert len(creates) == 1


@pytest.mark.usefixtures("env")
def test_a_voice_model_created_by_hand_is_reused_by_a_run_cloning_the_same_recording(
    box: SandboxThread, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`voices create` on IndexTTS records the model in the manifest's state (making the state
    if no run has yet): a run whose `clone:` names the same recording speaks with it instead
    of making another model."""
    _wav(tmp_path / "ann.wav", 2.0)
    manifest = tmp_path / "cloned.yaml"
    manifest.write_text(
        "providers:\n"
        f"  index: {{kind: indextts, base_url: '{box.urls['indextts']}', {FAST}}}\n"
        "voices:\n"
        "  n: {provider: index, clone: {audio: ann.wav, name: Narrator}, style: 2}\n"
        "texts:\n"
        "  - {id: a, voice: n, text: What a lovely morning it is.}\n",
        encoding="utf-8",
    )
    code, out, _ = _cli(
        capsys, "voices", "create", manifest, "--name", "Ann", tmp_path / "ann.wav", "--json"
    )
    assert code == 0
    created = json.loads(out)["created"]["id"]
    with Store.open(tmp_path / ".tts-runner") as store:
        (recorded,) = store.assets("index", "model")
    assert recorded.remote_id == created

    code, _, _ = _cli(capsys, "run", manifest)
    assert code == 0
    models = box.call(lambda: list(box.sandbox.indextts.models))
    assert created in models
    uploads = [e for e in box.ledger("indextts") if e.endpoint.endswith("/reference/upload")]
    assert len(uploads) == 1  # the one by hand: the run made no other model
    (create,) = [e for e in box.ledger("indextts") if e.endpoint.endswith("/tts/create")]
    assert create.voice.startswith(f"indextts:{created}:")  # it spoke with that model


@pytest.mark.usefixtures("env")
def test_quota_of_every_account_says_which_apis_do_not_tell(
    box: SandboxThread, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _manifest(tmp_path, box.urls)
    code, out, _ = _cli(capsys, "quota", manifest)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "fish (fish_yuntts): not reported — the fish_yuntts API does not report it"
    assert lines[1] == "index (indextts): 10,000,000 characters left, 0 used"
    assert lines[2].startswith("tts (ttsai): not reported — TTS.ai has no balance endpoint")

    code, out, _ = _cli(capsys, "quota", "index", manifest, "--json")
    assert code == 0
    (index,) = json.loads(out)["accounts"]
    assert (index["remaining"], index["used"], index["unit"]) == (10_000_000, 0, "characters")

    code, _, err = _cli(capsys, "quota", "fish", manifest)
    assert code == 2
    assert "the fish_yuntts API cannot report the credit left" in err
    code, out, _ = _cli(capsys, "quota", "tts", manifest)
    assert code == 2
    assert "not reported" in out
    assert box.deviations() == ()


@pytest.mark.usefixtures("env")
def test_quota_where_the_account_lacks_the_endpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with SandboxThread(_config(quota_available=False)) as box:
        manifest = _manifest(tmp_path, box.urls)
        code, out, _ = _cli(capsys, "quota", "index", manifest)
        assert code == 2
        assert "has no quota endpoint (it answers 404)" in out
        assert box.deviations("indextts") == ()


def test_sandbox_flag_needs_no_keys_and_keeps_nothing(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, dict.fromkeys(ENV_KINDS, "http://127.0.0.1:9"))
    voice = _wav(tmp_path / "dee.wav")
    unset = dict.fromkeys(ENV, "")
    created = tts_runner(
        "voices", "create", "--provider", "index", manifest, "--sandbox", "--name", "Dee",
        voice, cwd=tmp_path, env=unset,
    )  # fmt: skip
    assert created.code == 0, created.stderr
    assert created.stdout.startswith("index (indextts, sandbox): created voice model ")
    listed = tts_runner("voices", "list", "--provider", "index", manifest, "--sandbox",
                        cwd=tmp_path, env=unset)  # fmt: skip
    assert listed.stdout == "index (indextts, sandbox): 0 voice models\n"
    quota = tts_runner("quota", "index", manifest, "--sandbox", cwd=tmp_path, env=unset)
    assert quota.code == 0, quota.stderr
    assert "characters left" in quota.stdout
    assert not (tmp_path / ".tts-runner").exists()
