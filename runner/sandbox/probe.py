"""What an uploaded file is, and how long it plays: enough to validate uploads as vendors do."""

from __future__ import annotations

import io
import struct

import av

__all__ = ["duration", "sniff"]


def sniff(data: bytes) -> str | None:
    """The file type by its magic bytes: wav, mp3, m4a, ogg, flac, aac, webm, jpeg, png."""
    head = data[:12]
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:3] == b"ID3":
        return "mp3"
    if head[4:8] == b"ftyp":
        return "m4a"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"\x1aE\xdf\xa3":
        return "webm"
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        # Frame sync: MPEG audio layers have non-zero layer bits, AAC's ADTS has them zero.
        return "aac" if head[1] & 0x06 == 0 else "mp3"
    return None


def _wav_duration(data: bytes) -> float | None:
    pos, rate, block = 12, 0, 0
    while pos + 8 <= len(data):
        chunk, size = struct.unpack_from("<4sI", data, pos)
        if chunk == b"fmt " and size >= 16:
            _, _channels, rate, _, block = struct.unpack_from("<HHIIH", data, pos + 8)
        elif chunk == b"data":
            if not rate or not block:
                return None
            available = min(int(size), len(data) - pos - 8)
            return float(available / int(block) / int(rate))
        pos += 8 + size + (size & 1)
    return None


def duration(data: bytes) -> float | None:
    """Seconds of audio in `data`, or None when it does not decode."""
    if sniff(data) == "wav":
        return _wav_duration(data)
    try:
        with av.open(io.BytesIO(data), "r") as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            samples = sum(frame.samples for frame in container.decode(stream))
            return samples / stream.rate if stream.rate else None
    except (av.FFmpegError, ValueError, IndexError):
        return None
