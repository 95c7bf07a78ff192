"""Remake the stand-in reference recordings of this example, deterministically (no randomness;
the same bytes with the same numpy build): short 16 kHz mono 16-bit WAVs (2.5-2.9 s, under
100 KB each), voiced buzzes with syllable-like envelopes made with numpy alone. Replace them
with real recordings (and their transcripts) for a real run.

    .venv/bin/python examples/all-providers/voices/make_voices.py
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

RATE = 16_000
HERE = Path(__file__).resolve().parent

#: file name → (seconds, base pitch in Hz, syllables per second)
VOICES = {
    "ann.wav": (2.9, 210.0, 4.0),
    "joy.wav": (2.5, 260.0, 5.0),
    "keeper.wav": (2.8, 120.0, 3.5),
    "mei.wav": (2.7, 230.0, 4.5),
}


def voice(seconds: float, pitch: float, syllables: float) -> bytes:
    """Little-endian 16-bit samples."""
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = pitch * (1 + 0.08 * np.sin(2 * np.pi * 0.7 * t))  # a slow intonation contour
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    buzz = np.zeros_like(t)
    for k in range(1, 12):  # the harmonics of a glottal buzz
        buzz += np.sin(k * phase) / k
    envelope = np.clip(np.sin(np.pi * syllables * t), 0, None) ** 0.6  # syllables and gaps
    fade = np.minimum(1, np.minimum(t, t[-1] - t) / 0.05)
    samples = buzz * envelope * fade
    return bytes((9000 * samples / np.max(np.abs(samples))).astype("<i2").tobytes())


def main() -> None:
    for name, (seconds, pitch, syllables) in VOICES.items():
        with wave.open(str(HERE / name), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(voice(seconds, pitch, syllables))
        print(HERE / name)


if __name__ == "__main__":
    main()
