"""IndexTTS (lipvoice open API): asynchronous tasks — create, poll, download within 24 hours.

Every reply is an envelope `{code, data, msg}`; `code` 7 means an error even when the HTTP
status is 200, so the envelope, not the status, decides. The task life cycle:

    POST /tts/create → {taskId, status: 1 | 2, voiceUrl}
    GET  /tts/result?taskId= → status 1 processing, 2 done (voiceUrl), 3 failed
    GET  voiceUrl (with the sign header) → the WAV, for 24 hours after completion

Voice models (`clone:`) and emotion references (`emotion_ref:`) are created on demand and
remembered; see `indextts_assets`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Final

import anyio

from runner.errors import (
    OutOfCredit,
    PermanentError,
    ProviderError,
    RateLimited,
    ResultExpired,
    SubmitAmbiguous,
    TransientError,
    Unauthorized,
    Unsupported,
)
from runner.limits import POLL, download_priority
from runner.manifest.params import FileRef, ParamValue, hash_file
from runner.providers.base import (
    Audio,
    Mode,
    Provider,
    Quota,
    Request,
    Submission,
    TaskState,
    TaskStatus,
    VoiceModel,
)
from runner.providers.context import ProviderContext
from runner.providers.http import Http, Reply, retry_after_seconds
from runner.providers.indextts_assets import IndexAssets, ReferenceGone

__all__ = ["IndexTTSProvider"]

DEFAULT_BASE: Final = "https://openapi.lipvoice.cn"
API: Final = "/api/third"
#: NOTE: the vendor documents no rate limit and no Retry-After for "too frequent"; wait this long.
TOO_FREQUENT_WAIT: Final = 5.0
_STATES: Final = {1: TaskState.PROCESSING, 2: TaskState.DONE, 3: TaskState.FAILED}


class NotFoundPage(PermanentError):
    """The plain-text 404 page: an endpoint this account lacks, or a URL that expired."""


class IndexTTSProvider(Provider):
    mode: ClassVar[Mode] = Mode.TASK
    kind: ClassVar[str] = "indextts"

    def __init__(self, context: ProviderContext) -> None:
        super().__init__(context)
        # The vendor's own CLI reads INDEX_BASE_URL; a manifest's base_url wins over it.
        default = context.environ.get("INDEX_BASE_URL") or os.environ.get("INDEX_BASE_URL")
        self.base = context.urls(default or DEFAULT_BASE)[0].rstrip("/")
        self.sign = context.secret("sign_env")
        timeout = float(context.account.options.get("timeout", 60))  # type: ignore[arg-type]
        self.http = Http(context, timeout=timeout, headers={"sign": self.sign})
        self.assets = IndexAssets(self)

    async def aclose(self) -> None:
        await self.http.aclose()

    # -- the envelope ------------------------------------------------------------------------

    async def call(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        reply = await self.http.send(method, f"{self.base}{API}{path}", **kwargs)
        return self.data(reply, what)

    def data(self, reply: Reply, what: str) -> Any:
        if reply.status == 404 and not reply.content_type.endswith("json"):
            raise NotFoundPage(
                f"{what}: IndexTTS has no such page (HTTP 404)", account=self.account
            )
        if reply.status == 429:  # a throttling proxy in front of the API: wait, do not give up
            raise RateLimited(
                f"{what}: IndexTTS answered HTTP 429 (too many requests)",
                account=self.account,
                status=429,
                retry_after=retry_after_seconds(reply.headers.get("retry-after")),
            )
        if reply.status >= 500 or reply.status in (408, 502, 503, 504):
            raise TransientError(
                f"{what}: IndexTTS answered HTTP {reply.status}: {reply.text(120)}",
                account=self.account,
                status=reply.status,
            )
        try:
            envelope = json.loads(reply.body)
        except ValueError:
            raise TransientError(
                f"{what}: IndexTTS answered HTTP {reply.status} with something that is not JSON "
                f"({reply.content_type or 'no content type'}): {reply.text(80)!r}",
                account=self.account,
            ) from None
        if not isinstance(envelope, dict) or not isinstance(envelope.get("code"), int):
            raise TransientError(
                f"{what}: IndexTTS answered without its {{code, data, msg}} envelope",
                account=self.account,
            )
        if envelope["code"] == 0:
            return envelope.get("data")
        raise self.error(str(envelope.get("msg", "")), what)

    def error(self, msg: str, what: str) -> Exception:
        """Code 7 covers everything; its message tells the kinds apart."""
        low = msg.lower()
        said = f"{what}: IndexTTS says: {msg}"
        if "频繁" in msg or "too frequent" in low:
            return RateLimited(said, account=self.account, retry_after=TOO_FREQUENT_WAIT)
        if "额度" in msg or "余额" in msg or "quota" in low:
            return OutOfCredit(said, account=self.account)
        if "sign" in low:
            return Unauthorized(f"{what}: IndexTTS refused the sign ({msg})", account=self.account)
        if "参考音频" in msg and ("不存在" in msg or "过期" in msg):
            return ReferenceGone(said, account=self.account)
        return PermanentError(said, account=self.account)

    # -- tasks -------------------------------------------------------------------------------

    async def submit(self, request: Request) -> Submission:
        try:
            return await self._create(request, await self.body(request))
        except ReferenceGone:
            # The emotion reference expired or was deleted behind our back: upload it anew.
            self.assets.forget_reference(request.params)
            return await self._create(request, await self.body(request))

    async def _create(self, request: Request, body: dict[str, object]) -> Submission:
        """Create the task. A create that left and then failed may still have made a (paid)
        task, so before sending it again we look for that task in the account's task list."""
        sent: list[float] = []

        async def on_send() -> None:
            await request.on_send()
            sent.append(time.time())

        async def create() -> Submission:
            try:
                data = await self.call(
                    "POST", "/tts/create", "create task", json=body, on_send=on_send
                )
            except TransientError:
                if sent and (found := await self._look_for(request, sent[0])) is not None:
                    return found
                raise
            task_id, status, url = self._task_view(data, "create task")
            done = status == TaskState.DONE and url
            return Submission(task_id, url if done else None, cost=float(len(request.text)))

        return await self.http.retrying(create, "create task")

    async def _look_for(self, request: Request, since: float) -> Submission | None:
        try:
            return await self.find_task(request, since)
        except ProviderError as exc:
            raise SubmitAmbiguous(
                f"create task: the request may have made a task, and the task list could not be "
                f"checked ({exc}); the next run checks again before sending anything",
                account=self.account,
            ) from exc

    async def body(self, request: Request) -> dict[str, object]:
        """The /tts/create body: exactly the keys public clients of this API send."""
        params = request.params
        genre = int(_number(params.get("genre", 0)))
        style = params.get("style", 2 if genre in (1, 2) else 1)
        body: dict[str, object] = {
            "content": request.text,
            "audioId": await self.assets.audio_id(params),
            "style": str(style),  # a string, "1" | "2" | "3"
            "genre": genre,
            "speed": float(_number(params.get("speed", 1.0))),
        }
        if genre == 1:
            emotion = params.get("emotion", {})
            assert isinstance(emotion, Mapping)
            body["ext"] = {name: float(_number(w)) for name, w in emotion.items()}
        if genre == 2:
            ref = params["emotion_ref"]
            assert isinstance(ref, FileRef)
            body["emotionPath"] = await self.assets.emotion_path(ref)
        return body

    def _task_view(self, data: object, what: str) -> tuple[str, TaskState, str]:
        if not isinstance(data, Mapping) or not isinstance(data.get("taskId"), str):
            raise TransientError(f"{what}: the reply names no taskId", account=self.account)
        state = _STATES.get(data.get("status"))  # type: ignore[arg-type]
        if state is None:
            raise TransientError(
                f"{what}: unknown task status {data.get('status')!r}", account=self.account
            )
        return data["taskId"], state, str(data.get("voiceUrl") or "")

    async def poll(self, task_id: str) -> TaskStatus:
        async def result() -> TaskStatus:
            data = await self.call(
                "GET", "/tts/result", "task result", params={"taskId": task_id}, priority=POLL
            )
            _, state, url = self._task_view(data, "task result")
            if state == TaskState.DONE and not url:
                raise TransientError("task result: done but no voiceUrl", account=self.account)
            return TaskStatus(state, url or None)

        return await self.http.retrying(result, "task result")

    async def download(self, url: str, expires_at: float | None = None) -> Audio:
        priority = download_priority(expires_at if expires_at is not None else 0.0)

        async def fetch() -> Audio:
            reply = await self.http.send("GET", url, priority=priority)
            if reply.status == 404:
                raise ResultExpired(
                    "the result's voiceUrl no longer serves the audio (expired after 24 hours?)",
                    account=self.account,
                )
            if reply.content_type in ("application/json", "text/json"):
                self.data(reply, "download")  # an envelope here is an error; raises
            if reply.status != 200:
                self.data(reply, "download")
                raise TransientError(f"download: HTTP {reply.status}", account=self.account)
            return Audio(reply.body, "wav")

        return await self.http.retrying(fetch, "download")

    async def find_task(self, request: Request, since: float) -> Submission | None:
        """The task a create call may have made before the runner lost track of it.

        Matches on text and voice among the account's tasks created since `since` (epoch
        seconds, with a margin for clock skew). Pages newest first, at most 20 per page.
        """
        audio_id = await self.assets.audio_id(request.params, create=False)
        if audio_id is None:
            return None  # its voice model was never created, so neither was the task
        page = 1
        while True:
            data = await self.list_page("/tts/list", page, 20, "list tasks")
            items = data.get("list", [])
            for item in items:
                created = _epoch(str(item.get("createdAt", "")))
                if created is not None and created < since - 300:
                    return None
                if item.get("status") == 3:
                    continue  # a failed task is no result to collect
                if item.get("content") == request.text and item.get("audioId") == audio_id:
                    _, state, url = self._task_view(item, "list tasks")
                    return Submission(item["taskId"], url if state == TaskState.DONE else None)
            if not items or page * 20 >= int(data.get("total", 0)):
                return None
            page += 1

    async def list_page(self, path: str, page: int, size: int, what: str) -> Mapping[str, Any]:
        """One page of a paged list endpoint: `{list, total, page, pageSize}`."""

        async def fetch() -> Mapping[str, Any]:
            data = await self.call("GET", path, what, params={"page": page, "pageSize": size})
            if not isinstance(data, Mapping) or not isinstance(data.get("list", []), list):
                raise TransientError(f"{what}: the reply is not a paged list", account=self.account)
            return data

        return await self.http.retrying(fetch, what)

    # -- management --------------------------------------------------------------------------

    async def list_voices(self) -> list[VoiceModel]:
        return await self.assets.list_models()

    async def create_voice(
        self, name: str, audio: Any, *, describe: str = "", texts: Any = ()
    ) -> VoiceModel:
        del texts  # IndexTTS transcribes nothing; a model is one recording
        if len(audio) != 1:
            raise Unsupported("an IndexTTS voice model is made from exactly one recording")
        sha256, _ = await anyio.to_thread.run_sync(hash_file, audio[0])
        model = await self.assets.create_model(name, audio[0], describe)
        # a run whose `clone:` names this recording speaks with it instead of making another
        self.assets.remember_model(sha256, model.id)
        return model

    async def delete_voice(self, voice_id: str) -> None:
        await self.assets.delete_model(voice_id)

    async def quota(self) -> Quota:
        try:
            data = await self.http.retrying(
                lambda: self.call("GET", "/user/quota", "quota"), "quota"
            )
        except NotFoundPage:
            raise Unsupported(
                "this IndexTTS account has no quota endpoint (it answers 404); "
                "see the remaining characters in the web console"
            ) from None
        data = data if isinstance(data, Mapping) else {}
        return Quota(_maybe(data.get("remaining")), _maybe(data.get("used")), "characters", data)


def _number(value: ParamValue | object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {value!r}")
    return value


def _maybe(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _epoch(stamp: str) -> float | None:
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None
