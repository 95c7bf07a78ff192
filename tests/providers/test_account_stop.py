"""An account stopped in a run (its credit ran out, its key was refused) sends no new work,
not even a request that was already waiting for a slot when it stopped; results already paid
for are still fetched."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from runner.cache import Cache
from runner.errors import AccountUnusable
from runner.events import Events
from runner.limits import POLL, download_priority
from runner.outcomes import Outcomes
from runner.plan import Segment
from runner.plans import Limits
from runner.stats import RunStats
from runner.store import Store

from .conftest import ContextFactory

pytestmark = pytest.mark.anyio


async def test_work_waiting_for_a_slot_is_not_sent_once_the_account_stops(
    make_context: ContextFactory,
) -> None:
    context = make_context("ttsai", "http://127.0.0.1:9/v1/", limits=Limits(concurrent=1))
    reasons: dict[str, str] = {}
    context.closed = lambda: reasons.get("acct", "")
    limiter = context.limiter
    sent: list[str] = []
    refused: list[str] = []
    release = anyio.Event()

    async def request(name: str, priority: tuple[int, float] | None = None) -> None:
        try:
            slot = context.slot() if priority is None else context.slot(priority)
            async with slot:
                sent.append(name)
                if name == "first":
                    await release.wait()
        except AccountUnusable as exc:
            refused.append(f"{name}: {exc}")

    async with anyio.create_task_group() as tg:
        tg.start_soon(request, "first")
        await anyio.sleep(0.05)  # first holds the only slot
        tg.start_soon(request, "waiting work")
        tg.start_soon(request, "poll", POLL)
        await anyio.sleep(0.05)
        assert sent == ["first"]
        reasons["acct"] = "out of credit"  # first's reply said so
        release.set()
        await anyio.sleep(0.05)
        tg.start_soon(request, "download", download_priority(0.0))
        tg.start_soon(request, "new work")
    assert sent == ["first", "poll", "download"]
    assert sorted(refused) == [
        "new work: not sent: the account was stopped while it waited (out of credit)",
        "waiting work: not sent: the account was stopped while it waited (out of credit)",
    ]
    assert limiter.started == 3  # the refused turns were not counted as starts
    assert limiter.in_flight == 0


async def test_work_is_sent_while_the_account_is_not_stopped(
    make_context: ContextFactory,
) -> None:
    context = make_context("ttsai", "http://127.0.0.1:9/v1/")
    for closed in (None, lambda: ""):  # no run behind it (a command); a run that goes on
        context.closed = closed
        async with context.slot():
            pass
    assert context.limiter.started == 2


def test_a_budget_stop_lets_counted_work_go_and_a_refusal_closes_the_account(
    tmp_path: Path,
) -> None:
    """--max-cost stops taking segments, but those already counted against the budget (maybe
    waiting for a slot) still go; a refusal of the account's credit closes it to all work."""
    segment = Segment("k" * 64, "acct", "ttsai", "Some text.", {}, "mp3")
    with Store.open(tmp_path / "state") as store:
        outcomes = Outcomes(store, Cache(tmp_path / "cache"), Events(), RunStats(), max_cost=5.0)
        assert outcomes.affordable(segment, 4.0)
        assert not outcomes.affordable(segment, 4.0)  # 8 would pass 5: the account stops
        assert outcomes.stopped["acct"].startswith("budget reached")
        assert outcomes.closed("acct") == ""
        outcomes.stop_account("acct", "out of credit: top up")
        assert outcomes.closed("acct") == "out of credit: top up"
        assert outcomes.stopped["acct"].startswith("budget reached")  # the first reason stays
