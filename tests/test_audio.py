"""Audio checks: complete or refused; and the cache that only ever holds verified audio."""

from __future__ import annotations

import io
import math
import struct
from pathlib import Path

import av
import numpy as np
import pytest

from runner.audio import check_not_noise, check_plausible, decode, pcm_to_wav, probe, resample
from runner.cache import Cache, Levels, level_key
from runner.errors import AudioError
from runner.fsutil import atomic_file
from runner.providers.base import Audio


def _tone(seconds: float, rate: int = 22050) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * math.pi * 220 * t) * 12000).astype("<i2").tobytes()


def _mp3(seconds: float, rate: int = 44100) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=rate, layout="mono")
        samples = np.frombuffer(_tone(seconds, rate), "<i2").reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def test_a_complete_wav_probes_with_its_duration() -> None:
    info = probe(pcm_to_wav(_tone(1.5), 22050), "wav")
    assert (info.sample_rate, info.channels, info.frames) == (22050, 1, 33075)
    assert info.duration == pytest.approx(1.5)


@pytest.mark.parametrize("cut", [1, 100, 20000])
def test_a_wav_cut_short_is_refused(cut: int) -> None:
    data = pcm_to_wav(_tone(1.0), 22050)
    with pytest.raises(AudioError, match="cut short"):
        probe(data[:-cut], "wav")


@pytest.mark.parametrize(
    "data",
    [b"", b"RIFF\x00\x00\x00\x00WAVE", b"<html>502 Bad Gateway</html>", b"ID3garbage" * 10],
)
def test_things_that_are_not_wav_are_refused(data: bytes) -> None:
    with pytest.raises(AudioError):
        probe(data, "wav")


def test_streaming_wav_with_unknown_length_is_accepted() -> None:
    data = bytearray(pcm_to_wav(_tone(0.5), 22050))
    struct.pack_into("<I", data, 40, 0xFFFFFFFF)  # data chunk size "unknown"
    assert probe(bytes(data), "wav").frames == 11025


def test_mp3_decodes_and_garbage_mp3_is_refused() -> None:
    samples, rate = decode(_mp3(1.0), "mp3")
    assert rate == 44100
    assert len(samples) / rate == pytest.approx(1.0, abs=0.1)
    with pytest.raises(AudioError):
        probe(b"\x00\x01 definitely not mpeg audio " * 50, "mp3")


def test_plausibility_bounds_duration_by_text_length() -> None:
    info = probe(pcm_to_wav(_tone(0.2), 22050), "wav")
    check_plausible(info, 10)
    with pytest.raises(AudioError, match="not plausible"):
        check_plausible(info, 500)  # 0.2 s cannot speak 500 characters
    long = probe(pcm_to_wav(_tone(30.0), 22050), "wav")
    with pytest.raises(AudioError, match="not plausible"):
        check_plausible(long, 5)


def test_cache_keeps_only_verified_audio(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    key = "ab" * 32
    good = pcm_to_wav(_tone(1.0), 22050)
    with pytest.raises(AudioError):
        cache.put(key, Audio(good[:-1000], "wav"), 12)
    assert not any(tmp_path.rglob("*.*"))
    cached = cache.put(key, Audio(good, "wav"), 12)
    assert cached.path == tmp_path / "ab" / f"{key}.wav"
    assert cached.path.read_bytes() == good
    found = cache.find(key, "wav", 12)
    assert found is not None
    assert found.sha256 == cached.sha256
    cached.path.write_bytes(good[:-1000])  # damaged behind our back: not a cache hit
    assert cache.find(key, "wav", 12) is None


def test_raw_pcm_is_cached_as_self_describing_wav(tmp_path: Path) -> None:
    cached = Cache(tmp_path).put("cd" * 32, Audio(_tone(0.5, 44100), "pcm", 44100), 5)
    assert cached.path.suffix == ".wav"
    assert cached.info.sample_rate == 44100


def test_cache_finds_many_keys_in_their_order_with_their_levels(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    tone = _tone(1.0)
    good = cache.put("ab" * 32, Audio(pcm_to_wav(tone, 22050), "wav"), 12)
    pcm = cache.put("cd" * 32, Audio(tone, "pcm", 22050), 12)  # kept as wav
    damaged = cache.put("ab" + "ef" * 31, Audio(pcm_to_wav(tone, 22050), "wav"), 12)
    damaged.path.write_bytes(damaged.path.read_bytes()[:-1000])
    wanted = [
        ("cd" * 32, "pcm", 12),
        ("ab" + "00" * 31, "wav", 12),  # in a folder that exists, not cached
        ("ab" + "ef" * 31, "wav", 12),
        ("ee" * 32, "wav", 12),  # in a folder that does not exist
        ("ab" * 32, "wav", 12),
        ("ab" * 32, "mp3", 12),  # another format is another file
    ]
    found = cache.find_all(wanted)
    assert [f.sha256 if f else None for f in found] == [
        pcm.sha256,
        None,
        None,
        None,
        good.sha256,
        None,
    ]
    assert found == [cache.find(*w) for w in wanted]
    # each file's level was measured as it was cached: a 220 Hz sine at 12000/32768
    assert good.level is not None
    assert good.level.dbfs == pytest.approx(20 * math.log10(12000 / 32768 / math.sqrt(2)), abs=0.01)
    written = good.path.stat()
    assert good.level.key == level_key(good.sha256, written.st_size, written.st_mtime_ns)
    assert found[4] is not None
    assert found[4].level is None
    silent = cache.put("bb" * 32, Audio(pcm_to_wav(bytes(44100), 22050), "wav"), 12)
    assert silent.level is not None
    assert silent.level.dbfs is None
    levels = Levels()  # as a run holds them for its report
    levels.add(good.level)
    levels.add(silent.level)
    assert len(levels) == 2
    assert list(levels) == [(good.level.key, good.level.dbfs), (silent.level.key, None)]


def test_atomic_file_leaves_nothing_behind_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def crash_mid_write() -> None:
        with atomic_file(target) as f:
            f.write(b"new but incomplete")
            raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        crash_mid_write()
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_loud_white_noise_is_not_speech() -> None:
    rng = np.random.default_rng(11)
    noise = (0.3 * rng.standard_normal(22050)).clip(-1, 1).astype(np.float32)
    with pytest.raises(AudioError, match="noise, not speech"):
        check_not_noise(noise)
    check_not_noise((noise * 0.1).astype(np.float32))  # a quiet hiss under speech: allowed
    voice = (np.frombuffer(_tone(1.0), "<i2") / 32768).astype(np.float32)  # 220 Hz, loud
    check_not_noise(voice)
    # speech is voiced most of the time: sibilant bursts alone do not make it noise
    sibilant = noise.copy()
    sibilant[: 22050 * 3 // 4] = voice[: 22050 * 3 // 4]
    check_not_noise(sibilant)


def test_rf64_wav_decodes() -> None:
    pcm = _tone(0.5)
    data = pcm_to_wav(pcm, 22050)
    # the same samples with an RF64 header: sizes in ds64, 0xFFFFFFFF in the 32-bit fields
    ds64 = b"ds64" + struct.pack("<IQQQI", 28, 36 + 36 + len(pcm), len(pcm), len(pcm) // 2, 0)
    rf64 = b"RF64" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + ds64 + data[12:36]
    rf64 += b"data" + struct.pack("<I", 0xFFFFFFFF) + pcm
    samples, rate = decode(rf64, "wav")
    assert rate == 22050
    assert np.array_equal(samples, decode(data, "wav")[0])
    with pytest.raises(AudioError, match="cut short"):  # its ds64 size still catches a cut
        probe(rf64[:-100], "wav")


def test_resampling_keeps_duration_and_pitch() -> None:
    voice = (np.frombuffer(_tone(1.0, 16000), "<i2") / 32768).astype(np.float32)
    up = resample(voice, 16000, 44100)
    assert len(up) == pytest.approx(44100, abs=50)
    spectrum = np.abs(np.fft.rfft(up * np.hanning(len(up))))
    assert np.argmax(spectrum) * 44100 / len(up) == pytest.approx(220, abs=2)
