"""Files that are complete or absent: write to a temporary file in the same directory, fsync it,
rename it over the target, fsync the directory. A crash at any instant leaves either the old
file or the new one, never a truncated one.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from runner.errors import DiskFull

__all__ = ["atomic_file", "atomic_write", "fsync_dir"]


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file object that becomes `path` only if the block completes without error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
        fsync_dir(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            why = "a file-size limit was reached" if exc.errno == errno.EFBIG else "no space left"
            raise DiskFull(
                f"{why} writing in {path.parent}; nothing was left half-written"
                " — free some space (or raise the limit) and run again"
            ) from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: Path, data: bytes) -> None:
    with atomic_file(path) as f:
        f.write(data)
