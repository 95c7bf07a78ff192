"""The walking skeleton end to end, through the real CLI in subprocesses, on the embedded engine."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import av
import pytest
from support import REPO, tts_runner, wav_stats

#: Seconds of speech per character at the demo's rates, with pauses: wide but meaningful bounds
#: (espeak-ng reads English at ~0.05 s/char and Mandarin at ~0.27 s/char).
SECONDS_PER_CHAR = {"ch01": (0.03, 0.12), "ch02": (0.15, 0.6), "ch03": (0.05, 0.4)}


def _digests(directory: Path) -> dict[str, str]:
    """The audio and index of an output directory (the run report says when it ran: it changes)."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.is_file() and not p.name.startswith("report.")
    }


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    """The demo book, written as WAV so its samples can be inspected directly."""
    target = tmp_path / "demo"
    shutil.copytree(
        REPO / "examples" / "demo", target, ignore=shutil.ignore_patterns("out", ".tts-runner")
    )
    manifest = target / "book.yaml"
    shipped = manifest.read_text()
    assert "  format: m4b " in shipped
    manifest.write_text(shipped.replace("  format: m4b ", "  format: wav "))
    return target


def test_the_demo_as_shipped_is_an_m4b_audiobook_with_chapters_and_a_report(
    tmp_path: Path,
) -> None:
    target = tmp_path / "demo"
    shutil.copytree(
        REPO / "examples" / "demo", target, ignore=shutil.ignore_patterns("out", ".tts-runner")
    )
    done = tts_runner("run", "book.yaml", "--json-log", cwd=target)
    assert done.code == 0, done.stderr
    out = target / "out"
    assert sorted(p.name for p in out.glob("*.m4b")) == [
        "ch01.m4b",
        "ch02.m4b",
        "ch03.m4b",
        "demo-book.m4b",
    ]
    assert (out / "report.html").is_file()
    with av.open(str(out / "demo-book.m4b")) as book:
        marks = book.chapters()
        assert [m["metadata"]["title"] for m in marks] == [
            "The North Wind and the Sun",
            "灯塔守望人",
            "Two Languages, One Evening",
        ]
        seconds = float(book.duration or 0) / av.time_base
    assert seconds > 20


def test_demo_end_to_end_produces_real_speech(demo: Path) -> None:
    done = tts_runner("run", "book.yaml", "--json-log", cwd=demo)
    assert done.code == 0, done.stderr
    out = demo / "out"
    index = json.loads((out / "index.json").read_text())
    assert [c["id"] for c in index["chapters"]] == ["ch01", "ch02", "ch03"]
    for chapter in index["chapters"]:
        path = out / chapter["file"]
        assert path.read_bytes()[:4] == b"RIFF"
        rate, seconds, rms = wav_stats(path)
        assert rate == 22050
        assert rms > -30, f"{path.name} is near-silent ({rms:.1f} dBFS)"
        source = (demo / "chapters").glob(f"0{chapter['id'][-1]}-*.txt")
        chars = len("".join(next(source).read_text().split()))
        low, high = SECONDS_PER_CHAR[chapter["id"]]
        assert low * chars < seconds < high * chars, (chapter["id"], seconds, chars)
        assert abs(chapter["duration"] - seconds) < 0.01
    assert str(out) in done.stdout  # the summary says where the chapters went
    assert len(done.events("request")) == len(done.events("segment_done")) > 3


def test_second_run_synthesises_nothing_and_changes_nothing(demo: Path) -> None:
    assert tts_runner("run", "book.yaml", "--json-log", cwd=demo).code == 0
    before = _digests(demo / "out")
    again = tts_runner("run", "book.yaml", "--json-log", cwd=demo)
    assert again.code == 0, again.stderr
    assert again.events("request") == []
    assert again.events("chapter_written") == []
    (summary,) = again.events("summary")
    assert summary["synthesized"] == 0
    assert summary["cached"] == again.events("plan")[0]["segments"]
    assert _digests(demo / "out") == before
    assert {"report.html", "report.json"} <= {p.name for p in (demo / "out").iterdir()}


def test_editing_one_sentence_resynthesises_only_what_changed(demo: Path) -> None:
    first = tts_runner("run", "book.yaml", "--json-log", cwd=demo)
    assert first.code == 0
    before = _digests(demo / "out")
    old_keys = {e["key"] for e in first.events("segment_done")}
    chapter = demo / "chapters" / "03-evening.txt"
    text = chapter.read_text()
    assert "roasted chestnuts" in text
    chapter.write_text(text.replace("roasted chestnuts", "grilled corn"))

    second = tts_runner("run", "book.yaml", "--json-log", cwd=demo)
    assert second.code == 0, second.stderr
    requested = {e["key"] for e in second.events("request")}
    assert len(requested) == 1  # the changed paragraph is one segment
    assert not requested & old_keys
    assert [e["id"] for e in second.events("chapter_written")] == ["ch03"]
    after = _digests(demo / "out")
    assert after["ch01.wav"] == before["ch01.wav"]
    assert after["ch02.wav"] == before["ch02.wav"]
    assert after["ch03.wav"] != before["ch03.wav"]

    plan = json.loads(tts_runner("plan", "book.yaml", "--json", cwd=demo).stdout)
    assert plan["cached"] == plan["unique_segments"]


def test_minimal_manifest_is_a_complete_manifest(tmp_path: Path) -> None:
    (tmp_path / "hello.yaml").write_text('texts: [{text: "Hello there, general reader."}]\n')
    done = tts_runner("run", "hello.yaml", "--json-log", cwd=tmp_path)
    assert done.code == 0, done.stderr
    _rate, seconds, rms = wav_stats(tmp_path / "out" / "text-1.wav")
    assert 0.8 < seconds < 5
    assert rms > -30
    status = json.loads(tts_runner("status", "hello.yaml", "--json", cwd=tmp_path).stdout)
    assert status["counts"]["done"] == 1
    assert sum(status["counts"].values()) == 1


def test_a_long_espeak_data_path_is_reached_through_a_short_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import espeakng_loader

    from runner.providers import espeak

    real = Path(espeakng_loader.get_data_path())
    deep = tmp_path / ("d" * 100) / ("e" * 100)
    deep.mkdir(parents=True)
    (deep / "espeak-ng-data").symlink_to(real)
    monkeypatch.setattr(espeakng_loader, "get_data_path", lambda: str(deep / "espeak-ng-data"))
    short = espeak._data_path()
    assert len(short) <= 159 < len(str(deep / "espeak-ng-data"))
    assert Path(short).resolve() == real.resolve()
    assert (Path(short) / "phontab").is_file()


def test_only_named_chapters_are_worked_on(demo: Path) -> None:
    done = tts_runner("run", "book.yaml", "--only", "ch02", "--json-log", cwd=demo)
    assert done.code == 0, done.stderr
    assert [e["id"] for e in done.events("chapter_written")] == ["ch02"]
    assert sorted(p.name for p in (demo / "out").glob("ch*.wav")) == ["ch02.wav"]
    wrong = tts_runner("run", "book.yaml", "--only", "ch02,ch9", cwd=demo)
    assert wrong.code == 2
    assert "--only names text(s) the manifest does not have: ch9" in wrong.stderr
    assert "ch01, ch02, ch03" in wrong.stderr


def test_plan_since_last_shows_only_new_and_changed_segments(demo: Path) -> None:
    fresh = json.loads(tts_runner("plan", "book.yaml", "--since-last", "--json", cwd=demo).stdout)
    assert fresh["since_last"]["new_segments"] == fresh["unique_segments"]
    assert tts_runner("run", "book.yaml", "--json-log", cwd=demo).code == 0
    quiet = tts_runner("plan", "book.yaml", "--since-last", cwd=demo)
    assert quiet.code == 0
    assert "since the last run: nothing new or changed" in quiet.stdout
    chapter = demo / "chapters" / "03-evening.txt"
    chapter.write_text(chapter.read_text().replace("roasted chestnuts", "grilled corn"))
    edited = json.loads(tts_runner("plan", "book.yaml", "--since-last", "--json", cwd=demo).stdout)
    news = edited["since_last"]
    assert news["new_segments"] == 1
    assert [c["id"] for c in news["chapters"]] == ["ch03"]
    assert news["estimated_cost"] == {}  # the embedded engine costs nothing
    text = tts_runner("plan", "book.yaml", "--since-last", cwd=demo).stdout
    assert "since the last run: 1 new or changed segments" in text
    assert "  ch03: 1 new" in text


def test_a_chapter_file_changed_behind_the_runners_back_is_written_again(demo: Path) -> None:
    """A resume trusts a chapter file with the size and modification time it was written with
    (no hashing of every output); any other file is hashed, and rebuilt when it differs."""
    assert tts_runner("run", "book.yaml", "--json-log", cwd=demo).code == 0
    book = demo / "out" / "demo-book.wav"
    chapters = sorted(p for p in (demo / "out").iterdir() if p.suffix == ".wav" and p != book)
    edited, same_bytes = chapters[0], chapters[1]
    original = edited.read_bytes()
    edited.write_bytes(original[:-2] + b"\x01\x01")  # same size, a new modification time
    stat = same_bytes.stat()
    same_bytes.write_bytes(same_bytes.read_bytes())  # touched: hashed, found unchanged
    again = tts_runner("run", "book.yaml", "--json-log", cwd=demo)
    assert again.code == 0, again.stderr
    assert [e["id"] for e in again.events("chapter_written")] == [edited.stem]
    assert edited.read_bytes() == original
    assert same_bytes.stat().st_mtime_ns != stat.st_mtime_ns  # it was not rewritten either
    # Size and time as written: trusted without being read (the one change a stat misses).
    written = edited.stat()
    edited.write_bytes(original[:-2] + b"\x02\x02")
    os.utime(edited, ns=(written.st_atime_ns, written.st_mtime_ns))
    whole = book.read_bytes()
    book.write_bytes(whole[:-2] + b"\x02\x02")  # the whole book: new time, so hashed
    third = tts_runner("run", "book.yaml", "--json-log", cwd=demo)
    assert third.code == 0, third.stderr
    assert third.events("chapter_written") == []
    assert len(third.events("book_written")) == 1
    assert book.read_bytes() == whole
