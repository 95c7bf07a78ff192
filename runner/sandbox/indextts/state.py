"""IndexTTS's server-side state: tasks and their life cycle, voice models, emotion references.

A task's status is a function of the sandbox clock: 1 until its processing time has passed,
then 2 (or 3 when a fault failed it); its voiceUrl works for `url_ttl` after completion.
Emotion references vanish `reference_ttl` after upload. Nothing runs in the background:
every state is computed when asked, so advancing the clock takes effect at once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import IntEnum

__all__ = ["EmotionRef", "Task", "TaskStatus", "VoiceModel", "stamp"]

#: The vendor's timestamps carry China Standard Time ("2026-04-01T10:49:24.147+08:00").
CST = dt.timezone(dt.timedelta(hours=8))


def stamp(epoch: float) -> str:
    """An epoch time in the vendor's format."""
    return dt.datetime.fromtimestamp(epoch, CST).isoformat(timespec="milliseconds")


class TaskStatus(IntEnum):
    PROCESSING = 1  #: still being synthesized
    DONE = 2  #: finished; voiceUrl is set
    FAILED = 3  #: synthesis failed


@dataclass(frozen=True)
class Task:
    task_id: str
    account: str
    content: str
    audio_id: str
    style: str
    genre: int
    speed: float
    ext: tuple[tuple[str, float], ...]
    emotion_path: str
    created_at: float  #: sandbox clock
    created_wall: float
    ready_at: float | None  #: sandbox time of completion; None: never finishes
    failed: bool
    file_id: str
    request_key: str

    def status(self, now: float) -> TaskStatus:
        if self.ready_at is None or now < self.ready_at:
            return TaskStatus.PROCESSING
        return TaskStatus.FAILED if self.failed else TaskStatus.DONE

    def url_live(self, now: float, ttl: float) -> bool:
        """The voiceUrl downloads: the task is done and its lifetime has not passed."""
        if self.status(now) is not TaskStatus.DONE:
            return False
        assert self.ready_at is not None
        return now < self.ready_at + ttl

    @property
    def voice(self) -> str:
        """The voice identity of the audio (everything but the text and the speed)."""
        return f"indextts:{self.audio_id}:{self.style}:{self.genre}:{self.ext}:{self.emotion_path}"


@dataclass(frozen=True)
class VoiceModel:
    audio_id: str
    account: str
    name: str
    describe: str
    level: str  #: "basic" or "professional"
    created_wall: float


@dataclass(frozen=True)
class EmotionRef:
    emotion_path: str
    account: str
    name: str
    created_wall: float
    expires_at: float  #: sandbox clock
