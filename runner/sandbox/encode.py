"""Audio containers and codecs, deterministic byte for byte.

WAV and PCM are written by hand; MP3, Ogg/Opus, FLAC and AAC go through PyAV with the
`bitexact` flags, which keep encoder versions out of the bytes and fix the Ogg serial number,
so one request gives identical bytes across runs and machines with the same libraries.
"""

from __future__ import annotations

import io
import struct
from enum import StrEnum

import av
import numpy as np
import numpy.typing as npt

__all__ = ["MP3_RATES", "OPUS_RATES", "AudioFormat", "encode", "resample", "wav_bytes"]


class AudioFormat(StrEnum):
    WAV = "wav"  #: RIFF, PCM 16-bit mono
    PCM = "pcm"  #: raw s16le mono, no header
    MP3 = "mp3"
    OPUS = "opus"  #: Ogg/Opus
    FLAC = "flac"
    AAC = "aac"  #: ADTS

    @property
    def mime(self) -> str:
        return _MIME[self]


_MIME = {
    AudioFormat.WAV: "audio/wav",
    AudioFormat.PCM: "audio/pcm",
    AudioFormat.MP3: "audio/mpeg",
    AudioFormat.OPUS: "audio/opus",
    AudioFormat.FLAC: "audio/flac",
    AudioFormat.AAC: "audio/aac",
}
_CODECS = {
    AudioFormat.MP3: ("libmp3lame", "mp3"),
    AudioFormat.OPUS: ("libopus", "ogg"),
    AudioFormat.FLAC: ("flac", "flac"),
    AudioFormat.AAC: ("aac", "adts"),
}
MP3_RATES = frozenset({8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000})
OPUS_RATES = frozenset({8000, 12000, 16000, 24000, 48000})


def wav_bytes(samples: npt.NDArray[np.int16], sample_rate: int) -> bytes:
    data = samples.astype("<i2").tobytes()
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(data),
        b"WAVE",
        b"fmt ",
        16,
        1,  # PCM
        1,  # mono
        sample_rate,
        sample_rate * 2,
        2,
        16,
        b"data",
        len(data),
    )
    return header + data


def resample(
    samples: npt.NDArray[np.int16], source_rate: int, target_rate: int
) -> npt.NDArray[np.int16]:
    """Linear-interpolation resampling: crude, deterministic, and enough for a rehearsal."""
    if source_rate == target_rate or samples.size == 0:
        return samples
    n = round(samples.size * target_rate / source_rate)
    x = np.linspace(0, samples.size - 1, n)
    return np.round(np.interp(x, np.arange(samples.size), samples)).astype(np.int16)


def encode(
    samples: npt.NDArray[np.int16],
    sample_rate: int,
    fmt: AudioFormat,
    *,
    bitrate: int | None = None,
) -> bytes:
    """The samples in `fmt`. `bitrate` is in bits per second (None: the codec's default)."""
    if fmt is AudioFormat.WAV:
        return wav_bytes(samples, sample_rate)
    if fmt is AudioFormat.PCM:
        return samples.astype("<i2").tobytes()
    codec, container_format = _CODECS[fmt]
    buffer = io.BytesIO()
    with av.open(
        buffer, "w", format=container_format, options={"fflags": "+bitexact"}
    ) as container:
        stream = container.add_stream(codec, rate=sample_rate)
        if not isinstance(stream, av.AudioStream):
            raise TypeError(f"{codec} made a {type(stream).__name__}, not an audio stream")
        stream.layout = "mono"
        if bitrate:
            stream.bit_rate = bitrate
        stream.codec_context.flags |= av.codec.context.Flags.bitexact
        if fmt is AudioFormat.MP3:
            # LAME's fastest psychoacoustics: a sandbox needs throughput, not transparency.
            stream.codec_context.options = {"compression_level": "9"}
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = sample_rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()
