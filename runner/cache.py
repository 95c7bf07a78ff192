"""The audio cache: verified segment audio, addressed by segment key.

`cache/<k[:2]>/<key>.<format>`. A file appears there only after it parsed, proved plausible for
its text and was written atomically; so a file present under a key is that key's audio. That
makes the cache a second witness beside the state database: a segment whose audio is already
cached is never requested again, even when the database lost track of it.

Its level (RMS) is measured as it is verified, from the samples already decoded, so that the
report does not decode a book's worth of files once more to find the silent ones.
"""

from __future__ import annotations

import hashlib
import math
import os
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from runner.audio import (
    AudioInfo,
    check_not_noise,
    check_plausible,
    decode,
    pcm_to_wav,
    probe,
    rms_dbfs,
)
from runner.errors import AudioError
from runner.fsutil import atomic_write
from runner.providers.base import Audio

__all__ = ["Cache", "Cached", "Level", "Levels", "files_in", "level_key"]


def files_in(folder: Path) -> set[str]:
    """The names of the files in `folder` (none if it cannot be listed)."""
    try:
        with os.scandir(folder) as entries:
            return {entry.name for entry in entries if entry.is_file()}
    except OSError:
        return set()


def _file_name(key: str, fmt: str) -> str:
    """The name `key`'s audio is cached under (raw PCM is kept as WAV: see `Cache.put`)."""
    return f"{key}.{'wav' if fmt == 'pcm' else fmt}"


def level_key(sha256: str, size: int, mtime_ns: int) -> int:
    """Where the level of a cached file is remembered: its digest, size and time, hashed to 64
    bits (a book's 100,000 keys are held as small ints, not 90-character strings)."""
    text = f"{sha256}:{size}:{mtime_ns}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


@dataclass(frozen=True, slots=True)
class Level:
    """The RMS of a file just cached, and where it is remembered (see `level_key`)."""

    key: int
    dbfs: float | None  #: None: digital silence


class Levels:
    """Levels of many cached files, packed: a first run of a book measures 100,000 as it
    caches them, and holds them until its report (16 bytes each, not a dict's hundred)."""

    def __init__(self) -> None:
        self._keys = array("Q")
        self._dbfs = array("d")  # NaN: silent

    def add(self, level: Level) -> None:
        self._keys.append(level.key)
        self._dbfs.append(math.nan if level.dbfs is None else level.dbfs)

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[tuple[int, float | None]]:
        """(key, dBFS or None when silent), as the report's level memory keeps them."""
        for key, dbfs in zip(self._keys, self._dbfs, strict=True):
            yield key, None if math.isnan(dbfs) else dbfs


@dataclass(frozen=True)
class Cached:
    path: Path
    sha256: str
    info: AudioInfo
    level: Level | None = None  #: measured when it was cached (not when found again)


class Cache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def __repr__(self) -> str:
        return f"<Cache {str(self.root)!r}>"

    def path_for(self, key: str, fmt: str) -> Path:
        return self.root / key[:2] / _file_name(key, fmt)

    def put(self, key: str, audio: Audio, chars: int) -> Cached:
        """Verify `audio` and store it under `key` (blocking: call from a worker thread).

        Raises AudioError when the audio is incomplete or implausible; nothing is written then.
        """
        data, fmt = audio.data, audio.format
        if fmt == "pcm":  # headerless: keep it self-describing
            if audio.sample_rate is None:
                raise AudioError("raw PCM arrived without a known sample rate")
            probe(data, "pcm", audio.sample_rate)
            data, fmt = pcm_to_wav(data, audio.sample_rate), "wav"
        info = probe(data, fmt)
        check_plausible(info, chars)
        samples = decode(data, fmt)[0]
        check_not_noise(samples)  # a valid header over garbage samples
        dbfs = rms_dbfs(samples)
        del samples
        path = self.path_for(key, fmt)
        atomic_write(path, data)
        sha256 = hashlib.sha256(data).hexdigest()
        written = os.stat(path)
        level = Level(
            level_key(sha256, written.st_size, written.st_mtime_ns),
            dbfs if math.isfinite(dbfs) else None,
        )
        return Cached(path, sha256, info, level)

    def find(self, key: str, fmt: str, chars: int) -> Cached | None:
        """The cached audio for `key` if present and valid (blocking)."""
        path = self.path_for(key, fmt)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            info = probe(data, path.suffix[1:])
            check_plausible(info, chars)
        except AudioError:
            return None
        return Cached(path, hashlib.sha256(data).hexdigest(), info)

    def find_all(self, wanted: Sequence[tuple[str, str, int]]) -> list[Cached | None]:
        """`find` for each (key, format, chars) of `wanted`, in its order (blocking). Each
        folder is listed once and only files listed are read: a first run's 100,000 keys
        cost 256 listings, not 100,000 failed opens."""
        found: list[Cached | None] = [None] * len(wanted)
        by_folder: dict[str, list[int]] = {}
        for i, (key, _, _) in enumerate(wanted):
            by_folder.setdefault(key[:2], []).append(i)
        for folder, indices in by_folder.items():  # one listing is held at a time
            names = files_in(self.root / folder)
            for i in indices:
                key, fmt, chars = wanted[i]
                if _file_name(key, fmt) in names:
                    found[i] = self.find(key, fmt, chars)
        return found
