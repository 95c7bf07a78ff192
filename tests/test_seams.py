"""Seams on synthetic audio: silence trimmed, pauses exact, no clicks, mixed rates resampled."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from synthetic_book import Piece, audible_runs, make_book, tone

from runner.audio import decode
from runner.levels import chapter_rate, render
from runner.seams import KEEP_MS, Seams, join, trim


def _chapter(tmp_path: Path, pieces: list[Piece], output: str) -> tuple[np.ndarray, int]:
    book = make_book(tmp_path, [pieces], output)
    chapter, rows = book.chapters[0]
    rate = chapter_rate(book.manifest.output, chapter, rows)
    samples = np.concatenate(list(render(book.manifest, chapter, rows, book.state_dir, rate)))
    return samples, rate


def _max_jump(samples: np.ndarray) -> float:
    return float(np.max(np.abs(np.diff(samples.astype(np.float64)))))


def test_trim_keeps_a_few_ms_around_the_audible_part() -> None:
    rate = 24000
    samples = tone(1.0, rate, lead=0.25, tail=0.6)
    trimmed = trim(samples, rate)
    keep = round(rate * KEEP_MS / 1000)
    assert trimmed.head == trimmed.tail == keep
    assert len(trimmed.samples) == pytest.approx(rate * 1.0 + 2 * keep, abs=rate * 0.002)
    assert len(trim(np.zeros(rate, np.float32), rate).samples) == 0


def test_gaps_are_the_configured_pauses_whatever_silence_providers_left(tmp_path: Path) -> None:
    rate = 22050
    # leading/trailing silences of every provider's habit: none, a little, a lot
    edges = [(0.0, 0.4), (0.12, 0.0), (0.5, 0.05), (0.03, 0.7), (0.2, 0.2)]
    paragraphs = [0, 0, 1, 1, 2]
    pieces = [
        Piece(tone(0.8, rate, 180 + 40 * i, lead=lead, tail=tail), rate, paragraph)
        for i, ((lead, tail), paragraph) in enumerate(zip(edges, paragraphs, strict=True))
    ]
    output = "  pause_ms: 350\n  paragraph_pause_ms: 900\n  chapter_pause_ms: 700\n"
    samples, out_rate = _chapter(tmp_path, pieces, output)
    assert out_rate == rate
    runs = audible_runs(samples, rate)
    assert len(runs) == 5
    gaps_ms = [(b[0] - a[1]) / rate * 1000 for a, b in itertools.pairwise(runs)]
    expected = [350, 900, 350, 900]
    errors = [abs(g - e) for g, e in zip(gaps_ms, expected, strict=True)]
    assert max(errors) <= 10, gaps_ms
    head_ms = runs[0][0] / rate * 1000
    tail_ms = (len(samples) - runs[-1][1]) / rate * 1000
    assert abs(head_ms - 700) <= 10
    assert abs(tail_ms - 700) <= 10
    for (start, end), piece_seconds in zip(runs, [0.8] * 5, strict=True):
        assert (end - start) / rate == pytest.approx(piece_seconds, abs=0.01)


def _abrupt(rate: int, freq: float, seconds: float, phase: float) -> np.ndarray:
    """A tone cut off mid-wave at both ends, as a provider that truncates would leave it."""
    t = np.arange(int(seconds * rate)) / rate
    return (0.6 * np.sin(2 * math.pi * freq * t + phase)).astype(np.float32)


@pytest.mark.parametrize("pause_ms", [0, 300])
def test_no_click_where_segments_meet(pause_ms: int) -> None:
    rate = 22050
    a = _abrupt(rate, 330, 0.5, 0.3)  # ends near +0.6 ...
    b = _abrupt(rate, 550, 0.5, -math.pi / 2)  # ... and the next starts at −0.6
    within = max(_max_jump(a), _max_jump(b))
    naive = np.concatenate([a, b])
    assert _max_jump(naive) > 1.5 * within  # the control: butting them together clicks
    seams = Seams(rate, pause_ms, 900, 500)
    joined = np.concatenate(list(join([(a, 0), (b, 0)], seams)))
    # the whole chapter, edges against the chapter's silence included; where two different
    # waves overlap, their slopes add (at most √2× with equal-power gains), far below a click
    allowed = 1.25 if pause_ms == 0 else 1.02
    assert _max_jump(joined) <= allowed * within, (_max_jump(joined), within, _max_jump(naive))
    overlap = round(rate * 0.010) if pause_ms == 0 else 0
    expected = 2 * round(rate * 0.5) + len(a) + len(b) - overlap + round(rate * pause_ms / 1000)
    assert len(joined) == expected


def test_crossfade_keeps_the_level_through_the_join() -> None:
    rate = 24000
    rng = np.random.default_rng(7)
    a = (0.2 * rng.standard_normal(rate)).astype(np.float32)
    b = (0.2 * rng.standard_normal(rate)).astype(np.float32)
    joined = np.concatenate(list(join([(a, 0), (b, 0)], Seams(rate, 0, 0, 0))))
    middle = joined[len(a) - 240 : len(a)]  # the 10 ms crossfade region
    rms = float(np.sqrt(np.mean(middle.astype(np.float64) ** 2)))
    assert rms == pytest.approx(0.2, rel=0.25)  # equal power: no dip, no bump


def test_mixed_rates_and_channels_are_resampled_to_the_highest(tmp_path: Path) -> None:
    pieces = [
        Piece(tone(0.6, 16000, 200), 16000),
        Piece(tone(0.6, 24000, 300), 24000, channels=2),
        Piece(tone(0.6, 44100, 400), 44100),
    ]
    samples, rate = _chapter(tmp_path, pieces, "  pause_ms: 250\n  chapter_pause_ms: 100\n")
    assert rate == 44100
    runs = audible_runs(samples, rate)
    assert len(runs) == 3
    for (start, end), freq in zip(runs, (200, 300, 400), strict=True):
        assert (end - start) / rate == pytest.approx(0.6, abs=0.01)  # no speed change
        part = samples[start:end].astype(np.float64)
        spectrum = np.abs(np.fft.rfft(part * np.hanning(len(part))))
        peak_hz = np.argmax(spectrum) * rate / len(part)
        assert peak_hz == pytest.approx(freq, abs=5)  # no pitch change
    gaps = [(b[0] - a[1]) / rate * 1000 for a, b in itertools.pairwise(runs)]
    assert all(abs(g - 250) <= 10 for g in gaps), gaps


def test_output_sample_rate_overrides(tmp_path: Path) -> None:
    pieces = [Piece(tone(0.5, 16000), 16000), Piece(tone(0.5, 24000), 24000)]
    samples, rate = _chapter(tmp_path, pieces, "  sample_rate: 48000\n")
    assert rate == 48000
    runs = audible_runs(samples, rate)
    assert [(e - s) / rate for s, e in runs] == pytest.approx([0.5, 0.5], abs=0.01)


def test_a_silent_segment_adds_one_pause_not_two(tmp_path: Path) -> None:
    rate = 16000
    pieces = [
        Piece(tone(0.5, rate), rate),
        Piece(np.zeros(rate, np.float32), rate),
        Piece(tone(0.5, rate), rate),
    ]
    samples, _ = _chapter(tmp_path, pieces, "  pause_ms: 400\n")
    runs = audible_runs(samples, rate)
    assert abs((runs[1][0] - runs[0][1]) / rate - 0.4) <= 0.01
    decoded, _ = decode((tmp_path / ".tts-runner" / "cache" / "c0-s1.wav").read_bytes(), "wav")
    assert not np.any(decoded)
