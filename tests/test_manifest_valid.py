"""Valid manifests load into the records the rest of the runner uses."""

from __future__ import annotations

import wave
from pathlib import Path

from runner.manifest import load_manifest
from runner.manifest.accounts import IMPLICIT_LOCAL
from runner.manifest.params import FileRef
from runner.plans import PRESETS

REPO = Path(__file__).resolve().parent.parent


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_smallest_manifest_uses_the_implicit_local_account_and_voice(tmp_path: Path) -> None:
    manifest = load_manifest(write(tmp_path / "tiny.yaml", "texts: [{text: Hello}]\n"))
    assert manifest.path == (tmp_path / "tiny.yaml").resolve()
    assert manifest.name == "tiny"
    assert dict(manifest.accounts) == {"local": IMPLICIT_LOCAL}
    assert list(manifest.voices) == ["default"]
    voice = manifest.voices["default"]
    assert (voice.account, voice.kind) == ("local", "local")
    assert dict(voice.params) == {"language": "auto"}
    [text] = manifest.texts
    assert (text.id, text.title, text.body, text.voice) == ("text-1", "text-1", "Hello", "default")
    assert dict(text.params) == {"language": "auto"}
    assert text.source is None
    assert manifest.output.dir == tmp_path.resolve() / "out"
    assert (manifest.output.format, manifest.output.pause_ms) == ("wav", 300)
    assert manifest.output.paragraph_pause_ms == 800
    assert manifest.account_of(text) is IMPLICIT_LOCAL


def test_shorthand_strings_are_texts(tmp_path: Path) -> None:
    manifest = load_manifest(write(tmp_path / "m.yaml", 'texts: ["Hello", "Good night."]\n'))
    assert [(t.id, t.body, t.voice) for t in manifest.texts] == [
        ("text-1", "Hello", "default"),
        ("text-2", "Good night.", "default"),
    ]


def test_glob_expands_sorted_with_ids_from_file_names(tmp_path: Path) -> None:
    for name in ("b.txt", "a.txt", "10 intro.txt", "notes.md"):
        write(tmp_path / "chapters" / name, f"Words of {name}.\n")
    source = "texts:\n  - {id: preface, text: Hi}\n  - glob: chapters/*.txt\n"
    manifest = load_manifest(write(tmp_path / "m.yaml", source))
    assert [(t.id, t.title) for t in manifest.texts] == [
        ("preface", "preface"),
        ("10-intro", "10 intro"),
        ("a", "a"),
        ("b", "b"),
    ]
    chapters = manifest.texts[1:]
    assert [t.source for t in chapters] == [
        (tmp_path / "chapters" / n).resolve() for n in ("10 intro.txt", "a.txt", "b.txt")
    ]
    assert chapters[1].body == "Words of a.txt.\n"


def test_defaults_fill_the_parameters_a_voice_leaves_unset(tmp_path: Path) -> None:
    manifest = load_manifest(
        write(
            tmp_path / "m.yaml",
            """\
providers:
  tts_ai: {kind: ttsai, plan: enterprise}
voices:
  narrator: {provider: local, language: en}
  fast: {provider: local, language: en, rate: 300}
  bella: {provider: tts_ai, model: kokoro, voice: af_bella}
defaults: {voice: narrator, rate: 170, speed: 1.25}
texts:
  - Hello
  - {text: Quick, voice: fast}
  - {text: Hi, voice: bella}
""",
        )
    )
    voices = manifest.voices
    assert dict(voices["narrator"].params) == {"language": "en", "rate": 170}
    assert dict(voices["fast"].params) == {"language": "en", "rate": 300}  # its own value wins
    # each kind takes only its own parameters from the defaults
    assert dict(voices["bella"].params) == {"model": "kokoro", "voice": "af_bella", "speed": 1.25}
    assert [t.voice for t in manifest.texts] == ["narrator", "fast", "bella"]
    account = manifest.accounts["tts_ai"]
    assert (account.kind, account.plan) == ("ttsai", "enterprise")
    assert account.limits == PRESETS[("ttsai", "enterprise")].limits
    assert dict(account.credentials) == {"api_key_env": "TTSAI_API_KEY"}


def test_a_text_overrides_a_parameter_of_its_voice(tmp_path: Path) -> None:
    manifest = load_manifest(
        write(
            tmp_path / "m.yaml",
            """\
voices:
  narrator: {language: en, rate: 160}
texts:
  - {id: calm, text: Slowly.}
  - {id: hurried, text: Quickly!, rate: 260, pitch: 70}
""",
        )
    )
    calm, hurried = manifest.texts
    assert dict(calm.params) == {"language": "en", "rate": 160}
    assert dict(hurried.params) == {"language": "en", "rate": 260, "pitch": 70}
    assert dict(manifest.voices["narrator"].params) == {"language": "en", "rate": 160}


def test_files_named_by_voices_are_resolved_and_hashed(tmp_path: Path) -> None:
    ref = tmp_path / "refs" / "me.wav"
    ref.parent.mkdir()
    with wave.open(str(ref), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(b"\x00\x00" * 1600)
    manifest = load_manifest(
        write(
            tmp_path / "m.yaml",
            """\
providers:
  gpu: {kind: voxcpm, base_urls: ["http://10.0.0.5:5022/", "http://10.0.0.6:5022"]}
voices:
  me: {reference_audio: refs/me.wav, reference_text: Hello there.}
texts: [Hello]
""",
        )
    )
    audio = manifest.voices["me"].params["reference_audio"]
    assert isinstance(audio, FileRef)
    assert audio.path == ref.resolve()
    assert audio.size == ref.stat().st_size
    assert manifest.accounts["gpu"].base_urls == ("http://10.0.0.5:5022", "http://10.0.0.6:5022")
    assert manifest.voices["me"].account == "gpu"  # the only account, so no `provider:` needed


def test_demo_manifest_loads() -> None:
    manifest = load_manifest(REPO / "examples" / "demo" / "book.yaml")
    assert manifest.name == "demo-book"
    assert [t.id for t in manifest.texts] == ["ch01", "ch02", "ch03"]
    assert [t.voice for t in manifest.texts] == ["narrator", "xiaoming", "bilingual"]
    assert all(t.source is not None and t.body.strip() for t in manifest.texts)
    assert manifest.output.pause_ms == 350
    assert list(manifest.accounts) == ["local"]
