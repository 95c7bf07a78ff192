"""Fish Audio S1 / S2-Pro through the yuntts proxy (seed 002): errors `{"error", "message"}`.

# NOTE: decisions where the seed is silent:
# - `Authorization` carries the bare token, as the seed shows. "Bearer <token>" is accepted
#   (the token after the prefix is used) but logged as a deviation.
# - Request problems the seed has no code for (a wrong type, an out-of-range number, an
#   unsupported Content-Type) answer 400 with code "invalid_params".
# - A configured rate limit answers 429 "rate_limited" with Retry-After.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from runner.sandbox.accounts import Account, Accounts, rate_limiter
from runner.sandbox.config import FishYunTTSConfig
from runner.sandbox.emulator import Context, Emulator, Route
from runner.sandbox.exchange import Call, Refusal, Reply
from runner.sandbox.faults import FaultPlan
from runner.sandbox.fish_yuntts.models import CATALOG, FishModel, ModelEndpoints
from runner.sandbox.fish_yuntts.tts import SpeechEndpoints
from runner.sandbox.ids import IdMaker
from runner.sandbox.limits import Admission

__all__ = ["FishYunTTS"]

API = "/api/v1/fish-audio"
INVALID = "invalid_params"


class FishYunTTS(Emulator):
    name = "fish_yuntts"

    def __init__(self, ctx: Context, config: FishYunTTSConfig, faults: FaultPlan) -> None:
        self.config = config
        self.client_max_size = 10 * config.max_voice_bytes + config.max_cover_bytes + 1024**2
        self.accounts = Accounts(config, rate_limiter)
        self.models: dict[str, FishModel] = {m.model_id: m for m in CATALOG}
        self.ids = IdMaker(ctx.seed, self.name)
        self._speech = SpeechEndpoints(self)
        self._models = ModelEndpoints(self)
        super().__init__(ctx, faults)
        for account in config.accounts:
            for model_id in account.voices:
                self._models.add(model_id, account.label, title=model_id, wall=ctx.clock.wall())

    def routes(self) -> Sequence[Route]:
        return [*self._speech.routes(), *self._models.routes()]

    @property
    def results(self) -> Mapping[str, object]:
        """Results of stream=false requests, by task id."""
        return self._speech.results

    # -- shapes ----------------------------------------------------------------------------

    def error_reply(
        self, call: Call, status: int, code: str, message: str, extra: Mapping[str, object]
    ) -> Reply:
        return Reply.json({"error": code, "message": message, **extra}, status=status)

    def bad_body(self, call: Call, field: str, problem: str, expected: str) -> Refusal:
        return call.reject(field, problem, expected, status=400, code=INVALID)

    def too_large(self, call: Call) -> Refusal:
        return call.reject(
            "voices",
            "request body too large",
            "files of at most 20 MB each",
            status=400,
            code="audio_too_large",
        )

    def invalid(
        self, call: Call, field: str, problem: str, expected: str, code: str = ""
    ) -> Refusal:
        return call.reject(field, problem, expected, status=400, code=code or INVALID)

    def throttled(self, call: Call, admission: Admission) -> Refusal:
        refusal = call.refuse(429, "rate_limited", "too many requests, slow down")
        refusal.reply.headers["Retry-After"] = str(admission.retry_after)
        return refusal

    # -- auth ------------------------------------------------------------------------------

    def admit(self, call: Call) -> Account:
        header = call.request.headers.get("Authorization", "").strip()
        if not header:
            call.deviate("Authorization", "missing", "Authorization: <token>")
            raise call.refuse(401, "unauthorized", "missing Authorization token")
        token = header
        if header.lower().startswith("bearer "):
            call.deviate("Authorization", '"Bearer " prefix', "the bare token, no prefix")
            token = header[7:].strip()
        account = self.accounts.resolve(token)
        if account is None:
            raise call.refuse(401, "unauthorized", "invalid token")
        self.front_door(call, account)
        return account

    def visible_model(self, call: Call, account: Account, model_id: str) -> FishModel:
        """A model the account may synthesize with: its own, public, unlisted or official."""
        model = self.models.get(model_id)
        if model is None and account.config.adopt_unknown_voices:
            model = self._models.add(model_id, "", title=model_id, wall=call.clock.wall())
        if model is None or (
            model.owner not in ("", account.label) and model.visibility == "private"
        ):
            raise call.refuse(404, "model_not_found", f"model {model_id} not found or deleted")
        return model
