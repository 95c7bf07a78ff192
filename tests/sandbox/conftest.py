"""Fixtures for the sandbox contract tests: a running sandbox and a plain aiohttp client."""

from __future__ import annotations

import io
import math
import struct
import wave
from collections.abc import AsyncIterator

import aiohttp
import pytest

from runner.sandbox import IndexTTSConfig, Sandbox, SandboxConfig, VoxCPMConfig

#: Short processing times: tests advance the clock rather than wait.
FAST = SandboxConfig(
    indextts=IndexTTSConfig(processing_base=0.05, processing_per_char=0.0005),
    voxcpm=VoxCPMConfig(latency_base=0.0, latency_per_char=0.0),
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(FAST) as sandbox:
        yield sandbox


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def make_wav(seconds: float, rate: int = 16_000) -> bytes:
    """A mono 16-bit sine tone: a valid upload of a known duration."""
    frames = int(seconds * rate)
    samples = (int(8000 * math.sin(2 * math.pi * 220 * i / rate)) for i in range(frames))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return buffer.getvalue()


def wav_info(data: bytes) -> tuple[int, int, float]:
    """(sample rate, channels, seconds) of a WAV file."""
    with wave.open(io.BytesIO(data), "rb") as w:
        return w.getframerate(), w.getnchannels(), w.getnframes() / w.getframerate()
