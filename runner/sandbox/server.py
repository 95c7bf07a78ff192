"""The sandbox: every emulator on its own loopback port, plus the admin app.

    async with Sandbox(config) as sb:          # in a test or in-process rehearsal
        sb.urls["ttsai"]                       # "http://127.0.0.1:PORT/v1/"
        sb.clock.advance(86_400)
        sb.faults["fish_yuntts"].enqueue("drop", endpoint="tts")
        sb.ledger.max_starts_in_window(60, account="pro1")

    with SandboxThread(config) as sb:          # for tests that drive `tts-runner` as a process
        ...

`serve(config, announce)` is what `tts-runner sandbox` runs.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TypeVar

import anyio
import anyio.from_thread
from aiohttp import web

from runner.sandbox.admin import admin_app
from runner.sandbox.audio import AudioEngine, Speak
from runner.sandbox.clock import SandboxClock
from runner.sandbox.config import FaultConfig, SandboxConfig
from runner.sandbox.emulator import Context
from runner.sandbox.faults import FaultKind, FaultPlan, Faults
from runner.sandbox.fish_yuntts.app import FishYunTTS
from runner.sandbox.fishaudio_net import FishAudioNet
from runner.sandbox.indextts.app import IndexTTS
from runner.sandbox.ledger import Ledger, LedgerEntry, LedgerSummary
from runner.sandbox.strict import Deviation, DeviationLog
from runner.sandbox.ttsai.app import TTSAI
from runner.sandbox.voxcpm import VoxCPMServer

__all__ = ["Sandbox", "SandboxThread", "serve"]

T = TypeVar("T")
#: Seconds a stopping server waits for requests in flight (a `slow` fault) before cancelling.
SHUTDOWN_GRACE = 0.5


class Sandbox:
    """All five emulated APIs and the admin app, served on loopback while the context is open."""

    def __init__(self, config: SandboxConfig | None = None, *, speak: Speak | None = None) -> None:
        self.config = config = config or SandboxConfig()
        self.clock = SandboxClock()
        self.ledger = Ledger()
        self.deviations = DeviationLog()
        self.audio = AudioEngine(speak=speak, cache_entries=config.audio_cache_entries)
        ctx = Context(self.clock, self.ledger, self.deviations, self.audio, config.seed)

        def plan(name: str, faults: FaultConfig) -> FaultPlan:
            return FaultPlan(
                name,
                config.seed,
                faults.rates,
                slow_seconds=faults.slow_seconds,
                retry_after=faults.retry_after,
            )

        self.faults = Faults(
            {
                "indextts": plan("indextts", config.indextts.faults),
                "voxcpm": plan("voxcpm", config.voxcpm.faults),
                "fish_yuntts": plan("fish_yuntts", config.fish_yuntts.faults),
                "fishaudio_net": plan("fishaudio_net", config.fishaudio_net.faults),
                "ttsai": plan("ttsai", config.ttsai.faults),
            }
        )
        self.indextts = IndexTTS(ctx, config.indextts, self.faults["indextts"])
        self.voxcpm_pool = tuple(
            VoxCPMServer(ctx, config.voxcpm, self.faults["voxcpm"], i)
            for i in range(config.voxcpm.servers)
        )
        self.fish_yuntts = FishYunTTS(ctx, config.fish_yuntts, self.faults["fish_yuntts"])
        self.fishaudio_net = FishAudioNet(ctx, config.fishaudio_net, self.faults["fishaudio_net"])
        self.ttsai = TTSAI(ctx, config.ttsai, self.faults["ttsai"])
        #: Base URLs by emulator ("indextts", "voxcpm", "fish_yuntts", "fishaudio_net", "ttsai")
        #: and "admin"; filled in once serving.
        self.urls: dict[str, str] = {}
        #: Base URLs of every VoxCPM server, in order (urls["voxcpm"] is the first).
        self.voxcpm_urls: list[str] = []
        self._runners: list[web.AppRunner] = []

    def __repr__(self) -> str:
        state = "serving" if self._runners else "stopped"
        return f"<Sandbox {state} {self.urls.get('admin', '')}>"

    @property
    def voxcpm(self) -> VoxCPMServer:
        return self.voxcpm_pool[0]

    def announcement(self) -> dict[str, object]:
        """The URLs as `tts-runner sandbox` prints them: `urls` plus "voxcpm_pool" (a list)."""
        return {**self.urls, "voxcpm_pool": list(self.voxcpm_urls)}

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        try:
            self.urls["indextts"] = await self._serve(self.indextts.app())
            self.voxcpm_urls = [await self._serve(s.app()) for s in self.voxcpm_pool]
            self.urls["voxcpm"] = self.voxcpm_urls[0] if self.voxcpm_urls else ""
            self.urls["fish_yuntts"] = await self._serve(self.fish_yuntts.app())
            self.urls["fishaudio_net"] = await self._serve(self.fishaudio_net.app())
            self.urls["ttsai"] = await self._serve(self.ttsai.app()) + "/v1/"
            self.urls["admin"] = await self._serve(admin_app(self))
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            while self._runners:
                await self._runners.pop().cleanup()

    async def _serve(self, app: web.Application) -> str:
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            # A client that goes away cancels its handler, so that a slow or queued request
            # does not keep running (or holding a VoxCPM server) for nobody.
            handler_cancellation=True,
            shutdown_timeout=SHUTDOWN_GRACE,
        )
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, self.config.host, 0)
        await site.start()
        host, port = runner.addresses[-1][:2]
        return f"http://{host}:{port}"


async def serve(
    config: SandboxConfig | None,
    announce: Callable[[dict[str, object]], None],
    *,
    speak: Speak | None = None,
) -> None:
    """Serve a sandbox until cancelled, calling `announce(urls)` once it listens."""
    async with Sandbox(config, speak=speak) as sandbox:
        announce(sandbox.announcement())
        await anyio.sleep_forever()


class SandboxThread(AbstractContextManager["SandboxThread"]):
    """A `Sandbox` on its own event loop in a background thread, driven synchronously.

    Every method runs its work on the sandbox's loop (through an anyio blocking portal), so the
    objects it returns are consistent snapshots.
    """

    def __init__(self, config: SandboxConfig | None = None, *, speak: Speak | None = None) -> None:
        self._sandbox = Sandbox(config, speak=speak)
        self._portal_cm: AbstractContextManager[anyio.from_thread.BlockingPortal] | None = None
        self._portal: anyio.from_thread.BlockingPortal | None = None
        self._sandbox_cm: AbstractContextManager[Sandbox] | None = None

    def __repr__(self) -> str:
        return f"<SandboxThread {self._sandbox!r}>"

    def __enter__(self) -> SandboxThread:
        self._portal_cm = anyio.from_thread.start_blocking_portal(name="tts-runner-sandbox")
        self._portal = self._portal_cm.__enter__()
        try:
            self._sandbox_cm = self._portal.wrap_async_context_manager(self._sandbox)
            self._sandbox_cm.__enter__()
        except BaseException:
            self._portal_cm.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._sandbox_cm is not None:
                self._sandbox_cm.__exit__(exc_type, exc, tb)
        finally:
            if self._portal_cm is not None:
                self._portal_cm.__exit__(None, None, None)
            self._portal = self._portal_cm = self._sandbox_cm = None

    def call(self, func: Callable[..., T], *args: object) -> T:
        """Run `func(*args)` on the sandbox's event loop and return its result."""
        if self._portal is None:
            raise RuntimeError("the SandboxThread is not running; use it as a context manager")
        return self._portal.call(func, *args)

    @property
    def sandbox(self) -> Sandbox:
        """The sandbox itself; touch its mutable state only through `call`."""
        return self._sandbox

    @property
    def urls(self) -> dict[str, str]:
        return dict(self._sandbox.urls)

    @property
    def voxcpm_urls(self) -> list[str]:
        return list(self._sandbox.voxcpm_urls)

    def announcement(self) -> dict[str, object]:
        return self.call(self._sandbox.announcement)

    def ledger(
        self, provider: str | None = None, account: str | None = None
    ) -> tuple[LedgerEntry, ...]:
        return self.call(self._sandbox.ledger.entries, provider, account)

    def summary(
        self, window: float, *, provider: str | None = None, account: str | None = None
    ) -> LedgerSummary:
        return self.call(
            lambda: self._sandbox.ledger.summary(window, provider=provider, account=account)
        )

    def deviations(self, provider: str | None = None) -> tuple[Deviation, ...]:
        return self.call(self._sandbox.deviations.snapshot, provider)

    def advance(self, seconds: float) -> None:
        self.call(self._sandbox.clock.advance, seconds)

    def enqueue_fault(
        self, provider: str, kind: FaultKind | str, *, endpoint: str | None = None, count: int = 1
    ) -> None:
        plan = self._sandbox.faults[provider]
        self.call(lambda: plan.enqueue(kind, endpoint=endpoint, count=count))

    def set_fault_rates(self, provider: str, rates: dict[str, float]) -> None:
        self.call(self._sandbox.faults[provider].set_rates, rates)
