"""Encoders for the output formats: samples in, chunk by chunk; a file out, never whole in memory.

- `wav`: 16-bit PCM written here. The header reserves a `JUNK` chunk the size of an RF64
  `ds64` chunk (EBU Tech 3306); if the data passes what a 32-bit RIFF size can say (4 GiB, about
  27 hours of 22 kHz mono), the header is rewritten in place as RF64 when the file is closed.
  FFmpeg, sox and every DAW read RF64; nothing has to be known in advance, so a 30-hour book
  works without a second pass.
- `flac`, `mp3`, `m4b`: FFmpeg's encoders through PyAV, the FFmpeg of a PyPI wheel, so no
  system install is needed. m4b is AAC in MP4 with the book's tags, a cover picture and chapter
  marks. MP4 needs the number of chapters when its header is written and their times only
  when it is closed, so marks are declared up front and timed as the samples pass.
"""

from __future__ import annotations

import fractions
import struct
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Final

import av
import av.audio.stream
import av.container
import av.stream
import numpy as np

from runner.audio import Samples

__all__ = ["RIFF_LIMIT", "Encoder", "Tags", "WavWriter"]

RIFF_LIMIT: Final = 0xFFFFFFFF  #: the largest size a RIFF header can state
_HEADER: Final = 80  #: RIFF + JUNK(28) + fmt(16) + data headers


@dataclass(frozen=True)
class Codec:
    container: str
    codec: str
    sample_format: str
    bit_rate: int | None = None
    options: tuple[tuple[str, str], ...] = ()  #: muxer options
    codec_options: tuple[tuple[str, str], ...] = ()


#: FFmpeg's muxer "mp4" rather than "ipod": only it takes a cover picture stream.
CODECS: Final = {
    "flac": Codec("flac", "flac", "s16"),
    "mp3": Codec("mp3", "libmp3lame", "s16p", 128_000),
    # the "fast" AAC coder: 3× the speed of the default on speech, at the same size
    "m4b": Codec("mp4", "aac", "fltp", 64_000, (("brand", "M4B "),), (("aac_coder", "fast"),)),
}
ACX_MP3_BIT_RATE: Final = 192_000  #: ACX asks for 192 kb/s constant bit rate


@dataclass(frozen=True)
class Tags:
    """What a player shows. m4b and mp3 conventions: album = book, artist = author,
    composer = narrator."""

    title: str
    album: str
    artist: str | None = None
    composer: str | None = None
    cover: Path | None = None
    chapters: tuple[str, ...] = ()  #: titles of the chapter marks, in order
    extra: dict[str, str] = field(default_factory=dict)

    def metadata(self) -> dict[str, str]:
        found = {"title": self.title, "album": self.album, "genre": "Audiobook", **self.extra}
        if self.artist:
            found["artist"] = self.artist
        if self.composer:
            found["composer"] = self.composer
        return found


class WavWriter:
    """16-bit mono PCM to a seekable file; RF64 when the data outgrows RIFF."""

    def __init__(self, f: BinaryIO, rate: int, riff_limit: int = RIFF_LIMIT) -> None:
        self._f, self._rate, self._limit = f, rate, riff_limit
        self.bytes = 0
        f.write(self._header(rf64=False))

    def write(self, samples: Samples) -> None:
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).round().astype("<i2").tobytes()
        self._f.write(pcm)
        self.bytes += len(pcm)

    def close(self) -> None:
        if self.bytes & 1:
            self._f.write(b"\0")  # chunks are word-aligned
        self._f.seek(0)
        self._f.write(self._header(rf64=_HEADER - 8 + self.bytes > self._limit))
        self._f.seek(0, 2)

    def _header(self, *, rf64: bool) -> bytes:
        riff = _HEADER - 8 + self.bytes + (self.bytes & 1)
        fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, self._rate, self._rate * 2, 2, 16)
        if rf64:
            ds64 = struct.pack("<QQQI", riff, self.bytes, self.bytes // 2, 0)
            head = b"RF64" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + b"ds64"
            head += struct.pack("<I", 28) + ds64
            return head + fmt + b"data" + struct.pack("<I", 0xFFFFFFFF)
        head = b"RIFF" + struct.pack("<I", riff) + b"WAVE" + b"JUNK" + struct.pack("<I", 28)
        return head + bytes(28) + fmt + b"data" + struct.pack("<I", self.bytes)


class Encoder:
    """`with Encoder(f, fmt, rate, tags) as e: e.mark(); e.write(chunk); ...`

    `mark()` starts the next of `tags.chapters` at the current position.
    """

    def __init__(
        self, f: BinaryIO, fmt: str, rate: int, tags: Tags, *, bit_rate: int | None = None
    ) -> None:
        self.rate = rate
        self.frames = 0
        self._starts: list[int] = []
        self._tags = tags
        self._wav: WavWriter | None = None
        self._cover: av.Packet[av.stream.Stream] | None = None
        if fmt == "wav":
            self._wav = WavWriter(f, rate)
            return
        codec = CODECS[fmt]
        self._container: av.container.OutputContainer = av.open(
            f, "w", format=codec.container, options=dict(codec.options)
        )
        stream = self._container.add_stream(
            codec.codec, rate=_codec_rate(codec.codec, rate), options=dict(codec.codec_options)
        )
        assert isinstance(stream, av.audio.stream.AudioStream)
        stream.layout = "mono"
        stream.format = codec.sample_format
        bit_rate = bit_rate or codec.bit_rate
        if bit_rate:
            stream.bit_rate = bit_rate
        self._stream = stream
        # to the encoder's sample format and rate; PyAV cuts frames to the codec's frame size
        self._resampler = av.AudioResampler(
            format=codec.sample_format, layout="mono", rate=stream.codec_context.sample_rate
        )
        self._container.metadata.update(tags.metadata())
        if tags.cover is not None:
            self._add_cover(tags.cover)
        if tags.chapters:  # declared now (MP4 counts them in its header), timed at close
            self._set_chapters(list(range(len(tags.chapters))))

    def __enter__(self) -> Encoder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        elif self._wav is None:
            self._container.close()

    def mark(self) -> None:
        self._starts.append(self.frames)

    def write(self, samples: Samples) -> None:
        if len(samples) == 0:
            return
        self.frames += len(samples)
        if self._wav is not None:
            self._wav.write(samples)
            return
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples, np.float32).reshape(1, -1), format="flt", layout="mono"
        )
        frame.sample_rate = self.rate
        self._encode(frame)

    def close(self) -> None:
        if self._wav is not None:
            self._wav.close()
            return
        self._encode(None)
        if self._cover is not None:
            self._container.mux(self._cover)
        if self._tags.chapters:
            self._set_chapters(self._starts)
        self._container.close()

    def _encode(self, frame: av.AudioFrame | None) -> None:
        for resampled in self._resampler.resample(frame):
            self._container.mux(self._stream.encode(resampled))
        if frame is None:
            self._container.mux(self._stream.encode(None))

    def _set_chapters(self, starts: list[int]) -> None:
        ends = [*starts[1:], self.frames]
        self._container.set_chapters(
            [
                {
                    "id": i + 1,
                    "start": start,
                    "end": max(end, start + 1),
                    "time_base": fractions.Fraction(1, self.rate),
                    "metadata": {"title": title},
                }
                for i, (title, start, end) in enumerate(
                    zip(self._tags.chapters, starts, ends, strict=False)
                )
            ]
        )

    def _add_cover(self, cover: Path) -> None:
        data = cover.read_bytes()
        with av.open(str(cover)) as image:
            context = image.streams.video[0].codec_context
            width, height = context.width, context.height
        codec = "png" if data.startswith(b"\x89PNG") else "mjpeg"
        stream = self._container.add_mux_stream(codec, width=width, height=height)
        stream.disposition = av.stream.Disposition.attached_pic
        packet = av.Packet(data)
        packet.stream = stream
        packet.is_keyframe = True
        self._cover = packet  # muxed at the end: one packet, placed by its stream


def _codec_rate(codec: str, rate: int) -> int:
    """`rate` if the encoder takes it, else the nearest rate above it that it does."""
    rates = av.codec.Codec(codec, "w").audio_rates
    if not rates or rate in rates:
        return rate
    above = sorted(r for r in rates if r >= rate)
    return above[0] if above else max(rates)
