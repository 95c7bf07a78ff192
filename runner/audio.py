"""Reading and checking audio: does a body parse as the format it claims, is it complete, and is
its duration plausible for the text it speaks?

WAV is parsed chunk by chunk here, so that a body cut short is caught by its own header (an
HTTP client may report success for a body that ended early). Compressed formats are decoded
in full with PyAV (FFmpeg from PyPI).
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass
from typing import Final

import av
import av.error
import numpy as np
import numpy.typing as npt

from runner.errors import AudioError

__all__ = [
    "AudioInfo",
    "Samples",
    "check_not_noise",
    "check_plausible",
    "decode",
    "pcm_to_wav",
    "probe",
    "resample",
    "rms_dbfs",
]

#: Speech takes between these many seconds per character (Chinese is slowest, clipped English
#: fastest); outside them, with slack for very short texts, the audio is not this text.
MIN_SECONDS_PER_CHAR: Final = 0.01
MAX_SECONDS_PER_CHAR: Final = 1.5
SLACK_SECONDS: Final = 5.0
_STREAMING_SIZES: Final = (0, 0xFFFFFFFF)  # "unknown length" as written by streaming servers
#: White noise crosses zero on about half of its samples, speech on far fewer (only sibilants
#: come near); loud and that busy is noise, not a voice.
NOISE_ZERO_CROSSINGS: Final = 0.35
NOISE_RMS: Final = 0.1  #: of full scale (−20 dBFS)

Samples = npt.NDArray[np.float32]


@dataclass(frozen=True)
class AudioInfo:
    format: str
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


@dataclass(frozen=True)
class _WavLayout:
    sample_rate: int
    channels: int
    bits: int
    encoding: int  #: 1 integer PCM, 3 IEEE float
    data_offset: int
    data_size: int


def _wav_layout(data: bytes) -> _WavLayout:
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RF64") or data[8:12] != b"WAVE":
        raise AudioError("not a WAV file (no RIFF/WAVE header)")
    fmt: tuple[int, int, int, int] | None = None
    data_size64: int | None = None  # RF64 (EBU Tech 3306): the real size is in `ds64`
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk_id == b"ds64" and data[:4] == b"RF64" and body + 16 <= len(data):
            data_size64 = struct.unpack_from("<Q", data, body + 8)[0]
        elif chunk_id == b"data" and size == 0xFFFFFFFF and data_size64 is not None:
            size = data_size64
        if chunk_id == b"fmt ":
            if size < 16 or body + 16 > len(data):
                raise AudioError("WAV format chunk is cut short")
            encoding, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, body)
            if encoding == 0xFFFE and size >= 40:  # WAVE_FORMAT_EXTENSIBLE: the sub-format
                encoding = struct.unpack_from("<H", data, body + 24)[0]
            fmt = (encoding, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise AudioError("WAV data comes before its format chunk")
            encoding, channels, rate, bits = fmt
            available = len(data) - body
            if size in _STREAMING_SIZES:
                size = available
            elif size > available:
                raise AudioError(
                    f"WAV is cut short: {size} bytes of samples declared, {available} present"
                )
            return _WavLayout(rate, channels, bits, encoding, body, size)
        pos = body + size + (size & 1)
    raise AudioError("WAV has no data chunk" if fmt else "WAV has no format chunk")


def _check_wav(layout: _WavLayout) -> None:
    if layout.encoding not in (1, 3) or layout.bits not in (8, 16, 24, 32):
        raise AudioError(f"unsupported WAV encoding {layout.encoding} with {layout.bits} bits")
    if not 1 <= layout.channels <= 8 or not 4000 <= layout.sample_rate <= 384_000:
        raise AudioError(
            f"implausible WAV header: {layout.channels} channels at {layout.sample_rate} Hz"
        )
    if layout.data_size % (layout.channels * layout.bits // 8):
        raise AudioError("WAV data ends in the middle of a sample frame (cut short)")


def probe(data: bytes, fmt: str, sample_rate: int | None = None) -> AudioInfo:
    """Check that `data` is complete audio in format `fmt`; raises AudioError otherwise."""
    if not data:
        raise AudioError("empty body where audio was expected")
    if fmt == "wav":
        layout = _wav_layout(data)
        _check_wav(layout)
        frames = layout.data_size // (layout.channels * layout.bits // 8)
        return AudioInfo("wav", layout.sample_rate, layout.channels, frames)
    if fmt == "pcm":
        if sample_rate is None:
            raise AudioError("raw PCM needs a known sample rate")
        if len(data) % 2:
            raise AudioError("raw 16-bit PCM has an odd number of bytes (cut short)")
        return AudioInfo("pcm", sample_rate, 1, len(data) // 2)
    samples, rate = decode(data, fmt)
    return AudioInfo(fmt, rate, 1, len(samples))


def decode(data: bytes, fmt: str, sample_rate: int | None = None) -> tuple[Samples, int]:
    """Decode to mono float32 samples in [-1, 1] and their sample rate."""
    if fmt == "wav":
        layout = _wav_layout(data)
        _check_wav(layout)
        raw = data[layout.data_offset : layout.data_offset + layout.data_size]
        return _wav_samples(raw, layout), layout.sample_rate
    if fmt == "pcm":
        if sample_rate is None:
            raise AudioError("raw PCM needs a known sample rate")
        pcm = np.frombuffer(data[: len(data) // 2 * 2], "<i2")
        return (pcm / 32768).astype(np.float32), sample_rate
    return _decode_compressed(data, fmt)


def _wav_samples(raw: bytes, layout: _WavLayout) -> Samples:
    width = layout.bits // 8
    if layout.encoding == 3:
        samples = np.frombuffer(raw, "<f4" if width == 4 else "<f8").astype(np.float32)
    elif width == 1:
        samples = ((np.frombuffer(raw, np.uint8) - 128) / 128).astype(np.float32)
    elif width == 2:
        samples = (np.frombuffer(raw, "<i2") / 32768).astype(np.float32)
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        samples = (np.where(value >= 1 << 23, value - (1 << 24), value) / float(1 << 23)).astype(
            np.float32
        )
    else:
        samples = (np.frombuffer(raw, "<i4") / 2147483648).astype(np.float32)
    if layout.channels > 1:
        samples = samples.reshape(-1, layout.channels).mean(axis=1).astype(np.float32)
    return samples


def resample(samples: Samples, source_rate: int, rate: int) -> Samples:
    """Band-limited resampling through FFmpeg's swresample (one piece, not a stream)."""
    if source_rate == rate or len(samples) == 0:
        return samples
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = source_rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    parts = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


def rms_dbfs(samples: Samples) -> float:
    """RMS level relative to full scale (a full-scale square wave is 0 dBFS); −inf for silence."""
    if len(samples) == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20 * math.log10(rms) if rms > 0 else -math.inf


def check_not_noise(samples: Samples) -> None:
    """Raise AudioError when `samples` are loud white noise rather than speech: a zero-crossing
    rate above 0.35 together with an RMS above 0.1 of full scale."""
    if len(samples) < 2:
        return
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    signs = np.signbit(samples)
    crossings = float(np.count_nonzero(signs[1:] != signs[:-1])) / (len(samples) - 1)
    if crossings > NOISE_ZERO_CROSSINGS and rms > NOISE_RMS:
        raise AudioError(
            f"the audio is noise, not speech: it crosses zero on {crossings:.0%} of its samples "
            f"at an RMS of {rms:.2f} of full scale (speech: under {NOISE_ZERO_CROSSINGS:.0%})"
        )


def _decode_compressed(data: bytes, fmt: str) -> tuple[Samples, int]:
    try:
        with av.open(io.BytesIO(data), "r") as container:
            if not container.streams.audio:
                raise AudioError(f"no audio stream in the {fmt} body")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono")
            parts: list[Samples] = []
            rate = 0
            for frame in container.decode(stream):
                rate = frame.sample_rate
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray().reshape(-1).astype(np.float32))
            for out in resampler.resample(None):
                parts.append(out.to_ndarray().reshape(-1).astype(np.float32))
    except (av.error.FFmpegError, ValueError, IndexError) as exc:
        raise AudioError(f"the {fmt} body does not decode: {exc}") from exc
    if not parts or rate <= 0:
        raise AudioError(f"the {fmt} body holds no audio")
    return np.concatenate(parts), rate


def check_plausible(info: AudioInfo, chars: int) -> None:
    """Raise AudioError when the duration cannot be `chars` characters of speech."""
    low = chars * MIN_SECONDS_PER_CHAR
    high = chars * MAX_SECONDS_PER_CHAR + SLACK_SECONDS
    if info.duration < low or info.duration > high:
        raise AudioError(
            f"{info.duration:.2f} s of audio for {chars} characters is not plausible "
            f"(expected {low:.2f}–{high:.0f} s)"
        )


def pcm_to_wav(pcm: bytes, sample_rate: int) -> bytes:
    """Wrap raw 16-bit mono PCM in a WAV header."""
    header = b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
    return header + b"data" + struct.pack("<I", len(pcm)) + pcm
