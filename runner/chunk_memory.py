"""Texts already cut into chunks, remembered in the state directory.

Cutting is the costliest part of expanding a manifest (a book of 100,000 sentences takes most
of a second), and a nightly run of an unchanged book cuts the same texts the same way again.
The chunker is deterministic: its output depends only on CHUNKER_VERSION, the limits and the
text, so those, hashed, are the key. A damaged or unreadable memory is ignored (the texts are
cut again); entries no text used in a run are dropped when it is saved.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Final

import msgpack

from runner.fsutil import atomic_write
from runner.text import CHUNKER_VERSION, chunk_text

__all__ = ["ChunkMemory", "Pairs", "cut"]

_FORMAT: Final = 1  #: of the file; a file of another format is ignored


Pairs = list[tuple[str, int]]  #: (chunk text, paragraph index) of each chunk, in order


class ChunkMemory:
    """`chunk_text` with a memory, one per manifest (manifests sharing a state directory keep
    theirs apart); `save` writes what changed (blocking)."""

    def __init__(self, directory: Path, manifest: Path) -> None:
        name = hashlib.sha256(str(manifest).encode()).hexdigest()[:16]
        self.path = directory / "chunks" / f"{name}.msgpack"
        self._known = self._load()
        self._used: dict[str, Pairs] = {}
        self._cut = False  #: whether any text was cut (not found) this time

    def _load(self) -> dict[str, Pairs]:
        try:
            document = msgpack.unpackb(self.path.read_bytes(), raw=False, use_list=False)
            if document["format"] != _FORMAT or document["chunker"] != CHUNKER_VERSION:
                return {}
            known = document["texts"]
            if not isinstance(known, dict):
                return {}
            return known
        except (OSError, ValueError, KeyError, TypeError, msgpack.UnpackException):
            return {}

    def pairs(self, text: str, max_chars: int, min_chars: int) -> Pairs:
        """`chunk_text(text, max_chars, min_chars)` as (text, paragraph) pairs."""
        key = _key(text, max_chars, min_chars)
        found = self._used.get(key) or self._known.get(key)
        if found is not None and _well_formed(found):
            self._used[key] = found
            return found
        self._cut = True
        self._used[key] = cut(text, max_chars, min_chars)
        return self._used[key]

    def save(self) -> None:
        """Write the texts of this expansion (and only those), unless nothing changed."""
        if not self._cut and self._used.keys() == self._known.keys():
            return
        document = {"format": _FORMAT, "chunker": CHUNKER_VERSION, "texts": self._used}
        try:
            atomic_write(self.path, msgpack.packb(document, use_bin_type=True))
        except OSError:
            return  # only a memory: the next run cuts again
        self._known, self._cut = self._used, False


def cut(text: str, max_chars: int, min_chars: int) -> Pairs:
    """`chunk_text` as (text, paragraph) pairs, without a memory."""
    return [(c.text, c.paragraph) for c in chunk_text(text, max_chars, min_chars)]


def _well_formed(pairs: object) -> bool:
    return isinstance(pairs, (list, tuple)) and all(
        isinstance(pair, (list, tuple))
        and len(pair) == 2
        and type(pair[0]) is str
        and type(pair[1]) is int
        for pair in pairs
    )


def _key(text: str, max_chars: int, min_chars: int) -> str:
    digest = hashlib.sha256(f"{CHUNKER_VERSION}:{max_chars}:{min_chars}:".encode())
    digest.update(text.encode())
    return digest.hexdigest()
