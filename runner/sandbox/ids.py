"""Deterministic identifiers: the same sandbox seed and the same order of requests give the same
task ids, model ids and file names, so whole rehearsals repeat exactly."""

from __future__ import annotations

import hashlib
import itertools
import json

__all__ = ["IdMaker", "digest"]

_ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def digest(*parts: object, length: int = 16) -> str:
    """A short stable hash of JSON-able parts (hex)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=repr).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


class IdMaker:
    """Ids of one kind (tasks, models...) for one emulator."""

    def __init__(self, seed: int, kind: str) -> None:
        self._seed = seed
        self._kind = kind
        self._counter = itertools.count(1)

    def _raw(self) -> bytes:
        return hashlib.sha256(f"{self._seed}:{self._kind}:{next(self._counter)}".encode()).digest()

    def base58(self, length: int = 26) -> str:
        """Like IndexTTS ids ("ABuVg22sQoSxZ7DFDTXqFP7dA9")."""
        n = int.from_bytes(self._raw(), "big")
        out = []
        for _ in range(length):
            n, r = divmod(n, len(_ALPHABET))
            out.append(_ALPHABET[r])
        return "".join(out)

    def hex(self, length: int = 32) -> str:
        """Like Fish model ids ("7f92f8afb8ec43bf81429cc1c9199cb1")."""
        return self._raw().hex()[:length]
