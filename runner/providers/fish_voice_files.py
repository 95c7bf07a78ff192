"""The recordings a Fish (yuntts) voice model is made from, checked against the seed's limits
before anything is uploaded."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from runner.errors import PermanentError

__all__ = ["MAX_VOICE_BYTES", "MAX_VOICE_FILES", "VOICE_TYPES", "voice_files"]

VOICE_TYPES: Final = {
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".m4a": "audio/mp4",
    ".opus": "audio/opus",
}
MAX_VOICE_FILES: Final = 10
MAX_VOICE_BYTES: Final = 20 * 1024 * 1024


def voice_files(paths: list[Path], account: str) -> list[tuple[str, bytes]]:
    """The recordings for a new model, checked against the seed's limits before uploading."""
    if not 1 <= len(paths) <= MAX_VOICE_FILES:
        raise PermanentError(
            f"a voice model takes 1 to {MAX_VOICE_FILES} recordings, not {len(paths)}",
            account=account,
        )
    files = [(path.name, path.read_bytes()) for path in paths]
    for name, data in files:
        if Path(name).suffix.lower() not in VOICE_TYPES or len(data) > MAX_VOICE_BYTES:
            raise PermanentError(
                f"{name}: a voice recording is mp3, wav, m4a or opus, at most 20 MB",
                account=account,
            )
    return files
