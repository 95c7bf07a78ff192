"""BS.1770-4 loudness against its reference values, and normalisation that never clips."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from runner.loudness import LoudnessMeter, gain_for, integrated_loudness, k_weighting


def _sine(freq: float, dbfs: float, seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (10 ** (dbfs / 20) * np.sin(2 * math.pi * freq * t)).astype(np.float32)


def _direct_form(b: np.ndarray, a1: float, a2: float, x: np.ndarray) -> np.ndarray:
    """The difference equation, one sample at a time: the oracle for the vectorised filter."""
    y = np.zeros_like(x)
    x1 = x2 = y1 = y2 = 0.0
    for n, v in enumerate(x):
        out = b[0] * v + b[1] * x1 + b[2] * x2 - a1 * y1 - a2 * y2
        x2, x1, y2, y1 = x1, v, y1, out
        y[n] = out
    return y


def test_full_scale_1khz_sine_at_48k_reads_minus_3_01() -> None:
    assert integrated_loudness(_sine(1000, 0.0, 10, 48000), 48000) == pytest.approx(-3.01, abs=0.01)


@pytest.mark.parametrize("rate", [16000, 22050, 24000, 44100, 48000])
def test_997hz_at_minus_20_dbfs_reads_minus_23(rate: int) -> None:
    assert integrated_loudness(_sine(997, -20.0, 10, rate), rate) == pytest.approx(-23.0, abs=0.1)


def test_k_weighting_matches_the_48k_coefficients_of_the_standard() -> None:
    shelf, highpass = k_weighting(48000)
    assert shelf.b == pytest.approx([1.53512485958697, -2.69169618940638, 1.19839281085285])
    a1 = -(shelf.poles[0] + shelf.poles[1]).real
    a2 = (shelf.poles[0] * shelf.poles[1]).real
    assert (a1, a2) == pytest.approx((-1.69065929318241, 0.73248077421585))
    assert highpass.b == pytest.approx([1.0, -2.0, 1.0])
    a1 = -(highpass.poles[0] + highpass.poles[1]).real
    a2 = (highpass.poles[0] * highpass.poles[1]).real
    assert (a1, a2) == pytest.approx((-1.99004745483398, 0.99007225036621))


@pytest.mark.parametrize("stage", [0, 1])
def test_vectorised_filter_equals_the_difference_equation_across_chunks(stage: int) -> None:
    x = np.random.default_rng(3).standard_normal(20000)
    oracle_filter = k_weighting(24000)[stage]
    a1 = -(oracle_filter.poles[0] + oracle_filter.poles[1]).real
    a2 = (oracle_filter.poles[0] * oracle_filter.poles[1]).real
    expected = _direct_form(oracle_filter.b, a1, a2, x)
    streamed = k_weighting(24000)[stage]
    cuts = [0, 1, 7, 500, 9000, 9001, 20000]
    got = np.concatenate([streamed(x[a:b]) for a, b in itertools.pairwise(cuts)])
    assert np.max(np.abs(got - expected)) < 1e-9


def test_streaming_in_chunks_equals_one_piece() -> None:
    rate = 22050
    x = (0.1 * np.random.default_rng(5).standard_normal(rate * 7)).astype(np.float32)
    meter = LoudnessMeter(rate)
    for start in range(0, len(x), 3001):
        meter.feed(x[start : start + 3001])
    assert meter.loudness() == pytest.approx(integrated_loudness(x, rate), abs=1e-9)
    assert meter.frames == len(x)


def test_gates_ignore_silence_and_quiet_passages() -> None:
    rate = 48000
    loud = _sine(997, -20, 10, rate)
    silence = np.zeros(rate * 10, np.float32)
    assert integrated_loudness(np.concatenate([loud, silence]), rate) == pytest.approx(
        -23.0, abs=0.1
    )  # absolute gate: silence does not pull the level down
    quiet = _sine(997, -40, 10, rate)  # 20 LU below: under the relative gate
    assert integrated_loudness(np.concatenate([loud, quiet]), rate) == pytest.approx(-23.0, abs=0.1)
    assert integrated_loudness(silence, rate) == -math.inf
    assert integrated_loudness(loud[: rate // 4], rate) == -math.inf  # shorter than a block


def test_gain_reaches_the_target_or_stops_at_the_peak_ceiling() -> None:
    plain = gain_for(-30.0, 10 ** (-20 / 20), -18.0, -1.0)
    assert (plain.db, plain.result, plain.limited) == (12.0, -18.0, False)
    peaky = gain_for(-30.0, 10 ** (-6 / 20), -18.0, -1.0)  # +12 dB would put the peak at +6
    assert peaky.limited
    assert peaky.peak_dbfs == pytest.approx(-1.0)
    assert peaky.result == pytest.approx(-25.0)
    acx = gain_for(-30.0, 10 ** (-6 / 20), -20.0, -3.0, (-23.0, -18.0))
    assert acx.limited
    assert not acx.in_window  # recorded: the ceiling kept it below ACX's window
    off = gain_for(-30.0, 0.5, None, -1.0)
    assert off.db == 0.0
    assert off.factor == 1.0
