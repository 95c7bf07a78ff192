"""The audio every emulator returns: deterministic, cached, optionally spoken by a real engine.

Identical requests give identical bytes (so outputs compare byte for byte across runs) and
different texts give different audio. A `speak(text, language) -> (s16le mono bytes, rate)`
callable may be plugged in to make rehearsals listenable; its output is cached per request so
that the sandbox stays deterministic even if the engine is not.
"""

from __future__ import annotations

import functools
import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import anyio.to_thread
import numpy as np
import numpy.typing as npt

from runner.sandbox.encode import AudioFormat, encode, resample
from runner.sandbox.faults import FaultKind
from runner.sandbox.synth import synthesize

__all__ = ["AudioEngine", "AudioRequest", "Heard", "Speak", "corrupt"]

#: text, language → (mono s16le samples, sample rate)
Speak = Callable[[str, str], tuple[bytes, int]]

K = TypeVar("K")
V = TypeVar("V")


class _LRU(Generic[K, V]):
    def __init__(self, size: int) -> None:
        self._size = max(1, size)
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)


@dataclass(frozen=True)
class AudioRequest:
    """Everything that determines the bytes of one rendered result."""

    text: str
    voice: str  #: voice identity: a model id, a voice id, or a hash of reference audio
    fmt: AudioFormat
    sample_rate: int
    speed: float = 1.0
    gain_db: float = 0.0
    language: str = ""
    bitrate: int | None = None  #: bits per second for lossy codecs


@dataclass(frozen=True)
class Heard:
    """What the sandbox knows about audio it produced itself (for TTS.ai's speech-to-text)."""

    text: str
    language: str
    seconds: float


class AudioEngine:
    def __init__(self, *, speak: Speak | None = None, cache_entries: int = 512) -> None:
        self._speak = speak
        self._encoded: _LRU[AudioRequest, bytes] = _LRU(cache_entries)
        self._spoken: _LRU[tuple[str, str], tuple[bytes, int]] = _LRU(cache_entries)
        self._heard: _LRU[str, Heard] = _LRU(max(4096, cache_entries))

    def __repr__(self) -> str:
        engine = "speak" if self._speak else "synthetic"
        return f"<AudioEngine {engine}>"

    async def render(self, request: AudioRequest) -> bytes:
        cached = self._encoded.get(request)
        if cached is not None:
            return cached
        samples = await self._samples(request)
        # Off the event loop, like all rendering: the front door (authentication, the rate
        # window's clock) keeps admitting requests while others are being synthesized, as a
        # real service's does.
        data = await anyio.to_thread.run_sync(
            functools.partial(
                encode, samples, request.sample_rate, request.fmt, bitrate=request.bitrate
            )
        )
        self._encoded.put(request, data)
        seconds = samples.size / request.sample_rate
        self._heard.put(_digest(data), Heard(request.text, request.language, seconds))
        return data

    def recognise(self, data: bytes) -> Heard | None:
        """The text of audio this sandbox rendered, if `data` is exactly such audio."""
        return self._heard.get(_digest(data))

    async def _samples(self, request: AudioRequest) -> npt.NDArray[np.int16]:
        if self._speak is None:
            synth = functools.partial(
                synthesize,
                request.text,
                request.voice,
                request.sample_rate,
                speed=request.speed,
                gain_db=request.gain_db,
            )
            return await anyio.to_thread.run_sync(synth)
        key = (request.text, request.language)
        spoken = self._spoken.get(key)
        if spoken is None:
            spoken = await anyio.to_thread.run_sync(self._speak, request.text, request.language)
            self._spoken.put(key, spoken)
        raw, rate = spoken
        samples = np.frombuffer(raw, dtype="<i2").astype(np.int16)
        if request.gain_db:
            scaled = samples * 10 ** (request.gain_db / 20)
            samples = np.clip(scaled, -32768, 32767).astype(np.int16)
        return resample(samples, rate, request.sample_rate)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _noise(seed: bytes, size: int) -> bytes:
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(seed).digest()[:8], "big"))
    return rng.integers(0, 256, size, dtype=np.uint8).tobytes()


#: Bytes at the start of each format that a corrupt_samples fault leaves intact.
_HEADER_BYTES = {AudioFormat.WAV: 44, AudioFormat.PCM: 0}


def corrupt(data: bytes, kind: FaultKind, fmt: AudioFormat) -> bytes:
    """`data` damaged as `kind` says, deterministically.

    corrupt_header replaces the container header (the first 44 bytes of a WAV, 64 of anything
    else) with garbage; raw PCM has no header, so it gets corrupt samples instead.
    corrupt_samples keeps the header and replaces everything after it with noise of the same
    length, so the file still looks right to anything that reads only the header.
    """
    header = _HEADER_BYTES.get(fmt, 64)
    if kind is FaultKind.CORRUPT_HEADER and header:
        n = min(len(data), header)
        return _noise(b"header" + data[:n], n) + data[n:]
    n = min(len(data), header)
    return data[:n] + _noise(b"samples" + data[:n], len(data) - n)
