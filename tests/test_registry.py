"""The account registry: a providers file outside the manifests, named by `--providers FILE`,
`$TTS_RUNNER_PROVIDERS` or found at `$XDG_CONFIG_HOME/tts-runner/providers.yaml`; manifests
speak with its accounts by name, and `tts-runner providers` shows them without their secrets."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import pytest
from support import tts_runner

from runner.cli import main
from runner.errors import ManifestError
from runner.manifest import load_manifest, load_manifests
from runner.manifest.registry import (
    ENV_VAR,
    default_registry_path,
    load_registry,
    open_registry,
    registry_location,
)
from runner.sandbox import AccountConfig, Plan, SandboxConfig, SandboxThread, TTSAIConfig

KEY = "sk-tts-registry-0123456789abcdef"
CANARY = "sk-tts-CANARY-8d2e6f01b4c79a35"

REGISTRY = """\
version: 1
providers:
  tts: {kind: ttsai, plan: pro, api_key_env: MY_TTSAI_KEY}
  index:
    kind: indextts
    sign_env: MY_INDEX_SIGN
    limits: {requests: 30, per_seconds: 60}
  studio: {kind: voxcpm, base_urls: ["http://gpu1:5022", "http://gpu2:5022"]}
"""

BOOK = """\
voices:
  bella: {provider: tts, model: kokoro, voice: af_bella}
texts: [{id: one, text: "Hello from the registry."}]
"""


@pytest.fixture(autouse=True)
def default_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No providers file of the machine running the tests leaks in: HOME and XDG point into
    tmp_path, and the variable is unset. Returns the default location (absent)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv(ENV_VAR, raising=False)
    return home / ".config" / "tts-runner" / "providers.yaml"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- loading --------------------------------------------------------------------------------------


def test_manifests_speak_with_registry_accounts_by_name(tmp_path: Path) -> None:
    registry = load_registry(write(tmp_path / "providers.yaml", REGISTRY))
    assert sorted(registry) == ["index", "studio", "tts"]
    tts = registry["tts"]
    assert (tts.kind, tts.plan, dict(tts.credentials)) == (
        "ttsai",
        "pro",
        {"api_key_env": "MY_TTSAI_KEY"},
    )
    assert tts.defined_in == f"{tmp_path / 'providers.yaml'}:3"
    assert registry["index"].limits.requests == 30
    assert registry["studio"].limits.concurrent == 2  # one per server

    first = write(tmp_path / "a.yaml", BOOK)
    second = write(
        tmp_path / "b.yaml",
        "providers:\n  own: {kind: indextts}\n"
        "voices:\n"
        "  v: {provider: index, audio_id: VoiceAbc123}\n"
        "  w: {provider: own, audio_id: X1}\n"
        "texts: [{text: One, voice: v}, {text: Two, voice: w}]\n",
    )
    a, b = load_manifests([first, second], registry)
    assert list(a.accounts) == ["tts"]  # only the accounts its texts use, not the whole registry
    assert a.accounts["tts"] is tts
    assert sorted(b.accounts) == ["index", "own"]  # a registry account beside one of its own


def test_without_the_registry_the_account_is_unknown(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path / "a.yaml", BOOK))
    (problem,) = caught.value.problems
    assert (problem.line, problem.column) == (2, 21)
    assert "no account named `tts`" in problem.message


def test_a_voice_without_provider_never_implies_a_registry_account(tmp_path: Path) -> None:
    """One paid account in the registry must not turn `voices: {n: {language: en}}` into paid
    speech: a voice that names no provider uses the manifest's own account or the engine."""
    registry = load_registry(write(tmp_path / "p.yaml", "providers: {tts: {kind: ttsai}}\n"))
    manifest = load_manifest(
        write(tmp_path / "m.yaml", "voices: {n: {language: en}}\ntexts: [{text: Hi}]\n"), registry
    )
    assert manifest.voices["n"].account == "local"
    assert list(manifest.accounts) == ["local"]


def test_registry_problems_point_into_the_registry(tmp_path: Path) -> None:
    path = write(
        tmp_path / "providers.yaml",
        "version: 2\n"
        "providers:\n"
        "  tts: {kind: ttsai, plan: gold}\n"
        "  index: {kind: indextts, sign: abc-123-secret}\n"
        "  local: {kind: local}\n"
        "acounts: {}\n",
    )
    with pytest.raises(ManifestError) as caught:
        load_registry(path)
    found = {(p.line, p.column): p.message for p in caught.value.problems}
    assert all(p.file == str(path) for p in caught.value.problems)
    assert sorted(found) == [(1, 10), (3, 28), (4, 27), (5, 3), (6, 1)]
    assert "it must be 1" in found[(1, 10)]
    assert "unknown plan `gold` for kind ttsai" in found[(3, 28)]
    assert "`sign_env`" in found[(4, 27)]
    assert "abc-123-secret" not in found[(4, 27)]
    assert "embedded engine" in found[(5, 3)]
    assert "accounts go under `providers:`" in found[(6, 1)]


def test_registry_problems_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = write(tmp_path / "providers.yaml", "providers:\n  tts: {kind: ttsai, plann: pro}\n")
    book = write(tmp_path / "a.yaml", BOOK)
    for command in (["validate"], ["plan"], ["run"], ["quota"], ["voices", "list"]):
        assert main([*command, str(book), "--providers", str(registry)]) == 2, command
        err = capsys.readouterr().err
        assert f"{registry}:2:22: unknown key `plann` in `providers.tts`" in err, command
        assert "1 problem found" in err
    assert not (tmp_path / ".tts-runner").exists()


def test_empty_registries_have_no_accounts(tmp_path: Path) -> None:
    assert load_registry(write(tmp_path / "a.yaml", "")) == {}
    assert load_registry(write(tmp_path / "b.yaml", "# nothing yet\n")) == {}
    assert load_registry(write(tmp_path / "c.yaml", "version: 1\nproviders:\n")) == {}
    with pytest.raises(ManifestError, match="must be a mapping"):
        load_registry(write(tmp_path / "d.yaml", "- tts\n"))


def test_a_manifest_may_not_redefine_a_registry_account(tmp_path: Path) -> None:
    registry_file = write(tmp_path / "providers.yaml", REGISTRY)
    manifest = write(
        tmp_path / "a.yaml",
        "providers:\n"
        "  mine: {kind: indextts}\n"
        "  tts: {kind: ttsai, plan: enterprise, api_key_env: OTHER_KEY}\n" + BOOK,
    )
    with pytest.raises(ManifestError) as caught:
        load_manifest(manifest, load_registry(registry_file))
    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.column) == (str(manifest), 3, 3)
    assert f"already defined in the providers file at {registry_file}:3" in problem.message


# -- which file ---------------------------------------------------------------------------------


def test_precedence_flag_then_variable_then_xdg_then_home(
    tmp_path: Path, default_registry: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home_default = default_registry
    assert default_registry_path() == home_default.resolve()
    assert registry_location().origin == "default"
    assert open_registry() == {}  # an absent default file is no registry, not an error

    write(home_default, "providers: {home: {kind: ttsai}}\n")
    assert list(open_registry()) == ["home"]

    xdg = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    assert open_registry() == {}  # XDG_CONFIG_HOME replaces ~/.config
    write(xdg / "tts-runner" / "providers.yaml", "providers: {xdg: {kind: ttsai}}\n")
    assert list(open_registry()) == ["xdg"]
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/ignored")  # XDG: relative paths are invalid
    assert list(open_registry()) == ["home"]

    named = write(tmp_path / "env.yaml", "providers: {env: {kind: ttsai}}\n")
    monkeypatch.setenv(ENV_VAR, str(named))
    assert list(open_registry()) == ["env"]
    assert registry_location().origin == ENV_VAR
    flag = write(tmp_path / "flag.yaml", "providers: {flag: {kind: ttsai}}\n")
    assert list(open_registry(flag)) == ["flag"]
    assert registry_location(flag).origin == "--providers"

    monkeypatch.setenv(ENV_VAR, "")  # empty: unset
    assert list(open_registry()) == ["home"]


def test_a_file_named_explicitly_must_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    book = write(tmp_path / "a.yaml", "texts: [{text: Hi}]\n")
    missing = tmp_path / "nowhere.yaml"
    assert main(["validate", str(book), "--providers", str(missing)]) == 2
    assert f"{missing}: providers file not found (named by --providers)" in capsys.readouterr().err
    monkeypatch.setenv(ENV_VAR, str(missing))
    assert main(["validate", str(book)]) == 2
    assert f"{missing}: providers file not found (named by ${ENV_VAR})" in capsys.readouterr().err
    # the flag wins over the variable
    good = write(tmp_path / "p.yaml", REGISTRY)
    assert main(["validate", str(book), "--providers", str(good)]) == 0


def test_the_flag_and_the_variable_reach_every_manifest_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = write(tmp_path / "providers.yaml", REGISTRY)
    book = write(tmp_path / "a.yaml", BOOK)
    assert main(["validate", str(book)]) == 2  # `tts` is nowhere without the registry
    capsys.readouterr()
    assert main(["validate", str(book), "--providers", str(registry)]) == 0
    assert main(["plan", str(book), "--providers", str(registry), "--json"]) == 0
    out = capsys.readouterr().out
    plan = json.loads(out[out.index("{") :])
    assert plan["accounts"]["tts"]["plan"] == "pro"
    monkeypatch.setenv(ENV_VAR, str(registry))
    assert main(["status", str(book), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["pending"] == 1
    assert main(["quota", str(book), "--sandbox", "--json"]) == 0
    answers = json.loads(capsys.readouterr().out)["accounts"]
    assert [a["account"] for a in answers] == ["tts"]


# -- `tts-runner providers` ---------------------------------------------------------------------


def test_providers_lists_accounts_and_which_credentials_are_set_never_their_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = write(tmp_path / "providers.yaml", REGISTRY)
    monkeypatch.setenv("MY_TTSAI_KEY", CANARY)
    monkeypatch.delenv("MY_INDEX_SIGN", raising=False)

    assert main(["providers", "--providers", str(registry)]) == 0
    out = capsys.readouterr().out
    assert CANARY not in out
    assert out.startswith(f"{registry} (named by --providers): 3 accounts\n")
    assert "tts  ttsai, plan pro" in out
    assert "60 requests per 60 s, 5 at once, 5,000 characters per request" in out
    assert "MY_TTSAI_KEY (api_key_env, set)" in out
    assert "MY_INDEX_SIGN (sign_env, NOT SET)" in out
    assert "30 requests per 60 s" in out
    assert "http://gpu1:5022, http://gpu2:5022" in out

    assert main(["providers", "--providers", str(registry), "--json"]) == 0
    out = capsys.readouterr().out
    assert CANARY not in out
    document = json.loads(out)
    assert (document["file"], document["origin"], document["exists"]) == (
        str(registry),
        "--providers",
        True,
    )
    by_name = {a["name"]: a for a in document["accounts"]}
    assert by_name["tts"]["credentials"] == [
        {"role": "api_key_env", "env": "MY_TTSAI_KEY", "set": True}
    ]
    assert by_name["tts"]["limits"] == {
        "requests": 60,
        "per_seconds": 60.0,
        "concurrent": 5,
        "max_chars": 5000,
    }
    assert by_name["tts"]["limits_source"] == "published"
    assert by_name["index"]["limits_source"] == "overridden"
    assert by_name["index"]["credentials"][0]["set"] is False
    assert by_name["studio"]["base_urls"] == ["http://gpu1:5022", "http://gpu2:5022"]


def test_providers_without_a_file(
    default_registry: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["providers"]) == 0
    assert "no providers file at" in capsys.readouterr().out
    assert main(["providers", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document == {
        "file": str(default_registry.resolve()),
        "origin": "default",
        "exists": False,
        "accounts": [],
    }


def test_providers_reports_an_invalid_registry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = write(
        tmp_path / "p.yaml", "providers:\n  tts: {kind: ttsai, api_key: " + CANARY + "}\n"
    )
    assert main(["providers", "--providers", str(registry)]) == 2
    captured = capsys.readouterr()
    assert (
        f"{registry}:2:22: `providers.tts.api_key`: credentials are never written" in captured.err
    )
    assert CANARY not in captured.out + captured.err


# -- a whole run --------------------------------------------------------------------------------


def test_two_manifests_run_against_one_registry_account_in_the_sandbox(tmp_path: Path) -> None:
    """Both manifests name the registry's `tts`; its key comes from the variable the registry
    names, reaches the sandbox, and appears in no output."""
    tiny = Plan(requests=10, per_seconds=2.0, concurrent=3, max_chars=5_000)
    account = AccountConfig(label="nightly", credentials=(KEY,), plan="tiny")
    config = SandboxConfig(ttsai=TTSAIConfig(accounts=(account,), plans={"tiny": tiny}))
    with SandboxThread(config) as box:
        registry = write(
            tmp_path / "etc" / "providers.yaml",
            "providers:\n"
            f'  tts: {{kind: ttsai, base_url: "{box.urls["ttsai"]}", api_key_env: MY_TTSAI_KEY,'
            " limits: {requests: 10, per_seconds: 2, concurrent: 3}}\n",
        )
        for name, text in (("a", "The first book is short."), ("b", "The second one, too.")):
            write(  # each in its own folder: its state lives beside it
                tmp_path / "jobs" / name / "book.yaml",
                "output: {dir: out}\n"
                "voices: {bella: {provider: tts, model: kokoro, voice: af_bella}}\n"
                f'texts: [{{id: ch01, text: "{text}"}}]\n',
            )
        done = tts_runner(
            "run",
            "a/book.yaml",
            "b/book.yaml",
            "--json-log",
            cwd=tmp_path / "jobs",
            env={"MY_TTSAI_KEY": KEY, ENV_VAR: str(registry)},
        )
        entries = box.ledger("ttsai", "nightly")
        summary = box.summary(tiny.per_seconds, provider="ttsai", account="nightly")
    assert done.code == 0, done.stderr
    assert len(entries) >= 2
    assert {e.status for e in entries} == {200}
    assert summary.throttled == 0
    assert KEY not in done.stdout + done.stderr
    for name in ("a", "b"):
        with wave.open(str(tmp_path / "jobs" / name / "out" / "ch01.wav")) as chapter:
            assert chapter.getnframes() > 0
    for path in (tmp_path / "jobs").rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
