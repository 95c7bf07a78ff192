"""Integrated loudness per ITU-R BS.1770-4 (the measure of EBU R128 and ACX), in numpy alone.

The measurement, for one channel (a mono chapter):
1. K-weighting: a high shelf (+4 dB above ~1.5 kHz, the head's effect) then a high pass
   (~38 Hz, RLB). The two biquads' coefficients are given for 48 kHz; for other rates they
   are derived from the analogue prototypes (after Brecht De Man, "Evaluation of
   implementations of loudness measurements", AES 2014), which reproduce the 48 kHz table.
2. Mean square of the weighted signal over 400 ms blocks that overlap by 75 % (a new block
   every 100 ms); a block's loudness is −0.691 + 10·log10(mean square).
3. Gating: drop blocks below −70 LUFS (absolute gate), then blocks more than 10 LU below the
   loudness of those left (relative gate); the integrated loudness is that of the rest.

Everything streams: `LoudnessMeter.feed()` takes chunks of any length and keeps the filters'
state and 100 ms partial sums, so a 30-hour book is measured in constant memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Final

import av
import av.error
import av.filter
import numpy as np
import numpy.typing as npt

from runner.audio import Samples

__all__ = [
    "ABSOLUTE_GATE",
    "Biquad",
    "Gain",
    "LoudnessMeter",
    "gain_for",
    "gated_loudness",
    "integrated_loudness",
    "k_weighting",
]

ABSOLUTE_GATE: Final = -70.0  #: LUFS
RELATIVE_GATE: Final = -10.0  #: LU below the absolute-gated loudness
_OFFSET: Final = -0.691  #: makes a 997 Hz sine at 0 dBFS read −3.01 LUFS, like its RMS
_SUBBLOCKS: Final = 4  #: 400 ms blocks made of 100 ms steps (75 % overlap)

Floats = npt.NDArray[np.float64]


class Biquad:
    """A second-order IIR section (a lfilter) that keeps its state between chunks.

    y[n] = b0·x[n] + b1·x[n−1] + b2·x[n−2] − a1·y[n−1] − a2·y[n−2], run by FFmpeg's `biquad`
    filter in double precision (direct form I, like the difference equation): C speed, where
    a vectorised scan in numpy measured a chapter at a few million samples per second and made
    loudness the slowest step of assembly. The filter graph is built at the first chunk and
    keeps the state from one chunk to the next.
    """

    def __init__(self, b: tuple[float, float, float], a: tuple[float, float]) -> None:
        """y[n] = b0·x[n] + b1·x[n−1] + b2·x[n−2] − a1·y[n−1] − a2·y[n−2] (a0 = 1)."""
        self.b = np.array(b, np.float64)
        self.a = (float(a[0]), float(a[1]))
        a1, a2 = a
        root = np.sqrt(complex(a1 * a1 - 4 * a2))
        self.poles = ((-a1 + root) / 2, (-a1 - root) / 2)
        self._graph: av.filter.Graph | None = None
        self._rate = 48000  #: any: the filter's output does not depend on the rate it is told

    def _build(self) -> av.filter.Graph:
        graph = av.filter.Graph()
        source = graph.add_abuffer(format="dbl", sample_rate=self._rate, layout="mono")
        b0, b1, b2 = (float(v) for v in self.b)
        a1, a2 = self.a
        section = graph.add(
            "biquad", f"b0={b0!r}:b1={b1!r}:b2={b2!r}:a0=1.0:a1={a1!r}:a2={a2!r}:transform=di"
        )
        sink = graph.add("abuffersink")
        source.link_to(section)
        section.link_to(sink)
        graph.configure()
        return graph

    def __call__(self, x: Floats) -> Floats:
        if len(x) == 0:
            return x
        if self._graph is None:
            self._graph = self._build()
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(x, np.float64).reshape(1, -1), format="dbl", layout="mono"
        )
        frame.sample_rate = self._rate
        self._graph.push(frame)
        parts: list[Floats] = []
        while True:
            try:
                parts.append(np.asarray(self._graph.pull().to_ndarray(), np.float64).reshape(-1))
            except (av.error.BlockingIOError, av.error.EOFError):
                break
        out = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if len(out) != len(x):  # the filter answers every frame at once; anything else is a bug
            raise RuntimeError(f"biquad returned {len(out)} samples for {len(x)}")
        return np.asarray(out, np.float64)


def k_weighting(rate: int) -> tuple[Biquad, Biquad]:
    """The two K-weighting stages (pre-filter shelf, RLB high pass) for `rate`."""
    # stage 1: high shelf
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / rate)
    vh = 10 ** (gain_db / 20)
    vb = vh**0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf = Biquad(
        ((vh + vb * k / q + k * k) / a0, 2 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0),
        (2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0),
    )
    # stage 2: high pass; its numerator stays (1, −2, 1) unnormalised, as in the 48 kHz table
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / rate)
    a0 = 1 + k / q + k * k
    highpass = Biquad((1.0, -2.0, 1.0), (2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0))
    return shelf, highpass


class LoudnessMeter:
    """Feed mono samples in chunks; read the gating blocks, the loudness and the sample peak.

    Chunks are gathered into pieces of at least `PIECE` samples before they are filtered: a
    chapter arrives a segment or a decoded frame at a time (often a few thousand samples), and
    the filters' cost per call would otherwise outweigh their cost per sample.
    """

    PIECE: ClassVar[int] = 1 << 16

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.frames = 0  #: samples fed
        self._peak = 0.0
        self._filters = k_weighting(rate)
        self._sums: list[float] = []  #: Σ z² of each complete 100 ms step
        self._lengths: list[int] = []
        self._partial = 0.0
        self._measured = 0  #: samples filtered and summed
        self._waiting: list[Samples] = []
        self._waiting_frames = 0

    def feed(self, samples: Samples) -> None:
        if len(samples) == 0:
            return
        self.frames += len(samples)
        self._waiting.append(samples)
        self._waiting_frames += len(samples)
        if self._waiting_frames >= self.PIECE:
            self._flush()

    @property
    def peak(self) -> float:
        """The sample peak of everything fed (as a fraction of full scale)."""
        self._flush()
        return self._peak

    def _flush(self) -> None:
        if not self._waiting:
            return
        samples = self._waiting[0] if len(self._waiting) == 1 else np.concatenate(self._waiting)
        self._waiting, self._waiting_frames = [], 0
        self._peak = max(self._peak, float(np.max(np.abs(samples))))
        weighted = samples.astype(np.float64)
        for stage in self._filters:
            weighted = stage(weighted)
        squares = np.square(weighted)
        # 100 ms step k covers samples [floor(k·rate/10), floor((k+1)·rate/10))
        start = self._measured
        self._measured += len(samples)
        pos = 0
        while True:
            k = len(self._sums)
            end = (k + 1) * self.rate // 10
            if end > self._measured:
                self._partial += float(np.sum(squares[pos:]))
                return
            self._sums.append(self._partial + float(np.sum(squares[pos : end - start])))
            self._lengths.append(end - k * self.rate // 10)
            self._partial, pos = 0.0, end - start

    def blocks(self) -> Floats:
        """Mean square of each complete 400 ms block (one every 100 ms)."""
        self._flush()
        if len(self._sums) < _SUBBLOCKS:
            return np.zeros(0, np.float64)
        sums = np.convolve(np.array(self._sums), np.ones(_SUBBLOCKS), "valid")
        lengths = np.convolve(np.array(self._lengths, np.float64), np.ones(_SUBBLOCKS), "valid")
        return np.asarray(sums / lengths, np.float64)

    def loudness(self) -> float:
        return gated_loudness(self.blocks())


def gated_loudness(blocks: Floats) -> float:
    """Integrated loudness (LUFS) of 400 ms blocks' mean squares; −inf when all are gated.

    Blocks of several chapters may be concatenated: that is the loudness of the whole book
    (less the few blocks that would straddle two chapters).
    """
    with np.errstate(divide="ignore"):
        levels = _OFFSET + 10 * np.log10(blocks)
    kept = blocks[levels > ABSOLUTE_GATE]
    if len(kept) == 0:
        return -math.inf
    relative = _OFFSET + 10 * math.log10(float(np.mean(kept))) + RELATIVE_GATE
    kept = blocks[(levels > ABSOLUTE_GATE) & (levels > relative)]
    return _OFFSET + 10 * math.log10(float(np.mean(kept)))


def integrated_loudness(samples: Samples, rate: int) -> float:
    """The loudness of one piece of audio (e.g. a segment, for the report); −inf when it is
    silent or shorter than one 400 ms block."""
    meter = LoudnessMeter(rate)
    meter.feed(samples)
    return meter.loudness()


@dataclass(frozen=True)
class Gain:
    """What normalisation did to a chapter (or a book)."""

    db: float  #: applied gain
    measured: float  #: LUFS before
    result: float  #: LUFS after (−inf for silence)
    peak_dbfs: float  #: sample peak after
    limited: bool  #: the peak ceiling held the gain below what the target asked
    in_window: bool  #: inside the preset's window (always true without one)

    @property
    def factor(self) -> float:
        return 10 ** (self.db / 20)


def gain_for(
    measured: float,
    peak: float,
    target: float | None,
    ceiling_dbfs: float,
    window: tuple[float, float] | None = None,
) -> Gain:
    """The gain that takes `measured` LUFS to `target` without the sample peak passing the
    ceiling: when it would, the gain is reduced to meet the ceiling instead (nothing is
    clipped or compressed) and `limited` says so."""
    peak_db = 20 * math.log10(peak) if peak > 0 else -math.inf
    if target is None or not math.isfinite(measured):
        return Gain(0.0, measured, measured, peak_db, False, _inside(measured, window))
    db = target - measured
    limited = peak_db + db > ceiling_dbfs
    if limited:
        db = ceiling_dbfs - peak_db
    result = measured + db
    return Gain(round(db, 4), measured, result, peak_db + db, limited, _inside(result, window))


def _inside(level: float, window: tuple[float, float] | None) -> bool:
    return window is None or window[0] <= level <= window[1]
