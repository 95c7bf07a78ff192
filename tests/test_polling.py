"""The processing-time model behind IndexTTS polling: what it learns and when it polls."""

from __future__ import annotations

import random
import time

import anyio
import pytest

from runner.polling import CATCH_UP, MAX_INTERVAL, ProcessingModel


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


def _truth(chars: int) -> float:
    return 0.5 + 0.004 * chars


LENGTHS = (50, 100, 150, 200, 250, 300)


def test_tasks_found_done_at_their_first_poll_do_not_drag_the_fit_to_half_their_time() -> None:
    """With a good fit most first polls come just after the task finished: each only bounds
    its time from above. Taken at the midpoint of (0, bound] they would pull the line to
    about half the real times (the next first polls then come too early, and need more)."""
    model = ProcessingModel()
    bracketed = [(c, 0.9 * _truth(c), 1.05 * _truth(c)) for c in LENGTHS]
    bounded = [(c, 0.0, 1.08 * _truth(c)) for c in LENGTHS * 3]
    model.learn(bracketed + bounded)
    for chars in (50, 175, 300):
        assert model.expected(chars) == pytest.approx(_truth(chars), rel=0.05)


def test_tasks_done_well_before_their_first_poll_pull_the_fit_down() -> None:
    """The provider got faster: tasks are found done at first polls long after they finished.
    Their bounds alone, below the line, bring the expected times down."""
    model = ProcessingModel()
    model.learn([(c, 0.95 * _truth(c), 1.05 * _truth(c)) for c in LENGTHS])
    assert model.expected(175) == pytest.approx(_truth(175), rel=0.02)
    model.learn([(c, 0.0, 0.5 * _truth(c)) for c in LENGTHS * 5])
    assert model.expected(175) < 0.65 * _truth(175)


def test_a_task_found_done_hours_after_its_time_leaves_the_fit_alone() -> None:
    """A resumed run (or `collect`) polls old tasks at once: found done after hours, they only
    say the task took less than that. At its midpoint, such a bound made the next first polls
    come an hour late."""
    model = ProcessingModel()
    model.learn([(c, 0.95 * _truth(c), 1.05 * _truth(c)) for c in LENGTHS])
    before = model.expected(175)
    model.learn([(c, 0.0, 7200.0) for c in LENGTHS])
    assert model.expected(175) == pytest.approx(before, rel=0.01)
    # Nor when nothing is bracketed yet (a history of rate-bound runs, polled late): such
    # bounds are left out of the midpoint fit.
    model = ProcessingModel(base=2.0, per_char=0.01)
    model.learn([(c, 0.0, 7200.0) for c in LENGTHS])
    assert not model.fitted  # they say nothing: first polls still explore from the prior
    model.learn([(c, 0.0, 1.1 * _truth(c)) for c in LENGTHS])
    assert model.fitted
    before = model.expected(175)
    model.learn([(c, 0.0, 7200.0) for c in LENGTHS])
    assert model.expected(175) == pytest.approx(before, rel=0.01)


def test_one_task_held_up_in_the_providers_queue_does_not_move_every_expected_time() -> None:
    """A task bracketed at half an hour, among thirty that took about a second: least squares
    would add a minute to every expected time, and keep it for the next 200 tasks."""
    model = ProcessingModel()
    usual = [(c, 0.95 * _truth(c), 1.05 * _truth(c)) for c in LENGTHS * 5]
    model.learn([*usual[:12], (150, 1790.0, 1800.0), *usual[12:]])
    for chars in (50, 175, 300):
        assert model.expected(chars) == pytest.approx(_truth(chars), rel=0.05)


def test_longer_texts_never_expected_faster() -> None:
    model = ProcessingModel()
    model.learn([(10, 2.9, 3.1), (200, 0.9, 1.1), (100, 1.9, 2.1)])
    assert model.per_char == 0.0
    assert model.expected(10) == model.expected(1000) == pytest.approx(2.0)


def test_first_poll_at_the_expected_time_then_backing_off_with_jitter_up_to_a_cap() -> None:
    model = ProcessingModel(base=10.0, per_char=0.0, rng=random.Random(7))
    model.learn([(50, 9.9, 10.1)] * 3)  # fitted: 10 s for every task
    firsts = [model.delay(50, elapsed=2.0, polls=0) for _ in range(200)]
    # Never before the expected time (such a poll would be spent for nothing), at most a
    # tenth after it.
    assert min(firsts) >= 8.0
    assert max(firsts) <= 10.0 * 1.1 - 2.0
    elapsed, delays = 10.0, []
    for n in range(1, 12):
        delays.append(model.delay(50, elapsed=elapsed, polls=n))
        elapsed += delays[-1]
    assert 1.0 * 0.9 <= delays[0] <= 1.0 * 1.1  # a tenth of the expected time
    assert delays[5] > delays[0] * 2  # growing each poll (by half, as far as the age allows)
    assert max(delays) <= MAX_INTERVAL * 1.1


def test_after_a_busy_poll_the_next_comes_within_a_share_of_the_tasks_age() -> None:
    """However wrong the expected time, a task found still processing is polled again within
    CATCH_UP of its age: its completion is noticed that soon after it happens."""
    model = ProcessingModel(base=100.0, per_char=0.0, rng=random.Random(5))
    model.learn([(50, 99.0, 101.0)] * 3)  # fitted: 100 s, yet this task is 10 s old
    delays = [model.delay(50, elapsed=10.0, polls=1) for _ in range(50)]
    # a tenth of the expected time would be 10 s: as long again as the task has run
    assert min(delays) >= CATCH_UP * 10.0 * 0.9
    assert max(delays) <= CATCH_UP * 10.0 * 1.1
    # A task stuck far past its expected time still backs off to the cap.
    assert model.delay(50, elapsed=1000.0, polls=8) >= MAX_INTERVAL * 0.9


def test_until_tasks_have_finished_the_first_poll_comes_at_a_quarter_of_the_prior() -> None:
    """The prior is a guess: waiting its whole length on the first tasks would leave the model
    unlearned (and the account idle) for as long."""
    model = ProcessingModel(base=8.0, per_char=0.0, rng=random.Random(3))
    assert not model.fitted
    first = model.delay(50, elapsed=0.0, polls=0)
    assert 2.0 * 0.9 <= first <= 2.0 * 1.1
    model.learn([(50, 0.5, 0.7), (60, 0.6, 0.8), (70, 0.7, 0.9)])
    assert model.fitted
    assert model.delay(50, elapsed=0.0, polls=0) < 1.0


async def _first_poll_around_learning(
    model: ProcessingModel, learn_at: float, finished: list[tuple[int, float, float]]
) -> tuple[list[float], list[float]]:
    """A task of 50 characters waits for its first poll; `learn_at` seconds in, the model
    learns `finished`. Returns when the task woke (seconds after creation) as seen just before
    the learning, and in the end."""
    created = time.time()
    woke: list[float] = []

    async def waiter() -> None:
        await model.until_first_poll(50, created)
        woke.append(time.time() - created)

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.sleep(learn_at)
        before = list(woke)
        model.learn(finished)
    return before, woke


@pytest.mark.anyio
async def test_a_task_waiting_on_the_priors_guess_polls_as_soon_as_the_model_learns() -> None:
    """Submitted when only the prior was known (first poll in 2 s, a quarter of its 8 s), the
    task's first poll moves when three tasks finish in about 0.6 s: due then at once."""
    model = ProcessingModel(base=8.0, per_char=0.0, rng=random.Random(5))
    finished = [(50, 0.5, 0.7), (60, 0.6, 0.8), (70, 0.7, 0.9)]
    before, woke = await _first_poll_around_learning(model, 0.3, finished)
    assert before == []
    assert len(woke) == 1
    assert 0.3 <= woke[0] < 1.0  # not the 2 s of the prior's guess


@pytest.mark.anyio
async def test_a_small_change_of_the_fit_leaves_waiting_tasks_asleep() -> None:
    model = ProcessingModel(base=1.0, per_char=0.0, rng=random.Random(5))
    model.learn([(50, 0.9, 1.1)] * 3)
    # 1.0 s → 1.01 s: not worth waking anyone
    _, woke = await _first_poll_around_learning(model, 0.2, [(50, 0.95, 1.15)])
    assert woke[0] >= 1.0
