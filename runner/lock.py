"""One run per state directory, enforced with an advisory lock on `<state>/lock`.

`flock` is released by the kernel when the holder dies, even by kill -9, so a lock left by a
killed run is never stale: the next run simply takes it. The file's content (pid, start time,
command) only serves the message shown to a second run while the first is alive.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType

from runner.errors import StateLocked

__all__ = ["RunLock"]


class RunLock:
    def __init__(self, directory: Path) -> None:
        self.path = directory / "lock"
        self._fd: int | None = None

    def __repr__(self) -> str:
        return f"<RunLock {str(self.path)!r} held={self._fd is not None}>"

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise StateLocked(self._held_message()) from None
            raise
        holder = {
            "pid": os.getpid(),
            "started_at": time.time(),
            "host": socket.gethostname(),
            "argv": sys.argv[1:],
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def _held_message(self) -> str:
        directory = self.path.parent
        try:
            holder = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            holder = {}
        if not isinstance(holder, dict) or "pid" not in holder:
            return f"state directory {directory} is in use by another tts-runner process"
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started_at", 0)))
        return (
            f"state directory {directory} is in use by another run: pid {holder['pid']} on "
            f"{holder.get('host', '?')}, started {started}; wait for it to finish or stop it "
            f"(kill {holder['pid']}), or use another --state directory"
        )

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
