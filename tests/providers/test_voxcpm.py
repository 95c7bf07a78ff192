"""The VoxCPM2 adapter against the sandbox's servers over loopback HTTP: the documented body in
every mode, errors, retries, a pool of servers one request each, and whole runs."""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
import math
import time
import wave
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import anyio
import numpy as np
import pytest
from aiohttp import web
from support import tts_runner, wav_stats

from runner.errors import CorruptResult, PermanentError, ProviderError, TransientError
from runner.events import Events
from runner.manifest import load_manifests
from runner.manifest.params import FileRef, ParamValue
from runner.plans import Limits
from runner.providers.base import Request
from runner.providers.context import RetryPolicy
from runner.providers.voxcpm import VoxCPMProvider
from runner.run import RunOptions, RunResult, run_manifest
from runner.sandbox import (
    FaultConfig,
    LedgerEntry,
    Sandbox,
    SandboxConfig,
    SandboxThread,
    VoxCPMConfig,
)
from runner.sandbox.ids import digest

from .conftest import FAST_RETRY, ContextFactory, EventLog

pytestmark = pytest.mark.anyio

TEXT = "The keeper remembers the long road home, and a traveler carries a quiet song."
PROSE = (
    "The keeper remembers the long road home. A traveler carries a quiet song at dusk. "
    "The old clock follows seven lanterns by the sea. Every river answers the letters nobody "
    "sent. My neighbor paints a map of forgotten towns. The wind counts the colour of rain."
)


def sandbox_config(
    servers: int = 1, latency: float = 0.0, faults: FaultConfig | None = None
) -> SandboxConfig:
    return SandboxConfig(
        voxcpm=VoxCPMConfig(
            servers=servers,
            latency_base=latency,
            latency_per_char=0.0,
            faults=faults or FaultConfig(),
        )
    )


@asynccontextmanager
async def sandbox_of(
    servers: int = 1, latency: float = 0.0, faults: FaultConfig | None = None
) -> AsyncIterator[Sandbox]:
    async with Sandbox(sandbox_config(servers, latency, faults)) as box:
        yield box


def request(text: str = TEXT, **params: ParamValue) -> Request:
    return Request(hashlib.sha256(text.encode()).hexdigest(), text, params, "req-1")


def make_wav(seconds: float, rate: int = 16_000, tone: float = 220.0) -> bytes:
    """A mono 16-bit sine tone (a stand-in for a reference recording)."""
    t = np.arange(int(seconds * rate)) / rate
    samples = (8000 * np.sin(2 * math.pi * tone * t)).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return buffer.getvalue()


def file_ref(path: Path, data: bytes) -> FileRef:
    path.write_bytes(data)
    return FileRef(path, hashlib.sha256(data).hexdigest(), len(data))


def voice_of(prompt: str = "", reference: bytes = b"", reference_text: str = "") -> str:
    """The sandbox's identity of what a request asked for (see runner/sandbox/voxcpm.py)."""
    return f"voxcpm:{prompt}:{digest(reference.hex())}:{reference_text}"


# -- the documented body --------------------------------------------------------------------


async def test_every_mode_sends_the_documented_body(
    make_context: ContextFactory, tmp_path: Path
) -> None:
    reference = make_wav(1.5)
    ref = file_ref(tmp_path / "ref.wav", reference)
    modes = [
        ({}, voice_of()),
        ({"prompt": "年轻女性,声音温柔甜美"}, voice_of("年轻女性,声音温柔甜美")),
        ({"prompt": "calm", "reference_audio": ref}, voice_of("calm", reference)),
        (
            {"reference_audio": ref, "reference_text": "Hello there."},
            voice_of("", reference, "Hello there."),
        ),
    ]
    async with sandbox_of() as box:
        async with VoxCPMProvider(make_context("voxcpm", box.urls["voxcpm"])) as provider:
            for params, _ in modes:
                audio = await provider.synthesize(request(**params))
                assert (audio.format, audio.sample_rate) == ("wav", 48_000)
                assert audio.data[:4] == b"RIFF"
            ref.path.unlink()  # the encoded reference is kept per content hash: no second read
            await provider.synthesize(request("Once more.", reference_audio=ref))
        assert box.deviations.snapshot() == ()
        voices = [e.voice for e in box.ledger.entries("voxcpm")]
        assert voices == [voice for _, voice in modes] + [voice_of("", reference)]


async def test_a_reference_that_changed_since_loading_is_refused(
    make_context: ContextFactory, tmp_path: Path
) -> None:
    ref = file_ref(tmp_path / "ref.wav", make_wav(1.0))
    ref.path.write_bytes(make_wav(1.0, tone=440.0))
    async with sandbox_of() as box:
        async with VoxCPMProvider(make_context("voxcpm", box.urls["voxcpm"])) as provider:
            with pytest.raises(PermanentError, match="changed after the manifest was loaded"):
                await provider.synthesize(request(reference_audio=ref))
        assert len(box.ledger) == 0


async def test_the_write_ahead_hook_runs_inside_a_limiter_slot_before_each_attempt(
    make_context: ContextFactory,
) -> None:
    async with sandbox_of() as box:
        box.faults["voxcpm"].enqueue("http_500")
        context = make_context("voxcpm", box.urls["voxcpm"])
        seen: list[tuple[int, int]] = []

        async def on_send() -> None:
            seen.append((context.limiter.in_flight, len(box.ledger)))

        hooked = replace(request(), on_send=on_send)
        async with VoxCPMProvider(context) as provider:
            await provider.synthesize(hooked)
    assert seen == [(1, 0), (1, 1)]  # each time: a slot held, and before the request arrived


def test_timeout_defaults_to_the_vendors_300_s_and_the_account_may_change_it(
    make_context: ContextFactory,
) -> None:
    urls = ("http://10.0.0.1:5022", "http://10.0.0.2:5022/")
    provider = VoxCPMProvider(make_context("voxcpm", urls))
    assert repr(provider) == "<VoxCPMProvider account='acct' servers=2 timeout=300>"
    assert [s.url for s in provider.pool.servers] == [
        "http://10.0.0.1:5022",
        "http://10.0.0.2:5022",
    ]
    quick = VoxCPMProvider(make_context("voxcpm", urls[0], options={"timeout": 7.5}))
    assert quick.timeout == 7.5


# -- errors ---------------------------------------------------------------------------------


async def test_request_faults_fail_the_segment_with_the_servers_message(
    make_context: ContextFactory, tmp_path: Path
) -> None:
    ref = file_ref(tmp_path / "ref.wav", make_wav(1.0))
    async with sandbox_of() as box:
        async with VoxCPMProvider(make_context("voxcpm", box.urls["voxcpm"])) as provider:
            with pytest.raises(PermanentError, match="text cannot be empty"):
                await provider.synthesize(request("   "))
            # Undocumented, but the server's own words reach the user all the same.
            with pytest.raises(PermanentError, match="prompt must be empty in ultimate clone"):
                await provider.synthesize(
                    request(prompt="calm", reference_audio=ref, reference_text="Hi.")
                )
        assert [e.status for e in box.ledger.entries("voxcpm")] == [400, 400]


async def test_inference_failed_is_retried_then_reported(make_context: ContextFactory) -> None:
    async with sandbox_of() as box:
        box.faults["voxcpm"].enqueue("http_500", count=FAST_RETRY.attempts)
        context = make_context("voxcpm", box.urls["voxcpm"])
        async with VoxCPMProvider(context) as provider:
            with pytest.raises(TransientError, match="inference failed") as caught:
                await provider.synthesize(request())
            assert box.urls["voxcpm"] in str(caught.value)
            assert context.stats.retries["TransientError"] == FAST_RETRY.attempts - 1
            await provider.synthesize(request())  # the fault is gone: the server answers
        statuses = [e.status for e in box.ledger.entries("voxcpm")]
        assert statuses == [500] * FAST_RETRY.attempts + [200]


async def test_a_failed_server_does_not_get_the_retry_when_another_is_free(
    make_context: ContextFactory,
) -> None:
    async with sandbox_of(servers=2) as box:
        box.faults["voxcpm"].enqueue("http_500")
        context = make_context("voxcpm", tuple(box.voxcpm_urls))
        async with VoxCPMProvider(context) as provider:
            await provider.synthesize(request())
            await provider.synthesize(request("A second text, while server0 is in disgrace."))
        failed, retried, later = box.ledger.entries("voxcpm")
        assert (failed.status, retried.status, later.status) == (500, 200, 200)
        assert failed.account == "server0"
        assert retried.account == later.account == "server1"


@asynccontextmanager
async def vendor_stub(*replies: web.Response) -> AsyncIterator[str]:
    """A server answering /api/tts with the given replies in turn (the last one repeats): for
    replies the sandbox never gives."""
    served: list[int] = []

    async def tts(request: web.Request) -> web.Response:
        await request.read()
        served.append(1)
        return replies[min(len(served), len(replies)) - 1]

    app = web.Application()
    app.router.add_post("/api/tts", tts)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def success(audio: str, **extra: object) -> web.Response:
    return web.json_response({"status": "success", "sample_rate": 16_000, "audio": audio, **extra})


MALFORMED: list[tuple[str, Callable[[], web.Response], type[ProviderError], str]] = [
    (
        "documented-error",
        lambda: web.json_response(
            {"status": "error", "message": "audio is not valid base64"}, status=400
        ),
        PermanentError,
        "audio is not valid base64",
    ),
    (
        "unknown-500-message",
        lambda: web.json_response({"status": "error", "message": "CUDA out of memory"}, status=500),
        TransientError,
        "CUDA out of memory",
    ),
    (
        "html-502",
        lambda: web.Response(status=502, text="<html>Bad Gateway</html>", content_type="text/html"),
        TransientError,
        "HTTP 502 with a body that is not the API's JSON",
    ),
    (
        "html-404",
        lambda: web.Response(status=404, text="<html>Not Found</html>", content_type="text/html"),
        PermanentError,
        "HTTP 404",
    ),
    (
        "not-json-200",
        lambda: web.Response(text="OK", content_type="text/plain"),
        TransientError,
        "not the API's JSON",
    ),
    (
        "no-audio",
        lambda: web.json_response({"status": "success", "sample_rate": 48_000}),
        TransientError,
        "without status success and audio",
    ),
    (
        "no-sample-rate",
        lambda: web.json_response({"status": "success", "audio": "UklGRg=="}),
        TransientError,
        "without a valid sample_rate",
    ),
    ("bad-base64", lambda: success("UklGR@@not base64!"), CorruptResult, "not valid base64"),
]


@pytest.mark.parametrize(
    ("reply", "error", "message"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
async def test_replies_outside_the_contract_become_clear_errors(
    make_context: ContextFactory,
    reply: Callable[[], web.Response],
    error: type[ProviderError],
    message: str,
) -> None:
    replies = [reply() for _ in range(FAST_RETRY.attempts)]
    async with vendor_stub(*replies) as url, VoxCPMProvider(make_context("voxcpm", url)) as vox:
        with pytest.raises(ProviderError) as caught:
            await vox.synthesize(request())
    assert type(caught.value) is error
    assert message in str(caught.value)


async def test_a_data_url_and_line_breaks_in_the_reply_are_accepted(
    make_context: ContextFactory,
) -> None:
    wav = make_wav(1.0)
    encoded = base64.encodebytes(wav).decode()  # 76-character lines, as some encoders write
    reply = success("data:audio/wav;base64," + encoded)
    async with vendor_stub(reply) as url, VoxCPMProvider(make_context("voxcpm", url)) as vox:
        audio = await vox.synthesize(request())
    assert (audio.data, audio.sample_rate) == (wav, 16_000)


# -- transient faults on the wire -------------------------------------------------------------

WIRE_FAULTS = ["http_500", "drop", "truncate_with_length", "truncate_no_length", "slow"]


@pytest.mark.parametrize("kind", WIRE_FAULTS)
async def test_wire_faults_are_retried(make_context: ContextFactory, kind: str) -> None:
    faults = FaultConfig(slow_seconds=1.0)
    async with sandbox_of(faults=faults) as box:
        box.faults["voxcpm"].enqueue(kind)
        context = make_context("voxcpm", box.urls["voxcpm"], options={"timeout": 0.4})
        async with VoxCPMProvider(context) as provider:
            audio = await provider.synthesize(request())
        assert audio.data[:4] == b"RIFF"
        faulty, ok = box.ledger.entries("voxcpm")
        assert (faulty.fault, ok.fault, ok.status) == (kind, "", 200)
        assert sum(context.stats.retries.values()) == 1


# -- the pool -------------------------------------------------------------------------------


async def test_the_pool_never_sends_a_server_two_requests_whatever_the_account_allows(
    make_context: ContextFactory,
) -> None:
    async with sandbox_of(servers=2, latency=0.05) as box:
        context = make_context("voxcpm", tuple(box.voxcpm_urls), limits=Limits(concurrent=6))
        async with VoxCPMProvider(context) as provider, anyio.create_task_group() as tg:
            for i in range(6):
                tg.start_soon(provider.synthesize, request(f"Sentence number {i} of six."))
        assert [s.max_queue_depth for s in box.voxcpm_pool] == [0, 0]
        assert {e.account for e in box.ledger.entries("voxcpm")} == {"server0", "server1"}
        assert box.ledger.max_in_flight(provider="voxcpm") == 2
        assert box.deviations.snapshot() == ()


# -- whole runs -----------------------------------------------------------------------------


def write_reference(directory: Path) -> bytes:
    reference = make_wav(2.0)
    (directory / "ref.wav").write_bytes(reference)
    return reference


def pool_manifest(urls: list[str]) -> str:
    listed = ", ".join(f'"{u}"' for u in urls)
    return f"""
version: 1
output: {{dir: out, format: wav}}
providers:
  gpus: {{kind: voxcpm, base_urls: [{listed}], limits: {{max_chars: 60}}}}
voices:
  designed: {{provider: gpus, prompt: "a calm narrator"}}
  cloned: {{provider: gpus, reference_audio: ref.wav, reference_text: "Hello, this is me."}}
defaults: {{voice: designed}}
texts:
  - {{id: ch01, text: "{PROSE}"}}
  - {{id: ch02, voice: cloned, text: "The wind counts the colour of early rain, number two."}}
"""


def assert_chapters(out: Path, ids: list[str], *, min_seconds: float) -> None:
    index = json.loads((out / "index.json").read_text())
    assert [c["id"] for c in index["chapters"]] == ids
    for chapter in index["chapters"]:
        rate, seconds, rms = wav_stats(out / chapter["file"])
        assert rate > 0
        assert seconds > min_seconds, (chapter["id"], seconds)
        assert rms > -40, f"{chapter['id']} is near-silent ({rms:.1f} dBFS)"


def in_flight_at(moment: float, entries: Sequence[LedgerEntry]) -> int:
    return sum(1 for e in entries if e.started_at <= moment < e.finished_at)


def test_a_pool_of_three_servers_end_to_end(tmp_path: Path) -> None:
    reference = write_reference(tmp_path)
    with SandboxThread(sandbox_config(servers=3, latency=0.1)) as box:
        (tmp_path / "book.yaml").write_text(pool_manifest(box.voxcpm_urls))
        done = tts_runner("run", "book.yaml", "--json-log", cwd=tmp_path)
        assert done.code == 0, done.stderr
        entries = box.ledger("voxcpm")
        depths = box.call(lambda: [s.max_queue_depth for s in box.sandbox.voxcpm_pool])
        assert box.deviations("voxcpm") == ()
    assert depths == [0, 0, 0]
    assert {e.account for e in entries} == {"server0", "server1", "server2"}
    assert len(entries) == len(done.events("segment_done")) > 6
    # All three at work at once (one per server unless the manifest says otherwise), never two
    # requests on one server.
    overlaps = max(
        sum(1 for f in entries if f.started_at <= e.started_at < f.finished_at) for e in entries
    )
    assert overlaps == 3
    for server in ("server0", "server1", "server2"):
        mine = sorted((e.started_at, e.finished_at) for e in entries if e.account == server)
        assert all(b[0] >= a[1] for a, b in itertools.pairwise(mine))
    cloned = [e for e in entries if e.voice == voice_of("", reference, "Hello, this is me.")]
    assert len(cloned) == 1  # the reference arrived intact, with an empty prompt
    assert_chapters(tmp_path / "out", ["ch01", "ch02"], min_seconds=2.0)


def test_rehearsal_with_sandbox_flag(tmp_path: Path) -> None:
    write_reference(tmp_path)
    urls = ["http://gpu-a:5022", "http://gpu-b:5022"]
    (tmp_path / "book.yaml").write_text(pool_manifest(urls))
    done = tts_runner("run", "book.yaml", "--sandbox", "--json-log", cwd=tmp_path)
    assert done.code == 0, done.stderr
    assert done.events("retry") == []
    assert_chapters(tmp_path / "out", ["ch01", "ch02"], min_seconds=2.0)


async def run_book(
    tmp_path: Path, manifest: str, retry: RetryPolicy = FAST_RETRY
) -> tuple[RunResult, EventLog]:
    (tmp_path / "book.yaml").write_text(manifest)
    (loaded,) = load_manifests([tmp_path / "book.yaml"])
    log = EventLog()
    options = RunOptions(state_dir=tmp_path / "state", retry=retry, environ={})
    return await run_manifest(loaded, options, Events([log])), log


@pytest.mark.parametrize("kind", [*WIRE_FAULTS, "corrupt_header", "corrupt_samples"])
async def test_a_run_survives_each_fault(tmp_path: Path, kind: str) -> None:
    async with sandbox_of(faults=FaultConfig(slow_seconds=1.5)) as box:
        box.faults["voxcpm"].enqueue(kind)
        started = time.monotonic()
        result, log = await run_book(
            tmp_path,
            f"""
version: 1
output: {{dir: out, format: wav}}
providers:
  gpu: {{kind: voxcpm, base_url: "{box.urls["voxcpm"]}", timeout: 1}}
voices: {{v: {{provider: gpu}}}}
defaults: {{voice: v}}
texts:
  - {{id: ch01, text: "{TEXT}"}}
""",
        )
        assert time.monotonic() - started < 5
        entries = box.ledger.entries("voxcpm")
    assert result.exit_code == 0
    assert [e.fault for e in entries] == [kind, ""]
    stats = result.stats.accounts["gpu"]
    if kind.startswith("corrupt"):
        assert stats.re_requests == 1  # the scheduler asked again
        assert stats.retries == {"corrupt": 1}
    else:
        assert sum(stats.retries.values()) == 1  # the adapter tried again
    assert "retry" in log.kinds()
    assert_chapters(tmp_path / "out", ["ch01"], min_seconds=2.0)
