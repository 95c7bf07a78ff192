"""Output formats through PyAV: what is written reads back with the same FFmpeg, with its chapter
marks, tags, cover, duration and loudness; long books stream; WAV past 4 GiB becomes RF64."""

from __future__ import annotations

import dataclasses
import io
import os
import struct
import tracemalloc
from pathlib import Path

import av
import numpy as np
import pytest
from synthetic_book import Book, Piece, make_book, tone

from runner.assemble import assemble_book, assemble_chapter, chapter_fingerprint, chapter_gains
from runner.audio import decode
from runner.encode import Encoder, Tags, WavWriter
from runner.loudness import Gain, integrated_loudness

TITLES = ["The North Wind", "灯塔守望人", "Evening: Two Languages"]


def _cover(path: Path) -> Path:
    """A small PNG made with the same FFmpeg."""
    with av.open(str(path), "w", format="image2") as container:
        stream = container.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "rgb24"
        frame = av.VideoFrame.from_ndarray(np.full((24, 32, 3), 90, np.uint8), format="rgb24")
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def _pieces(seconds: list[float], rate: int = 24000, amplitude: float = 0.05) -> list[Piece]:
    return [
        Piece(tone(s, rate, 150 + 30 * i, amplitude, lead=0.1, tail=0.2), rate, paragraph=i // 2)
        for i, s in enumerate(seconds)
    ]


def _build(book: Book) -> tuple[list[tuple[Path, float, str]], dict[str, Gain]]:
    gains = chapter_gains(book.manifest, book.chapters, book.state_dir)
    built = [
        assemble_chapter(book.manifest, chapter, rows, book.state_dir, gains[chapter.id])
        for chapter, rows in book.chapters
    ]
    return built, gains


def _read(path: Path) -> tuple[np.ndarray, int]:
    return decode(path.read_bytes(), path.suffix[1:])


def test_m4b_book_has_chapter_marks_tags_and_cover(tmp_path: Path) -> None:
    _cover(tmp_path / "cover.png")
    output = (
        "  format: m4b\n  book: true\n  author: Ann Author\n  narrator: Ned Narrator\n"
        "  cover: cover.png\n"
    )
    book = make_book(
        tmp_path, [_pieces([1.0, 1.5]), _pieces([2.0]), _pieces([0.7, 0.8, 0.9])], output, TITLES
    )
    built, gains = _build(book)
    (path, duration, _sha), rebuilt = assemble_book(
        book.manifest, book.chapters, book.state_dir, gains
    )
    assert rebuilt
    assert path == tmp_path / "out" / "synthetic.m4b"
    expected_starts = np.cumsum([0.0] + [d for _, d, _ in built[:-1]])
    with av.open(str(path)) as container:
        chapters = container.chapters()
        assert [c["metadata"]["title"] for c in chapters] == TITLES
        starts = [float(c["start"] * c["time_base"]) for c in chapters]
        assert starts == pytest.approx(list(expected_starts), abs=0.001)
        assert container.duration / 1e6 == pytest.approx(duration, abs=0.1)
        tags = container.metadata
        assert (tags["title"], tags["artist"], tags["composer"]) == (
            "synthetic",
            "Ann Author",
            "Ned Narrator",
        )
        assert tags["major_brand"].strip() == "M4B"
        pictures = [s for s in container.streams.video if s.disposition & 0x400]
        assert len(pictures) == 1  # the cover, as an attached picture
    assert duration == pytest.approx(sum(d for _, d, _ in built), abs=0.001)
    # unchanged: the book is not written again
    _, again = assemble_book(book.manifest, book.chapters, book.state_dir, gains)
    assert not again
    # nor when the caller hands over the chapters' fingerprints it already made
    made = {c.id: chapter_fingerprint(book.manifest, c, r, gains[c.id]) for c, r in book.chapters}
    _, again = assemble_book(book.manifest, book.chapters, book.state_dir, gains, made)
    assert not again


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "m4b"])
def test_each_format_reads_back_at_the_target_loudness(tmp_path: Path, fmt: str) -> None:
    book = make_book(tmp_path, [_pieces([1.5, 2.0, 1.0, 2.5])], f"  format: {fmt}\n")
    assert integrated_loudness(book_samples(book), 24000) < -30  # quiet before
    [(path, duration, _)], _ = _build(book)
    assert path.suffix == f".{fmt}"
    samples, rate = _read(path)
    assert rate == 24000
    assert len(samples) / rate == pytest.approx(duration, abs=0.08)  # codec priming at most
    assert integrated_loudness(samples, rate) == pytest.approx(-18.0, abs=0.5)


def book_samples(book: Book) -> np.ndarray:
    chapter, rows = book.chapters[0]
    paths = [book.state_dir / str(rows[s.key].path) for s in chapter.segments]
    return np.concatenate([_read(path)[0] for path in paths])


def test_book_normalisation_keeps_the_chapters_relative_levels(tmp_path: Path) -> None:
    chapters = [_pieces([2.0, 2.0], amplitude=0.1), _pieces([2.0, 2.0], amplitude=0.05)]
    for mode in ("chapter", "book"):
        root = tmp_path / mode
        root.mkdir()
        book = make_book(root, chapters, f"  format: flac\n  normalize: {mode}\n  loudness: -20\n")
        built, _ = _build(book)
        levels = [integrated_loudness(*_read(path)) for path, _, _ in built]
        if mode == "chapter":
            assert levels == pytest.approx([-20.0, -20.0], abs=0.3)
        else:
            assert levels[0] - levels[1] == pytest.approx(20 * np.log10(2), abs=0.2)
            together = np.concatenate([_read(path)[0] for path, _, _ in built])
            assert integrated_loudness(together, 24000) == pytest.approx(-20.0, abs=0.3)


def test_the_peak_ceiling_is_never_passed_and_the_shortfall_is_recorded(tmp_path: Path) -> None:
    rate = 24000
    peaky = tone(3.0, rate, amplitude=0.02)
    peaky[rate : rate + 3] = 0.5  # a spike far above the speech
    book = make_book(tmp_path, [[Piece(peaky, rate)]], "  format: wav\n  loudness: acx\n")
    [(path, _, _)], gains = _build(book)
    gain = gains["ch01"]
    samples, _ = _read(path)
    peak_db = 20 * np.log10(np.max(np.abs(samples)))
    assert peak_db <= -3.0 + 0.01
    assert gain.limited
    assert not gain.in_window


def test_every_output_setting_changes_the_fingerprint(tmp_path: Path) -> None:
    _cover(tmp_path / "cover.png")
    book = make_book(tmp_path, [_pieces([1.0])])
    chapter, rows = book.chapters[0]
    output = book.manifest.output
    changes = {
        "format": "mp3",
        "pause_ms": 301,
        "paragraph_pause_ms": 801,
        "chapter_pause_ms": 999,
        "sample_rate": 48000,
        "loudness": -20.0,
        "loudness_window": (-23.0, -18.0),
        "peak_dbfs": -3.0,
        "normalize": "book",
        "preset": "acx",
        "author": "A",
        "narrator": "N",
        "cover": tmp_path / "cover.png",
    }
    seen = {chapter_fingerprint(book.manifest, chapter, rows)}
    for field, value in changes.items():
        new_output = dataclasses.replace(output, **{field: value})
        changed = dataclasses.replace(book.manifest, output=new_output)
        seen.add(chapter_fingerprint(changed, chapter, rows))
    assert len(seen) == len(changes) + 1


@pytest.mark.parametrize("fmt", ["flac", "mp3", "m4b"])
def test_encoding_is_deterministic(tmp_path: Path, fmt: str) -> None:
    digests = set()
    for run in ("a", "b"):
        root = tmp_path / run
        root.mkdir()
        book = make_book(root, [_pieces([1.0, 1.2])], f"  format: {fmt}\n")
        [(_, _, sha)], _ = _build(book)
        digests.add(sha)
    assert len(digests) == 1


def test_wav_past_the_riff_limit_becomes_rf64(tmp_path: Path) -> None:
    """The 4 GiB switch, shown with the limit lowered: a book that outgrows RIFF's 32-bit sizes
    is closed as RF64, which both readers take."""
    rate = 16000
    samples = tone(2.0, rate)
    for limit, magic in ((1 << 32, b"RIFF"), (10_000, b"RF64")):
        path = tmp_path / f"{magic.decode()}.wav"
        with path.open("wb") as f:
            writer = WavWriter(f, rate, riff_limit=limit)
            for start in range(0, len(samples), 4000):
                writer.write(samples[start : start + 4000])
            writer.close()
        data = path.read_bytes()
        assert data[:4] == magic
        if magic == b"RF64":
            assert struct.unpack_from("<I", data, 4)[0] == 0xFFFFFFFF
            assert struct.unpack_from("<Q", data, 28)[0] == 2 * len(samples)  # ds64 data size
        ours, our_rate = decode(data, "wav")
        assert our_rate == rate
        assert np.max(np.abs(ours - samples)) < 1 / 32767
        with av.open(io.BytesIO(data)) as container:
            frames = sum(f.samples for f in container.decode(audio=0))
        assert frames == len(samples)


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_a_long_book_streams_in_flat_memory(tmp_path: Path, fmt: str) -> None:
    """Two hours of audio in one-second chunks: the file grows as it is written and Python's
    peak allocation stays that of a few chunks, not of the book."""
    rate = 8000
    chunk = tone(1.0, rate, amplitude=0.2)
    path = tmp_path / f"long.{fmt}"
    sizes = []
    tracemalloc.start()
    try:
        with path.open("wb") as f, Encoder(f, fmt, rate, Tags("long", "long")) as encoder:
            for second in range(2 * 3600):
                encoder.write(chunk)
                if second % 1800 == 1799:
                    f.flush()
                    sizes.append(os.fstat(f.fileno()).st_size)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    whole_book = 2 * 3600 * rate * 4  # float32 samples of the whole book
    assert peak < 2_000_000 < whole_book // 50, peak
    assert sizes == sorted(sizes)
    assert sizes[0] > 0
    assert sizes[-1] > 3 * sizes[0]  # written as it went, not at the end
    with av.open(str(path)) as container:
        assert container.duration / 1e6 == pytest.approx(7200, abs=1)
