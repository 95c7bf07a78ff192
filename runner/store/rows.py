"""The rows of the state database, as the rest of the runner sees them."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, NamedTuple

__all__ = ["CACHE", "AssetRow", "ChapterRow", "SegmentAudio", "SegmentRow", "SegmentState"]

CACHE: Final = "cache"  #: the audio cache's folder in the state directory


class SegmentState(enum.StrEnum):
    PENDING = "pending"  #: known; nothing sent yet
    SUBMITTING = "submitting"  #: a request may have left; its outcome is unknown
    SUBMITTED = "submitted"  #: a provider task exists (task_id)
    READY = "ready"  #: the task finished; its result awaits download (url)
    DONE = "done"  #: verified audio is in the cache (path, sha256)
    FAILED = "failed"  #: given up (reason)


@dataclass(frozen=True, slots=True)
class SegmentRow:
    key: str
    account: str
    kind: str
    state: SegmentState
    chars: int
    text: str
    format: str
    request_id: str | None
    task_id: str | None
    submitted_at: float | None
    url: str | None
    url_expires_at: float | None
    path: str | None
    sha256: str | None
    duration: float | None
    sample_rate: int | None
    attempts: int
    cost: float | None
    reason: str | None
    updated_at: float


class SegmentAudio(NamedTuple):
    """A done segment's audio, all that assembly and the report read of its row: a book's
    100,000 of these are held at once, and a whole row costs about three times as much.

    A file where the cache puts it (`cache/<first two>/<key>.<extension>`, the usual case) is
    held as the key (the caller's string) and a shared ".<extension>", not as a path string
    of its own (about 130 bytes each)."""

    key: str
    stored: str  #: the path relative to the state directory, or ".<extension>" (the usual place)
    sha256: str
    sample_rate: int | None
    duration: float

    @staticmethod
    def of(
        key: str,
        path: str | None,
        sha256: str,
        sample_rate: int | None,
        duration: float,
        suffixes: dict[str, str],
    ) -> SegmentAudio:
        """The audio of `key`'s row, whose file is at `path`; `suffixes` keeps one string per
        extension across the rows of one read."""
        path = path or ""
        suffix = path[path.rfind(".") :] if "." in path else ""
        if suffix and path == _usual_path(key, suffix):
            path = suffixes.setdefault(suffix, suffix)
        return SegmentAudio(key, path, sha256, sample_rate, duration)

    @property
    def _usual(self) -> bool:
        return self.stored.startswith(".") and "/" not in self.stored

    @property
    def folder(self) -> str:
        """The file's folder, relative to the state directory ("" when no file is recorded)."""
        if self._usual:
            return f"{CACHE}/{self.key[:2]}"
        return self.stored[: max(self.stored.rfind("/"), 0)]

    @property
    def name(self) -> str:
        """The file's name in `folder` ("" when no file is recorded)."""
        if self._usual:
            return self.key + self.stored
        return self.stored[self.stored.rfind("/") + 1 :]

    @property
    def path(self) -> str:
        """The file, relative to the state directory ("" when no file is recorded)."""
        return _usual_path(self.key, self.stored) if self._usual else self.stored


def _usual_path(key: str, suffix: str) -> str:
    """Where the cache puts `key`'s file (see `Cache.path_for`), relative to the state dir."""
    return f"{CACHE}/{key[:2]}/{key}{suffix}"


@dataclass(frozen=True, slots=True)
class AssetRow:
    """A voice model or reference the runner created at a provider."""

    account: str
    kind: str  #: e.g. "model", "emotion_ref"
    sha256: str  #: of the audio it was made from
    remote_id: str  #: the provider's id for it (audioId, emotionPath, ...)
    created_at: float
    expires_at: float | None
    last_used_at: float


@dataclass(frozen=True, slots=True)
class ChapterRow:
    manifest: str
    text_id: str
    fingerprint: str
    path: str
    sha256: str
    duration: float
    assembled_at: float
    size: int | None = None  #: of the file as written (None: recorded before sizes were)
    mtime_ns: int | None = None  #: its modification time then
