"""Fish (yuntts) synthesis: `POST /api/v1/fish-audio/tts`, JSON or MessagePack, streamed audio
or a URL to download it from.

# NOTE: decisions where the seed is silent:
# - `sample_rate` must be one the codec can produce: 8000, 16000, 22050, 24000, 32000, 44100
#   or 48000 (opus: 8000, 12000, 16000, 24000, 48000).
# - `prosody.speed` is 0.5-2.0 and `prosody.volume` -20..20 (dB), as in Fish's own API.
# - Characters billed (X-Characters) are those of the text without `<|speaker:N|>` tags.
# - In MessagePack, a reference `audio` sent as a str is a deviation; its UTF-8 bytes are used,
#   as a lenient server would, which makes a poor clone rather than an error.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runner.sandbox.audio import AudioRequest
from runner.sandbox.emulator import Route
from runner.sandbox.encode import MP3_RATES, OPUS_RATES, AudioFormat
from runner.sandbox.exchange import Call, Reply
from runner.sandbox.ids import digest
from runner.sandbox.ledger import Operation
from runner.sandbox.schema import Field, Invalid, Kind, check, integer, number

if TYPE_CHECKING:
    from runner.sandbox.accounts import Account
    from runner.sandbox.fish_yuntts.app import FishYunTTS

__all__ = ["FishResult", "SpeechEndpoints"]

API = "/api/v1/fish-audio"
FILES = "/wp-content/uploads/audio/processed"
MODELS = ("s1", "s2-pro")
SPEAKER_TAG = re.compile(r"<\|speaker:(\d+)\|>")
NUM, INT, STR, BOOL = (Kind.NUMBER,), (Kind.INT,), (Kind.STR,), (Kind.BOOL,)
FIELDS = (
    Field("text", STR),
    Field("reference_id", (Kind.STR, Kind.LIST)),
    Field("references", (Kind.LIST,)),
    Field("temperature", NUM, lo=0, hi=1),
    Field("top_p", NUM, lo=0, hi=1),
    Field("chunk_length", INT, lo=100, hi=300),
    Field("normalize", BOOL),
    Field("format", STR, choices=("wav", "pcm", "mp3", "opus"), code="invalid_format"),
    Field("sample_rate", INT),
    Field("mp3_bitrate", INT, choices=(64, 128, 192)),
    Field("opus_bitrate", INT, choices=(-1000, 24000, 32000, 48000, 64000)),
    Field("latency", STR, choices=("normal", "balanced", "low")),
    Field("prosody", (Kind.OBJECT,)),
    Field("max_new_tokens", INT, lo=1),
    Field("repetition_penalty", NUM),
    Field("min_chunk_length", INT, lo=0, hi=100),
    Field("condition_on_previous_chunks", BOOL),
    Field("early_stop_threshold", NUM, lo=0, hi=1),
    Field("stream", BOOL),
)
PROSODY = (
    Field("speed", NUM, lo=0.5, hi=2.0),
    Field("volume", NUM, lo=-20, hi=20),
    Field("normalize_loudness", BOOL),
)
PCM_RATES = frozenset({8000, 16000, 22050, 24000, 32000, 44100, 48000})
MIME = {"mp3": "audio/mpeg", "wav": "audio/wav", "pcm": "audio/pcm", "opus": "audio/opus"}


@dataclass(frozen=True)
class FishResult:
    """A stream=false result, downloadable from its URL until `expires_at`."""

    task_id: str
    account: str
    audio: AudioRequest
    expires_at: float


class SpeechEndpoints:
    def __init__(self, emulator: FishYunTTS) -> None:
        self.emu = emulator
        self.results: dict[str, FishResult] = {}

    def routes(self) -> Sequence[Route]:
        return [
            Route("POST", f"{API}/tts", self.tts, Operation.SYNTHESIZE, hot=True, audio=True),
            Route(
                "GET",
                f"{FILES}/{{month}}/{{name}}",
                self.download,
                Operation.DOWNLOAD,
                hot=True,
                audio=True,
            ),
        ]

    async def _body(self, call: Call) -> tuple[dict[str, object], bool]:
        media = self.emu.media_type(call)
        if media == "application/json":
            return await self.emu.json_body(call), False
        if media in ("application/msgpack", "application/x-msgpack"):
            if media != "application/msgpack":
                call.deviate("Content-Type", media, "application/msgpack")
            return await self.emu.msgpack_body(call), True
        raise self.emu.invalid(
            call, "Content-Type", media or "missing", "application/json or application/msgpack"
        )

    async def _audio_request(self, call: Call, account: Account) -> tuple[AudioRequest, bool]:
        """The checked request: what to render, and whether to stream it."""
        emu = self.emu
        model = call.request.headers.get("model", "s2-pro")
        if model not in MODELS:
            raise emu.invalid(call, "model", repr(model), "s1 | s2-pro", "invalid_model")
        body, packed = await self._body(call)
        try:
            check(call, body, FIELDS)
            prosody = body.get("prosody") or {}
            assert isinstance(prosody, dict)
            check(call, prosody, PROSODY, prefix="prosody.")
        except Invalid as error:
            raise call.refuse(400, error.field.code or "invalid_params", str(error)) from None
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise emu.invalid(call, "text", "missing or empty", "the text", "missing_text")
        voice = self._voice(call, account, body, model, text, packed)
        fmt = AudioFormat(str(body.get("format", "mp3")))
        bitrate = integer(body, "mp3_bitrate", 128) * 1000 if fmt is AudioFormat.MP3 else None
        if fmt is AudioFormat.OPUS and integer(body, "opus_bitrate", -1000) > 0:
            bitrate = integer(body, "opus_bitrate", -1000)
        audio = AudioRequest(
            text=SPEAKER_TAG.sub("", text),
            voice=voice,
            fmt=fmt,
            sample_rate=self._sample_rate(call, body, fmt),
            speed=number(prosody, "speed", 1.0),
            gain_db=number(prosody, "volume", 0.0),
            bitrate=bitrate,
        )
        params = {k: v for k, v in body.items() if k not in ("text", "stream", "references")}
        call.describe(text=audio.text, voice=voice, params={**params, "model": model})
        return audio, bool(body.get("stream", True))

    async def tts(self, call: Call) -> Reply:
        emu = self.emu
        account = emu.admit(call)
        audio, stream = await self._audio_request(call, account)
        chars = len(audio.text)
        cost = round(chars * emu.config.price_per_char, 6)
        if not account.can_pay(cost):
            raise call.refuse(402, "insufficient_balance", f"balance too low for {cost} yuan")
        account.pay(cost)
        call.charge(cost)
        task_id = f"fishaudio_{emu.ids.hex(13)}"
        fmt = audio.fmt
        if stream:
            data = await emu.ctx.audio.render(audio)
            headers = {"X-Characters": str(chars), "X-Cost": _yuan(cost), "X-Task-Id": task_id}
            return Reply(200, data, MIME[fmt.value], headers, audio=fmt)
        now = call.clock.now()
        self.results[task_id] = FishResult(task_id, account.label, audio, now + emu.config.url_ttl)
        month = dt.datetime.fromtimestamp(call.clock.wall(), dt.UTC).strftime("%Y%m")
        url = f"{call.request.url.origin()}{FILES}/{month}/{task_id}.{fmt.value}"
        return Reply.json({"url": url, "chars": chars, "cost": cost, "task_id": task_id})

    def _voice(
        self,
        call: Call,
        account: Account,
        body: dict[str, object],
        model: str,
        text: str,
        packed: bool,
    ) -> str:
        """The voice identity, after checking reference_id / references."""
        emu = self.emu
        ref_id, refs = body.get("reference_id"), body.get("references")
        if ref_id is not None and refs is not None:
            raise emu.invalid(call, "references", "sent with reference_id", "one of the two")
        if ref_id is None and not refs:
            raise emu.invalid(
                call, "reference_id", "missing", "reference_id or references", "missing_reference"
            )
        tags = [int(n) for n in SPEAKER_TAG.findall(text)]
        if isinstance(ref_id, list):
            if model != "s2-pro":
                raise emu.invalid(
                    call,
                    "reference_id",
                    f"a list with model {model}",
                    "a list only with s2-pro",
                    "invalid_model",
                )
            if not ref_id or not all(isinstance(r, str) and r for r in ref_id):
                raise emu.invalid(call, "reference_id", "empty or non-string", "model id strings")
            if any(n >= len(ref_id) for n in tags):
                raise emu.invalid(
                    call,
                    "text",
                    f"<|speaker:{max(tags)}|> with {len(ref_id)} ids",
                    "speaker N < len(reference_id)",
                )
            ids = [str(r) for r in ref_id]
        elif isinstance(ref_id, str):
            if tags:
                call.deviate("text", "speaker tags with a single reference_id", "a reference list")
            ids = [ref_id]
        else:
            return "fish:clone:" + self._references(call, refs, packed)
        for model_id in ids:
            emu.visible_model(call, account, model_id)
        return "fish:" + "+".join(ids)

    def _references(self, call: Call, refs: object, packed: bool) -> str:
        assert isinstance(refs, list)
        audio_digests = []
        for i, ref in enumerate(refs):
            where = f"references[{i}]"
            if not isinstance(ref, dict) or not ref.get("audio"):
                raise self.emu.invalid(call, where, "no audio", "{audio, text}")
            for key in ref:
                if key not in ("audio", "text"):
                    call.deviate(f"{where}.{key}", "not a documented field", "audio, text")
            audio = ref["audio"]
            if packed and isinstance(audio, str):
                call.deviate(
                    f"{where}.audio",
                    "base64 text where MessagePack binary is required",
                    "bin (bytes)",
                )
                audio = audio.encode()
            elif not packed:
                if not isinstance(audio, str):
                    raise self.emu.invalid(call, f"{where}.audio", "not a string", "base64 text")
                try:
                    audio = base64.b64decode(audio, validate=True)
                except (binascii.Error, ValueError):
                    raise self.emu.invalid(
                        call, f"{where}.audio", "not valid base64", "base64 text"
                    ) from None
            elif not isinstance(audio, bytes):
                raise self.emu.invalid(call, f"{where}.audio", "not binary", "bin (bytes)")
            audio_digests.append(digest(audio.hex(), str(ref.get("text", ""))))
        return digest(*audio_digests)

    def _sample_rate(self, call: Call, body: dict[str, object], fmt: AudioFormat) -> int:
        default = 48_000 if fmt is AudioFormat.OPUS else self.emu.config.sample_rate
        rate = integer(body, "sample_rate", default)
        allowed = {AudioFormat.OPUS: OPUS_RATES, AudioFormat.MP3: MP3_RATES}.get(fmt, PCM_RATES)
        if rate not in allowed:
            raise self.emu.invalid(
                call, "sample_rate", f"{rate} for {fmt.value}", ", ".join(map(str, sorted(allowed)))
            )
        return rate

    async def download(self, call: Call) -> Reply:
        name = call.request.match_info["name"]
        result = self.results.get(name.rsplit(".", 1)[0])
        if result is not None:
            call.anonymous_label = result.account
        self.emu.front_door(call, None)
        if result is None or result.expires_at <= call.clock.now():
            call.code = "404"
            return Reply.text("404 Not Found", 404)
        data = await self.emu.ctx.audio.render(result.audio)
        fmt = result.audio.fmt
        return Reply(200, data, MIME[fmt.value], audio=fmt)


def _yuan(cost: float) -> str:
    return f"{cost:.6f}".rstrip("0").rstrip(".") or "0"
