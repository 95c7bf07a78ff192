"""The shortcuts that keep the runner's cost per segment low must not change what it computes:
segment keys byte for byte, the loudness meter's figures, and the report's audit of levels."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from types import MappingProxyType

import anyio
import numpy as np
import pytest

from runner.cache import level_key
from runner.loudness import LoudnessMeter, integrated_loudness
from runner.manifest import load_manifest
from runner.manifest.params import FileRef, ParamValue
from runner.plan import KEY_VERSION, Segment, canonical_json, expand, segment_key
from runner.report.audit import Take, suspicious
from runner.report.write import _known_levels, _save_levels
from runner.store import SegmentAudio
from runner.text import CHUNKER_VERSION


def _reference_key(kind: str, params: dict[str, ParamValue], text: str, fmt: str) -> str:
    document = {
        "v": KEY_VERSION,
        "kind": kind,
        "params": params,
        "text": text,
        "format": fmt,
        "chunker": CHUNKER_VERSION,
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@pytest.mark.parametrize(
    "text", ["Hello.", 'Quotes " and \\ backslash', "灯塔守望人。", "tab\tand\nnewline\u2028"]
)
@pytest.mark.parametrize(
    "params", [{}, {"rate": 160, "voice": "en-us"}, {"speed": 1.5, "z": [1, "x"], "a": None}]
)
def test_segment_keys_are_the_canonical_json_digest(
    text: str, params: dict[str, ParamValue]
) -> None:
    assert segment_key("ttsai", params, text, "mp3") == _reference_key("ttsai", params, text, "mp3")


def test_canonical_json_is_sorted_compact_utf8_with_files_by_content() -> None:
    ref = FileRef(Path("/somewhere/voice.wav"), "ab" * 32, 1234)
    document = {
        "z": (1, 2.5, None, True),
        "a": MappingProxyType({"y": ref, "b": ["灯", {"d": 1, "c": "x"}]}),
        "m": {"file": ref},
    }
    assert canonical_json(document) == (
        '{"a":{"b":["灯",{"c":"x","d":1}],"y":{"sha256":"' + "ab" * 32 + '"}},'
        '"m":{"file":{"sha256":"' + "ab" * 32 + '"}},"z":[1,2.5,null,true]}'
    )
    with pytest.raises(TypeError, match="object has no canonical JSON"):
        canonical_json({"x": object()})


def _segments(tmp_path: Path, manifest: str) -> list[Segment]:
    """Every segment of the plan of `manifest` (YAML), in order."""
    (tmp_path / "book.yaml").write_text(manifest)
    plan = expand(load_manifest(tmp_path / "book.yaml"))
    return [s for c in plan.chapters for s in c.segments]


def test_segments_share_one_params_mapping_and_keep_their_keys(tmp_path: Path) -> None:
    sentences = " ".join(f"Sentence number {i} is here." for i in range(50))
    segments = _segments(
        tmp_path,
        "providers:\n  loc: {kind: local, limits: {max_chars: 40}}\n"
        "voices:\n  n: {provider: loc, language: auto, rate: 170}\n"
        f"defaults: {{voice: n}}\ntexts: [{{id: a, text: {sentences!r}}}, "
        "{id: b, text: '第一句话很长很长很长。第二句话也很长很长。'}]\n",
    )
    assert len(segments) > 10
    english = [s for s in segments if s.params["voice"] == "en-us"]
    assert len({id(s.params) for s in english}) == 1  # one dict for all alike
    assert any(s.params["voice"] == "cmn" for s in segments)
    for s in segments:
        assert s.key == _reference_key(s.kind, dict(s.params), s.text, s.format)


def test_a_provider_voice_resolves_once_per_text_with_the_same_keys(tmp_path: Path) -> None:
    sentences = " ".join(f"Sentence number {i} is here." for i in range(30))
    segments = _segments(
        tmp_path,
        "providers:\n  tts: {kind: ttsai, limits: {max_chars: 60}}\n"
        "voices:\n  n: {provider: tts, model: kokoro, voice: af_bella, speed: 1.1}\n"
        f"defaults: {{voice: n}}\ntexts: [{{id: a, text: {sentences!r}}}, "
        f"{{id: b, text: {sentences!r}, voice: n}}]\n",
    )
    assert len(segments) > 10
    assert len({id(s.params) for s in segments}) == 1
    for s in segments:
        assert s.key == _reference_key(s.kind, dict(s.params), s.text, s.format)
    assert dict(segments[0].params) == {"model": "kokoro", "voice": "af_bella", "speed": 1.1}


def test_meter_gathers_small_chunks_without_changing_figures() -> None:
    rate = 24000
    x = (0.2 * np.random.default_rng(11).standard_normal(rate * 5)).astype(np.float32)
    x[rate : rate + 10] = 0.99  # the peak, early on
    meter = LoudnessMeter(rate)
    for start in range(0, len(x), 1000):  # far smaller than a filtered piece
        meter.feed(x[start : start + 1000])
    assert meter.frames == len(x)
    assert meter.peak == pytest.approx(float(np.max(np.abs(x))))
    assert meter.loudness() == pytest.approx(integrated_loudness(x, rate), abs=1e-9)


def _wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    import wave

    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((samples * 32767).astype("<i2").tobytes())
    return path


def test_audit_remembers_levels_but_still_sees_missing_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    loud = _wav(tmp_path / "a.wav", 0.3 * rng.standard_normal(16000))
    quiet = _wav(tmp_path / "b.wav", 0.0001 * rng.standard_normal(16000))
    takes = [
        Take("a", "c1", "v", "m", "text a", 10, SegmentAudio("a", str(loud), "sha-a", None, 1.0)),
        Take("b", "c1", "v", "m", "text b", 10, SegmentAudio("b", str(quiet), "sha-b", None, 1.0)),
    ]
    known: dict[int, float | None] = {}
    first = suspicious(takes, known)
    keys = {
        name: level_key(sha, path.stat().st_size, path.stat().st_mtime_ns)
        for name, sha, path in (("a", "sha-a", loud), ("b", "sha-b", quiet))
    }
    assert sorted(known) == sorted(keys.values())
    assert [f["key"] for f in first] == ["b"]  # near-silent
    key_a = keys["a"]
    known[key_a] = -80.0  # remembered levels are used without decoding the file again
    assert {f["key"] for f in suspicious(takes, known)} == {"a", "b"}
    _wav(loud, 0.3 * rng.standard_normal(16000))  # rewritten: measured again
    assert [f["key"] for f in suspicious(takes, known)] == ["b"]
    loud.unlink()
    gone = [f for f in suspicious(takes, known) if f["key"] == "a"]
    problems = gone[0]["problems"]
    assert isinstance(problems, list)
    assert "its cached audio is missing or unreadable" in problems


def test_levels_remembered_in_the_previous_format_are_kept(tmp_path: Path) -> None:
    loud = _wav(tmp_path / "a.wav", 0.3 * np.random.default_rng(3).standard_normal(16000))
    found = loud.stat()
    old = {"version": 1, "levels": {f"sha-a:{found.st_size}:{found.st_mtime_ns}": -80.0}}
    (tmp_path / "state" / "levels").mkdir(parents=True)
    (tmp_path / "state" / "levels" / "segment-levels.json").write_text(json.dumps(old))
    known = _known_levels(tmp_path / "state")
    assert known == {level_key("sha-a", found.st_size, found.st_mtime_ns): -80.0}
    take = Take("a", "c1", "v", "m", "text a", 10, SegmentAudio("a", str(loud), "sha-a", None, 1.0))
    assert [f["key"] for f in suspicious([take], known)] == ["a"]  # -80 dBFS: not decoded
    _save_levels(tmp_path / "state", known)  # and kept in the new format from then on
    (tmp_path / "state" / "levels" / "segment-levels.json").unlink()
    assert _known_levels(tmp_path / "state") == known


def test_forking_engine_speaks_alike_whatever_came_before() -> None:
    """Children are forked ahead and load their voice early; each utterance must still come
    out as from a freshly initialised engine, and errors must still be errors."""
    from runner.providers.espeak import EspeakError
    from runner.providers.espeak_fork import ForkingEngine

    first, second = ForkingEngine(), ForkingEngine()
    try:
        alone = first.speak("The lighthouse keeper waited.", "en-us", 170, 50).pcm
        for text, voice in [("One.", "en-us"), ("第一句话。", "cmn"), ("Zwei.", "de")] * 3:
            second.speak(text, voice, 170, 50)
        assert second.speak("The lighthouse keeper waited.", "en-us", 170, 50).pcm == alone
        for _ in range(2):  # a ready child of an unknown voice still refuses it
            with pytest.raises(EspeakError, match="no voice"):
                second.speak("Hello.", "xx-nope", 170, 50)
        assert second.speak("The lighthouse keeper waited.", "en-us", 170, 50).pcm == alone
    finally:
        first.close()
        second.close()


def test_a_chapter_level_is_remembered_and_a_damaged_record_measured_again(
    tmp_path: Path,
) -> None:
    from runner.levels import Level, measure

    (tmp_path / "book.yaml").write_text(
        "texts:\n  - {id: ch, text: 'The first line. The second line. The third line.'}\n"
    )
    manifest = load_manifest(tmp_path / "book.yaml")
    (chapter,) = expand(manifest).chapters
    state = tmp_path / "state"
    rng = np.random.default_rng(7)
    rows = {}
    for segment in chapter.segments:
        path = state / "cache" / segment.key[:2] / f"{segment.key}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        _wav(path, 0.2 * rng.standard_normal(16000))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        rows[segment.key] = SegmentAudio(segment.key, ".wav", digest, 16000, 1.0)

    def same(a: Level, b: Level) -> bool:
        return (a.rate, a.frames, a.peak) == (b.rate, b.frames, b.peak) and bool(
            np.array_equal(a.blocks, b.blocks)
        )

    first = measure(manifest, chapter, rows, state)
    assert first.rate == 16000
    assert first.frames >= 16000 * len(chapter.segments)
    assert -30 < first.loudness < -5  # noise at 0.2 RMS, not silence
    (record,) = (state / "levels").glob("*/*.level")
    data = bytearray(record.read_bytes())
    data[-3] ^= 0xFF  # bit rot in the blocks: the record's digest no longer matches
    record.write_bytes(bytes(data))
    assert same(measure(manifest, chapter, rows, state), first)  # decoded and measured again
    assert record.read_bytes() != bytes(data)  # and kept again, intact
    audio = state / "cache"
    shutil.move(audio, tmp_path / "audio-aside")  # nothing left to decode: only the record
    assert same(measure(manifest, chapter, rows, state), first)
    # A level kept by earlier versions (.npz) is read, and kept in the new form instead.
    old = record.with_suffix(".npz")
    np.savez(old, stats=np.array([first.rate, first.frames, first.peak]), blocks=first.blocks)
    record.unlink()
    assert same(measure(manifest, chapter, rows, state), first)
    assert not old.exists()
    assert record.exists()
    record.unlink()
    with pytest.raises(FileNotFoundError):  # with no record and no audio, it must decode
        measure(manifest, chapter, rows, state)


def test_lean_reads_of_the_state_agree_with_its_rows(tmp_path: Path) -> None:
    from runner.plan import Segment
    from runner.store import SegmentState, Store

    segments = [
        Segment(f"{i:064x}", "acct" if i % 2 else "other", "local", f"text {i}", {}, "wav")
        for i in range(1200)  # more than one batch of keys
    ]
    with Store.open(tmp_path) as store:
        store.add_segments(segments)
        for s in segments[:700]:
            store.mark_done(
                s.key,
                path=f"cache/{s.key}.wav",
                sha256="x",
                duration=1.0,
                sample_rate=8000,
                cost=None,
            )
        store.mark_failed(segments[700].key, "bad")
        keys = [s.key for s in segments] + ["f" * 64]  # one the state never saw
        rows = store.rows(keys)
        assert len(rows) == 1200
        assert rows[segments[3].key].text == "text 3"
        assert rows[segments[3].key].account == "acct"
        assert rows[segments[4].key].state == SegmentState.DONE
        assert all(rows[k].key is k for k in keys[:-1])  # the caller's own key strings
        states = store.states(keys)
        assert states == {k: r.state for k, r in rows.items()}
        counts = store.state_counts(keys)
        assert counts[SegmentState.DONE] == 700
        assert counts[SegmentState.FAILED] == 1
        assert counts[SegmentState.PENDING] == 499
        run = store.start_run("test")
        store.record_events((run, float(i), "start", "acct", None, "") for i in range(300))
        assert store._db.execute("SELECT COUNT(*) FROM events WHERE kind = 'start'").fetchone() == (
            300,
        )


def test_a_resume_lists_folders_and_finds_each_file_gone_behind_its_back(tmp_path: Path) -> None:
    from runner.cache import Cache
    from runner.resume import work_left
    from runner.stats import RunStats
    from runner.store import SegmentState, Store

    rng = np.random.default_rng(5)
    segments = [
        Segment(f"{i % 4:02x}{i:062x}", "a", "local", f"t{i}", {}, "wav") for i in range(40)
    ]
    segments.append(Segment("ff" * 32, "a", "local", "alone", {}, "wav"))
    with Store.open(tmp_path) as store:
        store.add_segments(segments)
        for i, s in enumerate(segments):
            # in the cache's folders, ten to a folder; a few at the state directory's top
            top = i in (0, 10, 20, 30)
            path = f"{s.key}.wav" if top else f"cache/{s.key[:2]}/{s.key}.wav"
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            _wav(tmp_path / path, 0.1 * rng.standard_normal(1600))
            store.mark_done(
                s.key, path=path, sha256="x", duration=0.1, sample_rate=16000, cost=None
            )
        gone = [segments[i] for i in (10, 5, 17, 39, 40)]  # a top-level one, two in one folder
        for s in gone[:-1]:
            row = store.get(s.key)
            assert row is not None
            assert row.path
            (tmp_path / row.path).unlink()
        shutil.rmtree(tmp_path / "cache" / "ff")  # a whole folder gone
        stats = RunStats()
        unique = {s.key: s for s in segments}
        left = anyio.run(work_left, store, Cache(tmp_path / "cache"), unique, stats)
    assert sorted(s.key for s, _ in left.todo) == sorted(s.key for s in gone)
    assert sorted(left.done) == sorted(s.key for s in segments if s not in gone)
    assert stats.cached == 36
    assert left.todo[0][1].state == SegmentState.DONE  # as the state said: re-requested
