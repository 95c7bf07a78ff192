"""IndexTTS synthesis tasks: /tts/create, /tts/result, /tts/list and the voiceUrl download."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from runner.sandbox.audio import AudioRequest
from runner.sandbox.emulator import Route
from runner.sandbox.encode import AudioFormat
from runner.sandbox.exchange import Call, Reply
from runner.sandbox.faults import FaultKind
from runner.sandbox.ids import digest
from runner.sandbox.indextts.state import Task, TaskStatus, VoiceModel, stamp
from runner.sandbox.ledger import Operation
from runner.sandbox.schema import Field, Invalid, Kind, check, integer, number

if TYPE_CHECKING:
    from runner.sandbox.accounts import Account
    from runner.sandbox.indextts.app import IndexTTS

__all__ = ["DOWNLOAD_PATH", "TaskEndpoints"]

API = "/api/third"
DOWNLOAD_PATH = "/file/download"
EMOTIONS = ("happy", "angry", "sad", "afraid", "disgusted", "melancholic", "surprised", "calm")

CREATE_FIELDS = (
    Field("content", (Kind.STR,)),
    Field("audioId", (Kind.STR,)),
    # A string in the vendor's Go struct: an integer fails binding (see the NOTE in app.py).
    Field("style", (Kind.STR,), choices=("1", "2", "3")),
    Field("speed", (Kind.NUMBER,), lo=0.5, hi=1.5),
    Field("genre", (Kind.INT,), choices=(0, 1, 2)),
    Field("ext", (Kind.OBJECT,)),
    Field("emotionPath", (Kind.STR,)),
)
EXT_FIELDS = tuple(Field(name, (Kind.NUMBER,), lo=0.0, hi=1.0) for name in EMOTIONS)


class TaskEndpoints:
    def __init__(self, emulator: IndexTTS) -> None:
        self.emu = emulator

    def routes(self) -> Sequence[Route]:
        return [
            Route(
                "POST", f"{API}/tts/create", self.create, Operation.SYNTHESIZE, hot=True, task=True
            ),
            Route("GET", f"{API}/tts/result", self.result, Operation.POLL, hot=True),
            Route("GET", f"{API}/tts/list", self.list, Operation.LIST),
            Route(
                "GET",
                f"{DOWNLOAD_PATH}/{{name}}",
                self.download,
                Operation.DOWNLOAD,
                hot=True,
                audio=True,
            ),
        ]

    async def create(self, call: Call) -> Reply:
        emu = self.emu
        account = emu.admit(call)
        if emu.media_type(call) != "application/json":
            call.deviate("Content-Type", f"{emu.media_type(call) or 'missing'}", "application/json")
        body = await emu.json_body(call)
        try:
            check(call, body, CREATE_FIELDS)
            ext = body.get("ext") or {}
            assert isinstance(ext, dict)
            check(call, ext, EXT_FIELDS, prefix="ext.")
        except Invalid as error:
            raise emu.binding_error(call, error, "TtsCreateReq") from None
        weights = {name: number(ext, name, 0.0) for name in EMOTIONS if name in ext}
        task = self._task(call, account, body, weights)
        emu.tasks[task.task_id] = task
        account.pay(task_chars := len(task.content))
        call.describe(text=task.content, voice=task.voice, params={"speed": task.speed})
        # A task that will never succeed loses what was paid; any other task can be found again
        # through /tts/list, so losing this reply loses nothing.
        succeeds = not task.failed and task.ready_at is not None
        call.delivered = call.delivered and succeeds
        call.charge(task_chars, retrievable=succeeds)
        return emu.ok(self._view(call, task))

    def _text_and_voice(
        self, call: Call, account: Account, body: dict[str, object]
    ) -> tuple[str, VoiceModel]:
        emu, limit = self.emu, self.emu.config.max_content_chars
        content = body.get("content")
        if not isinstance(content, str) or not content.strip():
            raise emu.invalid(call, "content", "missing or empty", f"the text, 1..{limit} chars")
        if len(content) > limit:
            raise emu.invalid(call, "content", f"{len(content)} characters", f"at most {limit}")
        audio_id = body.get("audioId")
        if not isinstance(audio_id, str) or not audio_id:
            raise emu.invalid(call, "audioId", "missing", "the voice model's audioId")
        return content, emu.model_for(call, account, audio_id)

    def _check_mode(
        self, call: Call, account: Account, model: VoiceModel, body: dict[str, object], ext: bool
    ) -> None:
        """style, genre, ext and emotionPath must agree with each other and with the model."""
        emu = self.emu
        style, genre = str(body.get("style", "1")), integer(body, "genre", 0)
        emotion_path = str(body.get("emotionPath", ""))
        if genre in (1, 2) and style != "2":
            raise emu.invalid(call, "style", f"{style!r} with genre {genre}", '"2" with genre 1/2')
        if ext and genre != 1:
            call.deviate("ext", f"sent with genre {genre}", "ext only with genre 1")
        if emotion_path and genre != 2:
            call.deviate("emotionPath", f"sent with genre {genre}", "emotionPath only with genre 2")
        if style == "2" and model.level != "professional":
            raise emu.fail(call, f"该模型不支持专业版 (model {model.audio_id} is not professional)")
        if genre != 2:
            return
        if not emotion_path:
            raise emu.invalid(call, "emotionPath", "missing", "an emotionPath with genre 2")
        ref = emu.references.get(emotion_path)
        if ref is None or ref.account != account.label or ref.expires_at <= call.clock.now():
            message = f"参考音频不存在或已过期 (reference not found or expired: {emotion_path})"
            raise emu.fail(call, message)

    def _task(
        self, call: Call, account: Account, body: dict[str, object], ext: dict[str, float]
    ) -> Task:
        emu, config, now = self.emu, self.emu.config, call.clock.now()
        content, model = self._text_and_voice(call, account, body)
        self._check_mode(call, account, model, body, bool(ext))
        if not account.can_pay(len(content)):
            raise emu.fail(call, "字符额度不足 (insufficient character quota)")
        style, genre = str(body.get("style", "1")), integer(body, "genre", 0)
        speed = number(body, "speed", 1.0)
        emotion_path = str(body.get("emotionPath", "")) if genre == 2 else ""
        ext_items = tuple(sorted(ext.items())) if genre == 1 else ()
        key = digest(
            account.label, content, model.audio_id, style, genre, speed, ext_items, emotion_path
        )
        processing = config.processing_base + config.processing_per_char * len(content)
        ready_at: float | None = now + processing
        if config.instant or (config.reuse_identical and self._done_before(key, now)):
            # The page's "cached result" (see the NOTE in app.py): still charged.
            ready_at = now
        if call.fault is FaultKind.NEVER_FINISH:
            ready_at = None
        return Task(
            task_id=emu.ids.base58(),
            account=account.label,
            content=content,
            audio_id=model.audio_id,
            style=style,
            genre=genre,
            speed=speed,
            ext=ext_items,
            emotion_path=emotion_path,
            created_at=now,
            created_wall=call.clock.wall(),
            ready_at=ready_at,
            failed=call.fault is FaultKind.TASK_FAILED,
            file_id=emu.ids.hex(),
            request_key=key,
        )

    def _done_before(self, key: str, now: float) -> bool:
        ttl = self.emu.config.url_ttl
        return any(t.request_key == key and t.url_live(now, ttl) for t in self.emu.tasks.values())

    def _view(self, call: Call, task: Task) -> dict[str, object]:
        status = task.status(call.clock.now())
        url = ""
        if status is TaskStatus.DONE:
            url = f"{call.request.url.origin()}{DOWNLOAD_PATH}/{task.file_id}.wav"
        return {"taskId": task.task_id, "status": int(status), "voiceUrl": url}

    async def result(self, call: Call) -> Reply:
        account = self.emu.admit(call)
        task_id = call.request.query.get("taskId", "")
        if not task_id:
            raise self.emu.invalid(call, "taskId", "missing", "query ?taskId=")
        task = self.emu.tasks.get(task_id)
        if task is None or task.account != account.label:
            raise self.emu.fail(call, f"任务不存在 (task not found): {task_id}")
        return self.emu.ok(self._view(call, task))

    async def list(self, call: Call) -> Reply:
        account = self.emu.admit(call)
        page, size = self.emu.page(call, max_size=20)
        mine = [t for t in reversed(self.emu.tasks.values()) if t.account == account.label]
        items = [
            {
                **self._view(call, t),
                "content": t.content,
                "audioId": t.audio_id,
                "style": t.style,
                "genre": t.genre,
                "speed": t.speed,
                "characters": len(t.content),
                "createdAt": stamp(t.created_wall),
            }
            for t in mine
        ]
        return self.emu.ok(self.emu.paged(items, page, size), "获取成功")

    async def download(self, call: Call) -> Reply:
        emu = self.emu
        account = emu.admit(call)
        name = call.request.match_info["name"]
        file_id = name.removesuffix(".wav")
        task = next((t for t in emu.tasks.values() if t.file_id == file_id), None)
        now = call.clock.now()
        if task is None or not name.endswith(".wav") or not task.url_live(now, emu.config.url_ttl):
            call.code = "404"
            return Reply.text("404 page not found", 404)
        if task.account != account.label:
            raise emu.fail(call, "无权访问 (this file belongs to another account)")
        audio = await self._audio(call, task)
        return Reply(200, audio, "audio/wav", audio=AudioFormat.WAV)

    async def _audio(self, call: Call, task: Task) -> bytes:
        request = AudioRequest(
            text=task.content,
            voice=task.voice,
            fmt=AudioFormat.WAV,
            sample_rate=self.emu.config.sample_rate,
            speed=task.speed,
        )
        return await self.emu.ctx.audio.render(request)
