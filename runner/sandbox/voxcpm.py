"""A VoxCPM2 self-hosted server (seed 001): `POST /api/tts`, JSON in, base64 WAV out, no auth.

Each server synthesizes one request at a time (one GPU); a request that arrives while another
is in progress waits its turn. The pool is N such servers on N ports.

# NOTE: decisions where the seed is silent:
# - HTTP status of errors: 400 for the request's own faults ("text cannot be empty", "audio is
#   not valid base64", wrong types), 500 for "inference failed"; the body is always
#   {"status": "error", "message": ...}.
# - A missing field is accepted as "" (the server reads it with a default) but is a deviation:
#   the documented clients send every unused field as "".
# - A request arriving while the server is busy is queued and also logged as a deviation: a
#   well-behaved client keeps at most one request in flight per server.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence

import anyio

from runner.sandbox.audio import AudioRequest, corrupt
from runner.sandbox.config import VoxCPMConfig
from runner.sandbox.emulator import Context, Emulator, Route
from runner.sandbox.encode import AudioFormat
from runner.sandbox.exchange import Call, Refusal, Reply
from runner.sandbox.faults import AUDIO, FaultKind, FaultPlan
from runner.sandbox.ids import digest
from runner.sandbox.ledger import Operation
from runner.sandbox.limits import Admission
from runner.sandbox.schema import Field, Invalid, Kind, check

__all__ = ["VoxCPMServer"]

FIELDS = tuple(Field(name, (Kind.STR,)) for name in ("text", "prompt", "audio", "reference_text"))
_DATA_URL = re.compile(r"^data:audio/[\w.+-]+;base64,", re.IGNORECASE)


class VoxCPMServer(Emulator):
    name = "voxcpm"

    def __init__(self, ctx: Context, config: VoxCPMConfig, faults: FaultPlan, index: int) -> None:
        self.config = config
        self.index = index
        self.label = f"server{index}"
        self._busy = anyio.Lock()
        self.waiting = 0
        self.max_queue_depth = 0
        self.client_max_size = 64 * 1024 * 1024  # base64 reference audio
        super().__init__(ctx, faults)

    def __repr__(self) -> str:
        return f"<VoxCPMServer {self.label} max_queue_depth={self.max_queue_depth}>"

    def routes(self) -> Sequence[Route]:
        return [Route("POST", "/api/tts", self.tts, Operation.SYNTHESIZE, hot=True, audio=True)]

    def error_reply(
        self, call: Call, status: int, code: str, message: str, extra: Mapping[str, object]
    ) -> Reply:
        return Reply.json({"status": "error", "message": message}, status=status)

    def fault_reply(self, call: Call, kind: FaultKind) -> Reply:
        if kind is FaultKind.HTTP_500:
            return self._error(call, 500, "inference failed")
        return super().fault_reply(call, kind)

    def throttled(self, call: Call, admission: Admission) -> Refusal:  # pragma: no cover
        raise AssertionError("VoxCPM servers have no rate limits")

    def bad_body(self, call: Call, field: str, problem: str, expected: str) -> Refusal:
        call.deviate(field, problem, expected)
        return Refusal(self._error(call, 400, f"invalid request: {problem}"))

    def _error(self, call: Call, status: int, message: str) -> Reply:
        call.code = message
        return Reply.json({"status": "error", "message": message}, status=status)

    async def tts(self, call: Call) -> Reply:
        call.anonymous_label = self.label
        queued = self._busy.locked()
        if queued:
            call.deviate(
                "<concurrency>",
                "arrived while this server was busy with another request",
                "at most one request in flight per server",
            )
            self.waiting += 1
            self.max_queue_depth = max(self.max_queue_depth, self.waiting)
        try:
            async with self._busy:
                if queued:
                    self.waiting, queued = self.waiting - 1, False
                return await self._serve(call)
        finally:
            if queued:  # cancelled while waiting its turn
                self.waiting -= 1

    async def _serve(self, call: Call) -> Reply:
        self.front_door(call, None)
        if self.media_type(call) != "application/json":
            call.deviate("Content-Type", self.media_type(call) or "missing", "application/json")
        body = await self.json_body(call)
        try:
            check(call, body, FIELDS)
        except Invalid as error:
            raise Refusal(self._error(call, 400, f"{error.field.name} must be a string")) from None
        for f in FIELDS:
            if f.name not in body:
                call.deviate(f.name, "missing", 'every field, "" when unused')
        text, prompt, audio, reference_text = (str(body.get(f.name, "")) for f in FIELDS)
        if not text.strip():
            raise Refusal(self._error(call, 400, "text cannot be empty"))
        reference = b""
        if audio:
            try:
                reference = base64.b64decode(_DATA_URL.sub("", audio, count=1), validate=True)
            except (binascii.Error, ValueError):
                reference = b""
            if not reference:
                call.deviate("audio", "not valid base64", "base64 or data:audio/wav;base64,...")
                raise Refusal(self._error(call, 400, "audio is not valid base64"))
        if reference and reference_text and prompt:
            call.deviate(
                "prompt", "non-empty in ultimate-clone mode", '"" with audio + reference_text'
            )
            raise Refusal(self._error(call, 400, "prompt must be empty in ultimate clone mode"))
        await call.clock.sleep(self.config.latency_base + self.config.latency_per_char * len(text))
        voice = f"voxcpm:{prompt}:{digest(reference.hex())}:{reference_text}"
        call.describe(text=text, voice=voice, params={})
        wav = await self.ctx.audio.render(
            AudioRequest(text, voice, AudioFormat.WAV, self.config.sample_rate)
        )
        if call.fault in AUDIO:
            assert call.fault is not None
            wav = corrupt(wav, call.fault, AudioFormat.WAV)
            call.delivered = False
        # Self-hosted: nothing is billed, but GPU time was spent; "paid" lets the ledger show
        # the same text synthesized twice.
        call.charge(0.0)
        return Reply.json(
            {
                "status": "success",
                "sample_rate": self.config.sample_rate,
                "audio": base64.b64encode(wav).decode(),
            }
        )
