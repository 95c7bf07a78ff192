"""TTS.ai's catalog and speech-to-text: GET /v1/models/, GET /v1/voices/, POST /v1/stt/.

# NOTE: speech-to-text recognises audio this sandbox produced itself (byte for byte) and
# returns the text it was made from; any other audio gets an empty transcript of the right
# duration. That is enough to check that synthesized audio says what was asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from runner.sandbox import forms, probe
from runner.sandbox.emulator import Route
from runner.sandbox.exchange import Call, Reply
from runner.sandbox.ledger import Operation
from runner.sandbox.ttsai.catalog import MODELS, STT_MODELS, VOICES, stt_credits

if TYPE_CHECKING:
    from runner.sandbox.ttsai.app import TTSAI

__all__ = ["ListenEndpoints"]

STT_FIELDS = ("file", "model", "language", "timestamps", "diarize")
BOOLEANS = ("true", "false", "1", "0")


class ListenEndpoints:
    def __init__(self, emulator: TTSAI) -> None:
        self.emu = emulator

    def routes(self) -> Sequence[Route]:
        return [
            Route("GET", "/v1/models/", self.models, Operation.LIST),
            Route("GET", "/v1/voices/", self.voices, Operation.LIST),
            Route("POST", "/v1/stt/", self.stt, Operation.TRANSCRIBE),
        ]

    async def models(self, call: Call) -> Reply:
        self.emu.admit(call)
        return Reply.json({"models": [m.view() for m in MODELS.values()]})

    async def voices(self, call: Call) -> Reply:
        self.emu.admit(call)
        query = call.request.query
        for key in query:
            if key not in ("model", "language", "gender"):
                call.deviate(key, "not a documented query parameter", "model, language, gender")
        origin = call.request.url.origin()
        voices = [
            {
                "id": v.id,
                "name": v.name,
                "model": v.model,
                "language": v.language,
                "gender": v.gender,
                "preview_url": f"{origin}/v1/voices/preview/{v.id}.mp3",
            }
            for v in VOICES
            if all(query.get(k) in (None, getattr(v, k)) for k in ("model", "language", "gender"))
        ]
        return Reply.json({"voices": voices, "total": len(voices)})

    async def _upload(self, call: Call) -> tuple[forms.Form, bytes]:
        """The form and its audio `file`, checked; the `model` must be a speech-to-text one."""
        emu = self.emu
        if emu.media_type(call) != "multipart/form-data":
            raise call.reject(
                "Content-Type",
                emu.media_type(call) or "missing",
                "multipart/form-data",
                status=400,
                code="bad_request",
            )
        form = await emu.form(call)
        forms.check_fields(call, form, STT_FIELDS)
        uploads = forms.files(form, "file")
        if not uploads:
            raise call.reject("file", "missing", "an audio file", status=400, code="bad_request")
        data = forms.file_bytes(uploads[0])
        if len(data) > emu.config.max_stt_bytes:
            raise emu.too_large(call)
        model = forms.text(form, "model") or "whisper"
        if model not in STT_MODELS:
            raise call.refuse(404, "not_found", f"Model {model!r} not found.")
        for flag in ("timestamps", "diarize"):
            value = forms.text(form, flag)
            if value is not None and value.lower() not in BOOLEANS:
                raise call.reject(flag, repr(value), "true | false", status=400, code="bad_request")
        return form, data

    async def stt(self, call: Call) -> Reply:
        emu = self.emu
        account = emu.admit(call)
        form, data = await self._upload(call)
        seconds = probe.duration(data)
        if seconds is None:
            raise call.refuse(400, "bad_request", "The file is not audio the service can decode.")
        credits = stt_credits(seconds)
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
        heard = emu.ctx.audio.recognise(data)
        text = heard.text if heard else ""
        spoken = heard.language if heard and heard.language != "auto" else None
        segment: dict[str, object] = {"start": 0.0, "end": round(seconds, 3), "text": text}
        if (forms.text(form, "diarize") or "").lower() in ("true", "1"):
            segment["speaker"] = "SPEAKER_00"
        body = {
            "text": text,
            "language": spoken or forms.text(form, "language") or "en",
            "duration": round(seconds, 3),
            "segments": [segment] if text else [],
        }
        return Reply.json(body, headers=emu.credits_headers(credits, account))
