"""TTS.ai (seed 004): OpenAI-style REST under /v1/, Bearer keys, per-plan sliding-window
limits with X-RateLimit-* headers on every reply, and credits.

# NOTE: decisions where the seed is silent:
# - A path without its trailing slash ("/v1/tts") answers 404 not_found naming the right path,
#   and is a deviation; no redirect (a redirected POST would lose its body in many clients).
# - X-RateLimit-Remaining counts request starts left in the current sliding window;
#   X-RateLimit-Reset is whole seconds until the oldest start leaves it (0 when the window is
#   empty). Replies to requests without a valid key carry all three as 0.
# - More requests in flight than the plan's concurrency answers 429 rate_limited too, with
#   Retry-After: 1. A refused request is not a start in the window (see limits.py).
# - Text longer than the plan allows answers 400 bad_request (413 is for uploaded files).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from runner.sandbox.accounts import Account, Accounts
from runner.sandbox.config import AccountConfig, TTSAIConfig
from runner.sandbox.emulator import Context, Emulator, Route
from runner.sandbox.exchange import Call, Refusal, Reply
from runner.sandbox.faults import FaultPlan
from runner.sandbox.limits import Admission, WindowLimiter
from runner.sandbox.ttsai.listen import ListenEndpoints
from runner.sandbox.ttsai.speech import SpeechEndpoints

__all__ = ["TTSAI"]


class TTSAI(Emulator):
    name = "ttsai"

    def __init__(self, ctx: Context, config: TTSAIConfig, faults: FaultPlan) -> None:
        self.config = config
        self.client_max_size = max(config.max_upload_bytes, config.max_stt_bytes) + 1024**2
        self.accounts = Accounts(config, self._limiter)
        self._speech = SpeechEndpoints(self)
        self._listen = ListenEndpoints(self)
        super().__init__(ctx, faults)

    def _limiter(self, account: AccountConfig) -> WindowLimiter:
        plan = self.config.plan(account.plan)
        return WindowLimiter(plan.requests, plan.per_seconds, plan.concurrent)

    def routes(self) -> Sequence[Route]:
        return [*self._speech.routes(), *self._listen.routes()]

    # -- shapes ----------------------------------------------------------------------------

    def error_reply(
        self, call: Call, status: int, code: str, message: str, extra: Mapping[str, object]
    ) -> Reply:
        return Reply.json({"error": {"code": code, "message": message, **extra}}, status=status)

    def bad_body(self, call: Call, field: str, problem: str, expected: str) -> Refusal:
        return call.reject(field, problem, expected, status=400, code="bad_request")

    def too_large(self, call: Call) -> Refusal:
        return call.refuse(413, "file_too_large", "The uploaded file exceeds the size limit.")

    def throttled(self, call: Call, admission: Admission) -> Refusal:
        what = "requests" if admission.reason == "window" else "concurrent requests"
        refusal = call.refuse(
            429,
            "rate_limited",
            f"Too many {what}. Check the rate limit headers.",
            retry_after=admission.retry_after,
        )
        refusal.reply.headers["Retry-After"] = str(admission.retry_after)
        return refusal

    def unrouted(self, call: Call, status: int) -> Reply:
        path = call.request.path
        if status == 404 and not path.endswith("/") and self._has_path(path + "/"):
            call.deviate("<path>", f"{path} lacks its trailing slash", f"{path}/")
            call.code = "not_found"
            return self.error_reply(call, 404, call.code, f"Not found; did you mean {path}/ ?", {})
        return super().unrouted(call, status)

    def _has_path(self, path: str) -> bool:
        return any(route.path == path for route in self.routes())

    def decorate(self, call: Call, reply: Reply) -> None:
        """X-RateLimit-* on every reply, as the plan's limiter sees the key right now."""
        account = call.account or self._account_of(call)
        if account is None:
            limit, remaining, reset = 0, 0, 0
        else:
            view = call.admission or account.limiter.peek(call.clock.now())
            limit = view.limit or 0
            remaining = view.remaining or 0
            reset = view.reset
        reply.headers.update(
            {
                "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": str(reset),
            }
        )

    # -- auth ------------------------------------------------------------------------------

    def _account_of(self, call: Call) -> Account | None:
        header = call.request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        return self.accounts.resolve(header[7:].strip())

    def admit(self, call: Call) -> Account:
        header = call.request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            problem = "missing" if not header else "no Bearer prefix"
            call.deviate("Authorization", problem, "Authorization: Bearer sk-tts-...")
            raise call.refuse(401, "unauthorized", "Missing or invalid API key.")
        account = self.accounts.resolve(header[7:].strip())
        if account is None:
            raise call.refuse(401, "unauthorized", "Missing or invalid API key.")
        if not self.config.plan(account.config.plan).api_access:
            call.account = account
            raise call.refuse(403, "forbidden", "API access is not available on your plan.")
        self.front_door(call, account)
        return account

    def credits_headers(self, used: float, account: Account) -> dict[str, str]:
        return {
            "X-Credits-Used": _number(used),
            "X-Credits-Remaining": _number(max(account.balance, 0)),
        }


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6f}".rstrip("0")
