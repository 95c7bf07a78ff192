"""The audio cache: verified segment audio, addressed by segment key.

`cache/<k[:2]>/<key>.<format>`. A file appears there only after it parsed, proved plausible for
its text and was written atomically; so a file present under a key is that key's audio. That
makes the cache a second witness beside the state database: a segment whose audio is already
cached is never requested again, even when the database lost track of it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from runner.audio import AudioInfo, check_not_noise, check_plausible, decode, pcm_to_wav, probe
from runner.errors import AudioError
from runner.fsutil import atomic_write
from runner.providers.base import Audio

__all__ = ["Cache", "Cached"]


@dataclass(frozen=True)
class Cached:
    path: Path
    sha256: str
    info: AudioInfo


class Cache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def __repr__(self) -> str:
        return f"<Cache {str(self.root)!r}>"

    def path_for(self, key: str, fmt: str) -> Path:
        return self.root / key[:2] / f"{key}.{fmt}"

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
        check_not_noise(decode(data, fmt)[0])  # a valid header over garbage samples
        path = self.path_for(key, fmt)
        atomic_write(path, data)
        return Cached(path, hashlib.sha256(data).hexdigest(), info)

    def find(self, key: str, fmt: str, chars: int) -> Cached | None:
        """The cached audio for `key` if present and valid (blocking)."""
        path = self.path_for(key, "wav" if fmt == "pcm" else fmt)
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
