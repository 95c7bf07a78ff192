"""The IndexTTS open API (seed 000): envelope `{code, data, msg}`, `sign` auth, HTTP 200 errors.

The vendor's envelope and error code 7 are those of a Go (gin) backend, and the emulator
follows that backend's habits where the page is silent.

# NOTE: every IndexTTS decision where seed 000 and providers.md are silent, in one place:
# - A body field of the wrong JSON type fails binding: code 7 "json: cannot unmarshal ...".
#   So `style` sent as an integer is refused (and logged), not coerced to a string.
# - An unknown body field (`text` instead of `content`) is ignored, as Go binding does, and
#   logged as a deviation; then the missing `content` is refused.
# - A path or method the API lacks gets gin's plain-text "404 page not found" (HTTP 404), as
#   do the voiceUrl of an expired or unfinished task and /reference/detail and /user/quota on
#   accounts configured without them.
# - pageSize above the documented maximum is clamped (and logged), not refused.
# - Voice models carry a level, "basic" or "professional" (uploads: configurable, default
#   professional). style "2" needs a professional model; genre 1 and 2 need style "2".
# - An identical request whose result is still downloadable answers status 2 at once (the
#   "cached result" of the page); it is still charged, so paying twice stays visible.
#   `IndexTTSConfig.instant` makes every task finish at once.
# - Characters are debited at creation and not refunded if the task fails.
# - The voiceUrl download needs the owner's sign (missing → code 7 and a deviation).
# - /user/quota answers {remaining, used, total} in characters.
# - /reference/delete takes audioId in the query (a JSON body also works); /tts/deleteCustom
#   takes emotionPath as a JSON or form field.
# - Model uploads must decode to 2-60 s of audio; emotion references have no duration rule.
# - A configured rate limit answers code 7 "请求过于频繁 (too frequent)" with HTTP 200.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from runner.sandbox.accounts import Account, Accounts, rate_limiter
from runner.sandbox.config import IndexTTSConfig
from runner.sandbox.emulator import Context, Emulator, Route
from runner.sandbox.exchange import Call, Refusal, Reply
from runner.sandbox.faults import FaultPlan
from runner.sandbox.ids import IdMaker
from runner.sandbox.indextts.assets import AssetEndpoints
from runner.sandbox.indextts.state import EmotionRef, Task, VoiceModel
from runner.sandbox.indextts.tasks import TaskEndpoints
from runner.sandbox.ledger import Operation
from runner.sandbox.limits import Admission
from runner.sandbox.schema import Invalid, Kind, matches

__all__ = ["IndexTTS"]

API = "/api/third"
ERROR = "7"
NOT_FOUND_PAGE = "404 page not found"

_GO_TYPES = {
    Kind.STR: "string",
    Kind.INT: "int",
    Kind.NUMBER: "float64",
    Kind.OBJECT: "third.EmotionExt",
    Kind.BOOL: "bool",
}


class IndexTTS(Emulator):
    name = "indextts"

    def __init__(self, ctx: Context, config: IndexTTSConfig, faults: FaultPlan) -> None:
        self.config = config
        self.client_max_size = config.max_upload_bytes + 1024 * 1024
        self.accounts = Accounts(config, rate_limiter)
        self.tasks: dict[str, Task] = {}
        self.models: dict[str, VoiceModel] = {}
        self.references: dict[str, EmotionRef] = {}
        self.ids = IdMaker(ctx.seed, self.name)
        self._task_endpoints = TaskEndpoints(self)
        self._asset_endpoints = AssetEndpoints(self)
        super().__init__(ctx, faults)
        for account in config.accounts:
            for audio_id in account.voices:
                self.add_model(audio_id, account.label, level="professional")

    def routes(self) -> Sequence[Route]:
        quota = Route("GET", f"{API}/user/quota", self.quota, Operation.ACCOUNT)
        return [*self._task_endpoints.routes(), *self._asset_endpoints.routes(), quota]

    # -- shapes ----------------------------------------------------------------------------

    @staticmethod
    def ok(data: object, msg: str = "成功") -> Reply:
        return Reply.json({"code": 0, "data": data, "msg": msg})

    def error_reply(
        self, call: Call, status: int, code: str, message: str, extra: Mapping[str, object]
    ) -> Reply:
        return Reply.json({"code": 7, "data": dict(extra), "msg": message}, status=status)

    def fail(self, call: Call, message: str) -> Refusal:
        """Code 7 with HTTP 200, the vendor's answer to nearly everything that goes wrong."""
        return call.refuse(200, ERROR, message)

    def invalid(self, call: Call, field: str, problem: str, expected: str) -> Refusal:
        """A documented rule broken: a deviation, and code 7."""
        call.deviate(field, problem, expected)
        return self.fail(call, f"参数错误 (invalid parameter): {field}: {problem}")

    def binding_error(self, call: Call, error: Invalid, struct: str) -> Refusal:
        """How gin reports a body field that failed validation (already logged by `check`)."""
        kinds = error.field.kinds
        if not any(matches(k, error.value) for k in kinds):
            go = _GO_TYPES.get(kinds[0], "string")
            message = (
                f"json: cannot unmarshal {_json_type(error.value)} into Go struct field "
                f"{struct}.{error.field.name} of type {go}"
            )
            return self.fail(call, message)
        return self.fail(call, f"参数错误 (invalid parameter): {error.field.name}: {error.problem}")

    def bad_body(self, call: Call, field: str, problem: str, expected: str) -> Refusal:
        return self.invalid(call, field, problem, expected)

    def too_large(self, call: Call) -> Refusal:
        limit = f"{self.config.max_upload_bytes / 2**20:g} MB"
        return self.invalid(call, "file", f"not smaller than {limit}", f"a file under {limit}")

    def unrouted(self, call: Call, status: int) -> Reply:
        call.deviate("<path>", f"{call.route} is not an endpoint of this API", "a documented path")
        call.code = "404"
        return Reply.text(NOT_FOUND_PAGE, 404)

    def throttled(self, call: Call, admission: Admission) -> Refusal:
        return self.fail(call, "请求过于频繁 (too frequent), retry later")

    # -- auth and paging -------------------------------------------------------------------

    def authenticate(self, call: Call) -> Account:
        """`sign` as a header (the default) or as a query parameter."""
        sign = call.request.headers.get("sign") or call.request.query.get("sign", "")
        if not sign:
            call.deviate("sign", "missing", "header sign: <value> (or query ?sign=)")
            raise self.fail(call, "sign 不能为空 (sign is required)")
        account = self.accounts.resolve(sign)
        if account is None:
            raise self.fail(call, "sign 无效 (invalid sign)")
        return account

    def admit(self, call: Call) -> Account:
        account = self.authenticate(call)
        self.front_door(call, account)
        return account

    def page(self, call: Call, max_size: int) -> tuple[int, int]:
        """page (default 1) and pageSize (default 10, at most `max_size`) from the query."""
        values = []
        for name, default in (("page", 1), ("pageSize", 10)):
            raw = call.request.query.get(name)
            if raw is None:
                values.append(default)
                continue
            try:
                values.append(int(raw))
            except ValueError:
                raise self.invalid(call, name, f"{raw!r} is not an integer", "integer") from None
        page, size = values
        if page < 1:
            call.deviate("page", f"{page} is below 1", "page >= 1")
            page = 1
        if not 1 <= size <= max_size:
            call.deviate("pageSize", f"{size} is out of range", f"1..{max_size}")
            size = min(max(size, 1), max_size)
        return page, size

    @staticmethod
    def paged(items: Sequence[object], page: int, size: int) -> dict[str, object]:
        start = (page - 1) * size
        return {
            "list": list(items[start : start + size]),
            "total": len(items),
            "page": page,
            "pageSize": size,
        }

    # -- models and quota --------------------------------------------------------------------

    def add_model(
        self, audio_id: str, account: str, *, level: str, name: str = "", describe: str = ""
    ) -> VoiceModel:
        model = VoiceModel(
            audio_id, account, name or audio_id, describe, level, self.ctx.clock.wall()
        )
        self.models[audio_id] = model
        return model

    def model_for(self, call: Call, account: Account, audio_id: str) -> VoiceModel:
        model = self.models.get(audio_id)
        if model is None and account.config.adopt_unknown_voices:
            model = self.add_model(audio_id, account.label, level="professional")
        if model is None or model.account != account.label:
            raise self.fail(call, f"模型不存在 (voice model not found): {audio_id}")
        return model

    async def quota(self, call: Call) -> Reply:
        account = self.admit(call)
        if not account.config.quota_available:
            call.code = "404"
            return Reply.text(NOT_FOUND_PAGE, 404)
        total = account.config.balance
        return self.ok(
            {
                "remaining": int(account.balance),
                "used": int(total - account.balance),
                "total": int(total),
            }
        )


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
