"""Local files adapters send: reference recordings named by the manifest."""

from __future__ import annotations

import hashlib

from runner.errors import PermanentError
from runner.manifest.params import FileRef

__all__ = ["read_reference"]


def read_reference(ref: FileRef, account: str) -> bytes:
    """A reference recording's bytes, refused if it changed since the manifest named it: the
    segment keys were computed from the hash the manifest saw. Blocking: run in a thread."""
    try:
        data = ref.path.read_bytes()
    except OSError as exc:
        raise PermanentError(
            f"cannot read reference audio {ref.path}: {exc.strerror}", account=account
        ) from exc
    if hashlib.sha256(data).hexdigest() != ref.sha256:
        raise PermanentError(
            f"reference audio {ref.path} changed after the manifest was loaded; run again",
            account=account,
        )
    return data
