"""A deterministic, speech-like synthetic voice: the sandbox's stand-in for a TTS model.

The signal is a few harmonics of a pitch that moves syllable by syllable, under a syllable-rate
amplitude envelope, with silence at both ends like real TTS output. The voice sets the base
pitch and timbre; the text sets the syllables (through a hash), so a one-character change gives
different samples, and the same text and voice always give the same samples.
"""

from __future__ import annotations

import functools
import hashlib
import unicodedata

import numpy as np
import numpy.typing as npt

__all__ = ["speech_seconds", "synthesize"]

LATIN_CHARS_PER_SECOND = 14.0
CJK_CHARS_PER_SECOND = 4.5
MIN_SPEECH_SECONDS = 0.3
PAD_SECONDS = 0.15  #: silence before and after the speech
SYLLABLE_SECONDS = 0.18
HARMONICS = 5
TABLE_SIZE = 4096  #: samples in one period of a voice's waveform
BLOCK = 1 << 16  #: samples synthesized at a time


def _is_cjk(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in ("W", "F") and not ch.isspace()


def speech_seconds(text: str, speed: float = 1.0) -> float:
    """How long the text takes to say (without the padding)."""
    cjk = sum(1 for ch in text if _is_cjk(ch))
    other = len(text) - cjk
    seconds = cjk / CJK_CHARS_PER_SECOND + other / LATIN_CHARS_PER_SECOND
    return max(MIN_SPEECH_SECONDS, seconds) / speed


def _stream(seed: bytes, n: int) -> npt.NDArray[np.float64]:
    """`n` deterministic numbers in [0, 1) derived from `seed`."""
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(seed).digest()[:8], "big"))
    return rng.random(n)


@functools.lru_cache(maxsize=256)
def _timbre(voice: str) -> npt.NDArray[np.float64]:
    """One period of the voice's waveform: a few harmonics with voice-specific gains, peak 1."""
    gains = 0.25 + _stream(b"timbre\x00" + voice.encode(), HARMONICS)
    phase = 2 * np.pi * np.arange(TABLE_SIZE) / TABLE_SIZE
    mix = np.zeros(TABLE_SIZE)
    for k, gain in enumerate(gains, start=1):
        mix += gain / k * np.sin(k * phase)
    table = mix / (float(np.max(np.abs(mix))) or 1.0)
    table.flags.writeable = False  # shared by every caller through the cache
    return table


def synthesize(
    text: str, voice: str, sample_rate: int, *, speed: float = 1.0, gain_db: float = 0.0
) -> npt.NDArray[np.int16]:
    """Mono 16-bit samples saying (in spirit) `text` in `voice`."""
    speech = speech_seconds(text, speed)
    n_speech = round(speech * sample_rate)
    n_pad = round(PAD_SECONDS * sample_rate)
    n_syll = max(1, round(speech / (SYLLABLE_SECONDS / speed)))

    f0 = 95.0 + 150.0 * _stream(b"voice\x00" + voice.encode(), 1)[0]
    syll = _stream(b"text\x00" + voice.encode() + b"\x00" + text.encode(), 2 * n_syll)
    pitch = f0 * (0.8 + 0.45 * syll[:n_syll])
    loudness = 0.45 + 0.55 * syll[n_syll:]
    table = _timbre(voice)
    level = 0.4 * 10 ** (gain_db / 20) * 32767

    out = np.zeros(n_speech + 2 * n_pad, dtype=np.int16)
    cycles_so_far = 0.0
    # In blocks, so that an hour of audio never needs more than a few MB of float scratch.
    for start in range(0, n_speech, BLOCK):
        # Sample i belongs to syllable idx[i], at fractional position pos[i] within it.
        where = np.arange(start, min(start + BLOCK, n_speech), dtype=np.float64)
        where *= n_syll / n_speech
        idx = np.minimum(where.astype(np.int64), n_syll - 1)
        pos = where - idx
        freq = pitch[idx] * (1.0 + 0.04 * np.sin(2 * np.pi * 5.0 * pos))
        # The timbre is one period of the voice's harmonic mix, looked up by phase: one table
        # lookup per sample instead of a sine per harmonic keeps tiny requests cheap.
        cycles = cycles_so_far + np.cumsum(freq) / sample_rate
        cycles_so_far = float(cycles[-1])
        wave = table[(cycles * TABLE_SIZE).astype(np.int64) & (TABLE_SIZE - 1)]
        envelope = loudness[idx] * np.sin(np.pi * pos) ** 2
        block = np.clip(wave * envelope * level, -32767, 32767)
        out[n_pad + start : n_pad + start + block.size] = np.round(block).astype(np.int16)
    return out
