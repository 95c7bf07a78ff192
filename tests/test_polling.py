"""The processing-time model behind IndexTTS polling: what it learns and when it polls."""

from __future__ import annotations

import random

import pytest

from runner.polling import MAX_INTERVAL, ProcessingModel


def test_it_learns_base_and_per_character_time_from_finished_tasks() -> None:
    model = ProcessingModel()
    for chars in (20, 80, 150, 300, 40):
        seconds = 1.5 + 0.02 * chars
        model.observe(chars, seconds - 0.1, seconds + 0.1)
    assert model.base == pytest.approx(1.5)
    assert model.per_char == pytest.approx(0.02)
    assert model.expected(100) == pytest.approx(3.5)


def test_a_negative_intercept_is_fitted_through_the_origin_not_as_a_steep_slope() -> None:
    """Tasks all found done at their first poll teach only upper bounds; a least-squares line
    through such points can come out steep with a negative intercept, which would push the
    first polls of long texts far too late."""
    model = ProcessingModel()
    model.learn([(100, 0.0, 0.2), (110, 0.0, 0.2), (400, 19.0, 21.0)])
    assert model.base == 0.0
    assert model.per_char == pytest.approx((100 * 0.1 + 110 * 0.1 + 400 * 20) / 182_100)
    # Clipping the least-squares intercept (-6.5 s) to zero would keep its 0.066 s/char and
    # expect 26 s for 400 characters, later than any of them took.
    assert model.expected(400) < 20.0


def test_longer_texts_never_expected_faster() -> None:
    model = ProcessingModel()
    model.learn([(10, 2.9, 3.1), (200, 0.9, 1.1), (100, 1.9, 2.1)])
    assert model.per_char == 0.0
    assert model.expected(10) == model.expected(1000) == pytest.approx(2.0)


def test_first_poll_at_the_expected_time_then_backing_off_with_jitter_up_to_a_cap() -> None:
    model = ProcessingModel(base=10.0, per_char=0.0, rng=random.Random(7))
    first = model.delay(50, elapsed=2.0, polls=0)
    assert 8.0 * 0.9 <= first <= 8.0 * 1.1
    delays = [model.delay(50, elapsed=10.0, polls=n) for n in range(1, 12)]
    assert 1.0 * 0.9 <= delays[0] <= 1.0 * 1.1  # a tenth of the expected time
    assert delays[3] > delays[0] * 2  # growing by half each poll
    assert max(delays) <= MAX_INTERVAL * 1.1
