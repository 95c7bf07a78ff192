"""One limiter per provider account for the whole process, whichever manifests use it.

Limits belong to the account, not to a manifest: several books run together against one
TTS.ai key must share its plan. An account is known by what it really is — its kind, the URLs
it is reached at and its credential (see `limit_history.account_identity`) — so two manifests
naming one key differently share a limiter, and two keys of one kind do not.

The limiter is seeded with the starts earlier runs made in its window (the account history),
and every start is written there, so a run started right after another keeps to the plan.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from runner.limit_history import LimitHistory, account_identity, history_path
from runner.limits import Limiter
from runner.manifest.model import Account

__all__ = ["Pacing"]


@dataclass
class Pacing:
    environ: Mapping[str, str] | None = None  #: where TTS_RUNNER_HOME is read (os.environ)
    keep_history: bool = True  #: False for rehearsals: the sandbox is a fresh account
    limiters: dict[str, tuple[Limiter, Account]] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)  #: accounts given different limits
    _history: LimitHistory | None = None

    def limiter(self, account: Account, urls: Sequence[str], environ: Mapping[str, str]) -> Limiter:
        """The process's limiter of `account` (reached at `urls`, credentials in `environ`)."""
        secret = "\n".join(environ.get(var, "") for _, var in sorted(account.credentials.items()))
        identity = account_identity(account.kind, urls or account.base_urls, secret)
        if identity in self.limiters:
            limiter, first = self.limiters[identity]
            if first.limits != account.limits:
                self.conflicts.append(
                    f"account `{account.name}` ({account.defined_in or 'implicit'}) is the "
                    f"same account as `{first.name}` ({first.defined_in or 'implicit'}) with "
                    f"other limits; the first one's apply to both: {first.limits}"
                )
            return limiter
        limiter = self._new(account, identity)
        self.limiters[identity] = (limiter, account)
        return limiter

    def _new(self, account: Account, identity: str) -> Limiter:
        window = account.limits.per_seconds
        history = self._open_history() if account.limits.requests is not None else None
        if history is None or not window:
            return Limiter(account.limits)
        offset = time.time() - time.monotonic()  # wall clock − the limiter's clock
        limiter = Limiter(account.limits, log=history.log_for(identity, window, offset))
        limiter.remember([at - offset for at in history.recent(identity, window)])
        return limiter

    def _open_history(self) -> LimitHistory | None:
        if self.keep_history and self._history is None:
            self._history = LimitHistory.open(history_path(self.environ))
        return self._history

    @property
    def history_failures(self) -> int:
        return self._history.failures if self._history is not None else 0

    @property
    def history_file(self) -> str:
        return str(self._history.path) if self._history is not None else ""

    def close(self) -> None:
        if self._history is not None:
            self._history.close()
            self._history = None
