"""Deviations: every way a request differed from the documented API, kept for tests to inspect.

An emulator answers a deviating request as the vendor would (sometimes with success, sometimes
with an error), and also records it here. Adapter tests then assert that a whole run produced
zero deviations, which catches mistakes a lenient vendor would have let through silently.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Deviation", "DeviationLog"]


@dataclass(frozen=True)
class Deviation:
    """One departure from providers.md in one request."""

    seq: int  #: order of recording, from 1
    at: float  #: sandbox clock time
    provider: str  #: "indextts", "voxcpm", "fish_yuntts", "fishaudio_net", "ttsai"
    endpoint: str  #: method and route, e.g. "POST /api/third/tts/create"
    account: str  #: account label ("" before authentication); never a credential
    field: str  #: the body field, header or query parameter at fault ("<body>", "Authorization"...)
    problem: str  #: what was wrong with it
    expected: str  #: what the documentation asks for

    def __str__(self) -> str:
        who = f" [{self.account}]" if self.account else ""
        return (
            f"{self.provider} {self.endpoint}{who}: {self.field}: {self.problem} "
            f"(expected {self.expected})"
        )


class DeviationLog:
    """An append-only list of `Deviation`s across every emulator of one sandbox."""

    def __init__(self) -> None:
        self._items: list[Deviation] = []

    def __repr__(self) -> str:
        return f"<DeviationLog {len(self._items)} deviations>"

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Deviation]:
        return iter(tuple(self._items))

    def record(
        self,
        *,
        at: float,
        provider: str,
        endpoint: str,
        account: str,
        field: str,
        problem: str,
        expected: str,
    ) -> Deviation:
        item = Deviation(
            len(self._items) + 1, at, provider, endpoint, account, field, problem, expected
        )
        self._items.append(item)
        return item

    def snapshot(self, provider: str | None = None) -> tuple[Deviation, ...]:
        """The deviations so far, optionally of one provider only."""
        return tuple(d for d in self._items if provider is None or d.provider == provider)

    def clear(self) -> None:
        self._items.clear()
