"""What a run leaves in the state database's `events` table, for the report and for `status`:
the events that say something went differently than planned (retries, 429s, warnings...).
Request starts (`start`, polls and downloads included) are written by the account's limiter
through `ProviderContext.on_start`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final

from runner.store import Store

__all__ = ["JOURNALED", "StoreSink"]

#: Event kinds worth keeping beside the state, with their fields as JSON detail.
JOURNALED: Final = frozenset(
    {
        "retry",
        "rate_limited",
        "re_request",
        "segment_failed",
        "segment_deferred",
        "account_stopped",
        "warning",
        "reconciled",
    }
)


class StoreSink:
    """An `events.Sink` writing the JOURNALED kinds of one run into the state database."""

    def __init__(self, store: Store, run: int) -> None:
        self.store, self.run = store, run

    def emit(self, kind: str, fields: Mapping[str, object]) -> None:
        if kind not in JOURNALED:
            return
        account, key = fields.get("account"), fields.get("key")
        rest = {k: v for k, v in fields.items() if k not in ("account", "key")}
        self.store.record_event(
            self.run,
            kind,
            account=None if account is None else str(account),
            key=None if key is None else str(key),
            detail=json.dumps(rest, ensure_ascii=False, default=str),
        )

    def close(self) -> None:
        pass
