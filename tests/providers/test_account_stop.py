"""An account stopped in a run (its credit ran out, its key was refused) sends no new work,
not even a request that was already waiting for a slot when it stopped; results already paid
for are still fetched."""

from __future__ import annotations

import anyio
import pytest

from runner.errors import AccountUnusable
from runner.limits import POLL, download_priority
from runner.plans import Limits

from .conftest import ContextFactory

pytestmark = pytest.mark.anyio


async def test_work_waiting_for_a_slot_is_not_sent_once_the_account_stops(
    make_context: ContextFactory,
) -> None:
    context = make_context("ttsai", "http://127.0.0.1:9/v1/", limits=Limits(concurrent=1))
    reasons: dict[str, str] = {}
    context.stopped = lambda: reasons.get("acct", "")
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
    for stopped in (None, lambda: ""):  # no run behind it (a command); a run that goes on
        context.stopped = stopped
        async with context.slot():
            pass
    assert context.limiter.started == 2
