"""TTS.ai synthesis: POST /v1/tts/ (JSON) and POST /v1/tts/clone/ (multipart)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from runner.sandbox import forms, probe
from runner.sandbox.audio import AudioRequest
from runner.sandbox.emulator import Route
from runner.sandbox.exchange import Call, Reply
from runner.sandbox.ids import digest
from runner.sandbox.ledger import Operation
from runner.sandbox.schema import Field, Invalid, Kind, check, number
from runner.sandbox.ttsai.catalog import FORMATS, MODELS, VOICES, Model, clone_credits, tts_credits

if TYPE_CHECKING:
    from runner.sandbox.accounts import Account
    from runner.sandbox.ttsai.app import TTSAI

__all__ = ["SpeechEndpoints"]

S = (Kind.STR,)
TTS_FIELDS = (
    Field("model", S),
    Field("text", S),
    Field("voice", S),
    Field("format", S, choices=tuple(FORMATS)),
    Field("speed", (Kind.NUMBER,), lo=0.5, hi=2.0),
    Field("language", S),
    Field("stream", (Kind.BOOL,)),
    Field("webhook_url", S),  # documented for long tasks; accepted and not called back
)
CLONE_FIELDS = ("reference_audio", "text", "model", "format", "language")
REFERENCE_TYPES = ("wav", "mp3", "flac", "ogg", "m4a", "webm")


class SpeechEndpoints:
    def __init__(self, emulator: TTSAI) -> None:
        self.emu = emulator

    def routes(self) -> Sequence[Route]:
        return [
            Route("POST", "/v1/tts/", self.tts, Operation.SYNTHESIZE, hot=True, audio=True),
            Route("POST", "/v1/tts/clone/", self.clone, Operation.SYNTHESIZE, hot=True, audio=True),
        ]

    def _bad(self, call: Call, field: str, problem: str, expected: str) -> Exception:
        return call.reject(
            field,
            problem,
            expected,
            status=400,
            code="bad_request",
            message=f"Invalid request: {field}: {problem}.",
        )

    def _model(self, call: Call, model_id: str) -> Model:
        model = MODELS.get(model_id)
        if model is None:
            raise call.refuse(404, "not_found", f"Model {model_id!r} not found.")
        return model

    def _text(self, call: Call, account: Account, text: object) -> str:
        if not isinstance(text, str) or not text.strip():
            raise self._bad(call, "text", "missing or empty", "the text to speak")
        max_chars = self.emu.config.plan(account.config.plan).max_chars
        if len(text) > max_chars:
            raise self._bad(call, "text", f"{len(text)} characters", f"at most {max_chars}")
        return text

    def _language(self, call: Call, model: Model, language: str | None) -> str:
        if language and language != "auto" and language not in model.languages:
            raise call.refuse(
                400, "bad_request", f"Model {model.id} does not support language {language!r}."
            )
        return language or "auto"

    async def _speak(
        self, call: Call, account: Account, audio: AudioRequest, credits: int, *, stream: bool
    ) -> Reply:
        if not account.can_pay(credits):
            raise call.refuse(
                402,
                "insufficient_credits",
                "You do not have enough credits for this request.",
                credits_required=credits,
                credits_available=max(0, int(account.balance)),
            )
        account.pay(credits)
        call.charge(credits)
        data = await self.emu.ctx.audio.render(audio)
        fmt, mime = FORMATS[audio.fmt.value]
        headers = self.emu.credits_headers(credits, account)
        return Reply(200, data, mime, headers, audio=fmt, chunked=stream)

    async def tts(self, call: Call) -> Reply:
        emu = self.emu
        account = emu.admit(call)
        if emu.media_type(call) != "application/json":
            raise self._bad(
                call, "Content-Type", emu.media_type(call) or "missing", "application/json"
            )
        body = await emu.json_body(call)
        try:
            check(call, body, TTS_FIELDS)
        except Invalid as error:
            raise call.refuse(400, "bad_request", f"Invalid request: {error}.") from None
        for name in ("model", "voice"):
            if not body.get(name):
                raise self._bad(call, name, "missing", f"{name} (required)")
        model = self._model(call, str(body["model"]))
        text = self._text(call, account, body.get("text"))
        voice_id = str(body["voice"])
        known = any(v.model == model.id and v.id == voice_id for v in VOICES)
        if not known and not account.config.adopt_unknown_voices:
            raise call.refuse(404, "not_found", f"Voice {voice_id!r} not found for {model.id}.")
        language = self._language(call, model, _str(body.get("language")))
        fmt, _ = FORMATS[str(body.get("format", "mp3"))]
        stream = bool(body.get("stream", False))
        if stream and not model.supports_streaming:
            raise call.refuse(400, "bad_request", f"Model {model.id} does not support streaming.")
        audio = AudioRequest(
            text=text,
            voice=f"ttsai:{model.id}:{voice_id}",
            fmt=fmt,
            sample_rate=emu.config.sample_rate,
            speed=number(body, "speed", 1.0),
            language=language,
        )
        params = {k: v for k, v in body.items() if k not in ("text", "stream", "webhook_url")}
        call.describe(text=text, voice=audio.voice, params=params)
        return await self._speak(call, account, audio, tts_credits(model, len(text)), stream=stream)

    async def clone(self, call: Call) -> Reply:
        emu = self.emu
        account = emu.admit(call)
        if emu.media_type(call) != "multipart/form-data":
            raise self._bad(
                call, "Content-Type", emu.media_type(call) or "missing", "multipart/form-data"
            )
        form = await emu.form(call)
        forms.check_fields(call, form, CLONE_FIELDS)
        uploads = forms.files(form, "reference_audio")
        if not uploads:
            raise self._bad(call, "reference_audio", "missing", "an audio file")
        reference = forms.file_bytes(uploads[0])
        if len(reference) > emu.config.max_upload_bytes:
            raise emu.too_large(call)
        if probe.sniff(reference) not in REFERENCE_TYPES:
            raise self._bad(call, "reference_audio", "not an audio file", "wav, mp3, flac, ...")
        model = self._model(call, forms.text(form, "model") or "chatterbox")
        if not model.supports_cloning:
            raise call.refuse(400, "bad_request", f"Model {model.id} does not support cloning.")
        text = self._text(call, account, forms.text(form, "text"))
        fmt_name = forms.text(form, "format") or "mp3"
        if fmt_name not in FORMATS:
            raise self._bad(call, "format", repr(fmt_name), " | ".join(FORMATS))
        language = self._language(call, model, forms.text(form, "language"))
        audio = AudioRequest(
            text=text,
            voice=f"ttsai-clone:{model.id}:{digest(reference.hex())}",
            fmt=FORMATS[fmt_name][0],
            sample_rate=emu.config.sample_rate,
            language=language,
        )
        call.describe(text=text, voice=audio.voice, params={"format": fmt_name})
        return await self._speak(call, account, audio, clone_credits(len(text)), stream=False)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None
