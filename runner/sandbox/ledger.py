"""The ledger: one entry per request any emulator received, and the summaries tests assert on.

Entries name accounts by label, never by credential. Times are on the sandbox clock.

Payment and loss: an entry is `paid` when the service charged for it. A paid result can still
fail to reach the client (a dropped connection, a body cut short, corrupt audio, a failed task);
such an entry is `lost` unless the result stays `retrievable` without paying again (an IndexTTS
task can be found again through `/tts/list`). Re-requesting a lost result is the right thing to
do, so `paid_twice()` leaves lost entries out unless asked to include them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Ledger", "LedgerEntry", "LedgerSummary", "Operation", "PaidTwice"]


class Operation(StrEnum):
    """What a request was for, as far as accounting cares."""

    SYNTHESIZE = "synthesize"  #: creates audio (a sync synthesis or an async task): may be paid
    POLL = "poll"  #: asks about a task
    DOWNLOAD = "download"  #: fetches a result by URL
    LIST = "list"  #: lists or describes models, references, tasks, voices
    MANAGE = "manage"  #: creates, updates or deletes a model or reference
    ACCOUNT = "account"  #: quota or balance
    TRANSCRIBE = "transcribe"  #: speech to text
    OTHER = "other"  #: anything else, including paths that match no route


@dataclass(frozen=True)
class LedgerEntry:
    seq: int
    started_at: float
    finished_at: float
    provider: str
    account: str  #: label; "" when the request named no valid account
    method: str
    endpoint: str  #: the route pattern, e.g. "/api/third/tts/result"
    operation: Operation
    status: int  #: HTTP status sent; 0 = dropped before any reply; 499 = the client went away
    code: str  #: the provider's error code ("" on success), e.g. "7", "rate_limited"
    characters: int
    cost: float  #: in the provider's unit (characters, yuan, credits)
    text_hash: str  #: sha256 prefix of the synthesized text ("" when none)
    voice: str  #: voice identity (model id, voice id, or a hash of reference audio)
    request_key: str  #: hash of everything that determines the audio
    paid: bool
    #: the complete, intact reply went out (and, for an async task, the task will finish)
    delivered: bool
    retrievable: bool  #: a paid result can be fetched later without paying again
    counted: bool  #: counted as a start by the server's rate window
    throttled: bool  #: refused because of a rate or concurrency limit (any status)
    fault: str  #: the injected fault kind, "" when none

    @property
    def lost(self) -> bool:
        """Paid for, yet the client could not have obtained the result without paying again."""
        return self.paid and not self.delivered and not self.retrievable


@dataclass(frozen=True)
class PaidTwice:
    """One request (same provider, text, voice and parameters) paid for more than once."""

    provider: str
    text_hash: str
    voice: str
    count: int
    accounts: tuple[str, ...]


@dataclass(frozen=True)
class LedgerSummary:
    provider: str | None
    account: str | None
    window: float
    requests: int
    max_starts_in_window: int
    max_in_flight: int
    throttled: int
    paid: int
    lost: int
    characters: int
    cost: float
    paid_twice: tuple[PaidTwice, ...]
    faults: dict[str, int]


class Ledger:
    """Every request of one sandbox, in order of completion."""

    def __init__(self) -> None:
        self._entries: list[LedgerEntry] = []

    def __repr__(self) -> str:
        return f"<Ledger {len(self._entries)} entries>"

    def __len__(self) -> int:
        return len(self._entries)

    def next_seq(self) -> int:
        return len(self._entries) + 1

    def record(self, entry: LedgerEntry) -> None:
        self._entries.append(entry)

    def clear(self) -> None:
        self._entries.clear()

    def entries(
        self, provider: str | None = None, account: str | None = None
    ) -> tuple[LedgerEntry, ...]:
        return tuple(_select(self._entries, provider, account))

    def max_starts_in_window(
        self,
        window: float,
        *,
        provider: str | None = None,
        account: str | None = None,
        include_refused: bool = True,
    ) -> int:
        """Most requests started within any `window` seconds (a half-open interval).

        By default every request the client sent counts, refused ones included: that is what
        a client keeping to its plan must bound. `include_refused=False` counts what the
        server's own window counted.
        """
        starts = sorted(
            e.started_at
            for e in _select(self._entries, provider, account)
            if include_refused or e.counted
        )
        # Two pointers over sorted start times: for each start, how many lie in (t - window, t].
        best, lo = 0, 0
        for hi, t in enumerate(starts):
            while starts[lo] <= t - window:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    def max_in_flight(self, *, provider: str | None = None, account: str | None = None) -> int:
        """Most requests that were open at the same moment."""
        # A sweep over start (+1) and finish (-1) events; at equal times finishes go first,
        # so back-to-back requests do not count as overlapping.
        events: list[tuple[float, int]] = []
        for e in _select(self._entries, provider, account):
            events += [(e.started_at, 1), (e.finished_at, -1)]
        events.sort()
        best = current = 0
        for _, delta in events:
            current += delta
            best = max(best, current)
        return best

    def count_429(self, *, provider: str | None = None, account: str | None = None) -> int:
        """Replies that told the client to slow down: HTTP 429 or a throttling error code."""
        return sum(
            1 for e in _select(self._entries, provider, account) if e.status == 429 or e.throttled
        )

    def creates(self, *, provider: str | None = None, account: str | None = None) -> int:
        """Synthesis requests received (sync synthesis calls and async task creations)."""
        return sum(
            1
            for e in _select(self._entries, provider, account)
            if e.operation is Operation.SYNTHESIZE
        )

    def paid(self, *, provider: str | None = None, account: str | None = None) -> int:
        return sum(1 for e in _select(self._entries, provider, account) if e.paid)

    def paid_twice(
        self, *, provider: str | None = None, include_lost: bool = False
    ) -> list[PaidTwice]:
        """Requests paid more than once. Lost payments are left out unless `include_lost`."""
        groups: dict[tuple[str, str], list[LedgerEntry]] = {}
        for e in _select(self._entries, provider, None):
            if e.paid and (include_lost or not e.lost):
                groups.setdefault((e.provider, e.request_key), []).append(e)
        return [
            PaidTwice(
                provider=p,
                text_hash=es[0].text_hash,
                voice=es[0].voice,
                count=len(es),
                accounts=tuple(sorted({e.account for e in es})),
            )
            for (p, _), es in groups.items()
            if len(es) > 1
        ]

    def summary(
        self, window: float, *, provider: str | None = None, account: str | None = None
    ) -> LedgerSummary:
        selected = list(_select(self._entries, provider, account))
        return LedgerSummary(
            provider=provider,
            account=account,
            window=window,
            requests=len(selected),
            max_starts_in_window=self.max_starts_in_window(
                window, provider=provider, account=account
            ),
            max_in_flight=self.max_in_flight(provider=provider, account=account),
            throttled=self.count_429(provider=provider, account=account),
            paid=sum(1 for e in selected if e.paid),
            lost=sum(1 for e in selected if e.lost),
            characters=sum(e.characters for e in selected if e.paid),
            cost=round(sum(e.cost for e in selected if e.paid), 6),
            paid_twice=tuple(
                p
                for p in self.paid_twice(provider=provider)
                if account is None or account in p.accounts
            ),
            faults=dict(Counter(e.fault for e in selected if e.fault)),
        )


def _select(
    entries: Iterable[LedgerEntry], provider: str | None, account: str | None
) -> Iterable[LedgerEntry]:
    return (
        e
        for e in entries
        if (provider is None or e.provider == provider)
        and (account is None or e.account == account)
    )
