"""The contract between the scheduler and a provider adapter.

Like an httpx transport, an adapter is narrow and injected: the scheduler hands it a `Request`
and gets back `Audio` (synchronous APIs) or a task to poll (asynchronous APIs). It never sees
HTTP. Adapters map every failure onto the error tree in `runner.errors`.

```
SYNC:  synthesize(request) ─▶ Audio
       synthesize(request) ─▶ Stored(url) ─▶ fetch(request, url) ─▶ Audio
TASK:  submit(request) ─▶ Submission(task_id) ─▶ poll(task_id) ─▶ TaskStatus(url)
       ─▶ download(url) ─▶ Audio
```
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import ClassVar

from runner.errors import Unsupported
from runner.manifest.params import ParamValue
from runner.plans import PRESETS, PlanPreset
from runner.providers.context import ProviderContext

__all__ = [
    "Audio",
    "Mode",
    "Provider",
    "Quota",
    "Request",
    "Stored",
    "Submission",
    "TaskState",
    "TaskStatus",
    "VoiceModel",
]


class Mode(enum.StrEnum):
    SYNC = "sync"  #: one call returns the audio
    TASK = "task"  #: submit, poll, download


async def _nothing() -> None:
    pass


@dataclass(frozen=True)
class Request:
    """One segment's synthesis, as the adapter needs it."""

    key: str  #: the segment key (stable across runs)
    text: str
    params: Mapping[str, ParamValue]  #: the voice parameters, resolved for this chunk
    request_id: str  #: identity of this segment's request, for reconciliation
    #: Awaited right before the paid request leaves (after its limiter slot is granted), so
    #: the scheduler can record it durably first (write-ahead).
    on_send: Callable[[], Awaitable[None]] = field(default=_nothing, compare=False, repr=False)


@dataclass(frozen=True)
class Audio:
    data: bytes
    format: str  #: wav, mp3, opus, flac, pcm
    sample_rate: int | None = None  #: required for headerless pcm
    cost: float | None = None  #: what the provider reported this cost, in its own unit


@dataclass(frozen=True)
class Stored:
    """A synchronous API's paid result, left at `url` to be downloaded (Fish `stream: false`,
    fishaudio.net `cache: true`). The scheduler records it before `fetch`ing it, so a run that
    stops in between downloads it next time instead of paying for it again."""

    url: str
    cost: float | None = None  #: what the provider reported this cost, in its own unit


class TaskState(enum.StrEnum):
    PROCESSING = "processing"  #: not finished yet
    DONE = "done"  #: the result can be downloaded from `url`
    FAILED = "failed"  #: the provider gave up on the task


@dataclass(frozen=True)
class Submission:
    task_id: str
    url: str | None = None  #: set when the provider answered with a finished result at once
    cost: float | None = None


@dataclass(frozen=True)
class TaskStatus:
    state: TaskState
    url: str | None = None
    message: str = ""


@dataclass(frozen=True)
class VoiceModel:
    """A voice model (or reference) that lives at the provider."""

    id: str
    name: str
    details: Mapping[str, object] = field(default_factory=dict)  #: as the provider describes it


@dataclass(frozen=True)
class Quota:
    remaining: float | None
    used: float | None
    unit: str  #: characters, credits, yuan...
    details: Mapping[str, object] = field(default_factory=dict)


class Provider:
    """Base of every adapter. Subclasses implement the methods of their `mode`."""

    mode: ClassVar[Mode] = Mode.SYNC
    kind: ClassVar[str] = ""
    #: Whether requests cost money: their write-ahead record is then fsynced before they leave.
    paid: ClassVar[bool] = True

    def __init__(self, context: ProviderContext) -> None:
        self.context = context
        self.account = context.account.name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} account={self.account!r}>"

    async def __aenter__(self) -> Provider:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release connections; called once when the run ends."""

    async def synthesize(self, request: Request) -> Audio | Stored:
        """The audio, or (when the voice asks the API to keep it) where the paid result waits."""
        raise NotImplementedError(f"{self.kind} is not a synchronous provider")

    async def fetch(self, request: Request, url: str) -> Audio:
        """Download the `Stored` result of `request`. Raises ResultExpired once it is gone."""
        raise NotImplementedError(f"{self.kind} does not store results")

    async def submit(self, request: Request) -> Submission:
        raise NotImplementedError(f"{self.kind} has no tasks")

    async def poll(self, task_id: str) -> TaskStatus:
        raise NotImplementedError(f"{self.kind} has no tasks")

    async def download(self, url: str, expires_at: float | None = None) -> Audio:
        """The result at `url`; `expires_at` (epoch seconds) ranks it among other downloads."""
        raise NotImplementedError(f"{self.kind} has no tasks")

    async def find_task(self, request: Request, since: float) -> Submission | None:
        """The task a create call made before the runner lost track of it, if any."""
        raise NotImplementedError(f"{self.kind} has no tasks")

    # -- account management (the `voices` and `quota` commands); not every API has them ------

    async def list_voices(self) -> list[VoiceModel]:
        raise Unsupported(f"{self.kind} has no API to list voice models")

    async def create_voice(
        self, name: str, audio: Sequence[Path], *, describe: str = "", texts: Sequence[str] = ()
    ) -> VoiceModel:
        raise Unsupported(f"{self.kind} has no API to create voice models")

    async def delete_voice(self, voice_id: str) -> None:
        raise Unsupported(f"{self.kind} has no API to delete voice models")

    async def quota(self) -> Quota:
        raise Unsupported(f"{self.kind} does not report remaining credit through its API")

    def expected_cost(self, text: str, params: Mapping[str, ParamValue]) -> float:
        """What requesting `text` should cost this account, in its plan's price unit."""
        if not self.paid:
            return 0.0
        account = self.context.account
        return self.estimate_cost(text, params, PRESETS[(account.kind, account.plan)])

    @classmethod
    def estimate_cost(
        cls, text: str, params: Mapping[str, ParamValue], preset: PlanPreset
    ) -> float:
        """What synthesising `text` should cost, in `preset.price_unit`, before asking."""
        return len(text) / 1000 * preset.price_per_1k_chars
