"""Reproducible espeak-ng: every utterance is spoken from the engine's freshly initialised state.

espeak-ng keeps state from one utterance to the next inside the library (its pitch flutter
and wave generator run on), so the same text gives slightly different samples depending on
what the process spoke before — and a book resumed after a crash would not come out
byte-identical to an undisturbed run. Neither resetting nor re-initialising the library clears
that state.

So the engine lives in a helper process that initialises it once and never speaks itself: for
each utterance it forks (a copy-on-write copy of the pristine state, about a millisecond),
the child speaks and hands the samples back through a pipe, and exits. Utterances are served
one at a time, as the library is single-threaded anyway.

Protocol on the helper's stdin/stdout: a request is one JSON line `{text, voice, rate, pitch}`;
an answer is `status (1 byte: 0 ok, 1 error), sample rate (4), length (4), payload`, the
payload being PCM or a UTF-8 error message.
"""

from __future__ import annotations

import atexit
import json
import os
import struct
import subprocess
import sys
import threading
from typing import IO, Final

from runner.providers.espeak import Espeak, EspeakError, Speech

__all__ = ["ForkingEngine", "forking_engine"]

_HEADER: Final = struct.Struct("<BII")


class ForkingEngine:
    """The engine of this process (`forking_engine()`), spoken to through its helper."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._helper = subprocess.Popen(
            [sys.executable, "-m", "runner.providers.espeak_fork"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        ready = self._read(self._out)
        self.sample_rate, self.version = ready.sample_rate, ready.pcm.decode()

    @property
    def _out(self) -> IO[bytes]:
        assert self._helper.stdout is not None
        return self._helper.stdout

    def speak(self, text: str, voice: str, rate: int = 175, pitch: int = 50) -> Speech:
        """Synthesise `text` (blocking). Raises EspeakError."""
        request = json.dumps({"text": text, "voice": voice, "rate": rate, "pitch": pitch})
        with self._lock:
            assert self._helper.stdin is not None
            try:
                self._helper.stdin.write(request.encode() + b"\n")
                self._helper.stdin.flush()
            except BrokenPipeError as exc:
                raise EspeakError("the espeak-ng helper process is gone") from exc
            return self._read(self._out)

    @staticmethod
    def _read(stream: IO[bytes]) -> Speech:
        header = stream.read(_HEADER.size)
        if len(header) < _HEADER.size:
            raise EspeakError("the espeak-ng helper process ended unexpectedly")
        status, rate, length = _HEADER.unpack(header)
        payload = stream.read(length)
        if len(payload) < length:
            raise EspeakError("the espeak-ng helper process ended mid-answer")
        if status != 0:
            raise EspeakError(payload.decode(errors="replace"))
        return Speech(payload, rate)

    def close(self) -> None:
        if self._helper.stdin is not None:
            self._helper.stdin.close()
        self._helper.wait(timeout=10)
        self._out.close()


_engine_lock = threading.Lock()
_engine: ForkingEngine | None = None


def forking_engine() -> ForkingEngine:
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = ForkingEngine()
            atexit.register(_engine.close)
        return _engine


# -- the helper process -------------------------------------------------------------------------


def _answer(out: IO[bytes], status: int, rate: int, payload: bytes) -> None:
    out.write(_HEADER.pack(status, rate, len(payload)) + payload)
    out.flush()


def _serve() -> None:  # pragma: no cover - runs in the helper process, exercised by every test
    out = sys.stdout.buffer
    engine = Espeak()
    _answer(out, 0, engine.sample_rate, engine.version.encode())
    for line in sys.stdin.buffer:
        request = json.loads(line)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: speak from the pristine state, hand the samples back, leave
            os.close(read_end)
            try:
                speech = engine.speak(
                    request["text"], request["voice"], request["rate"], request["pitch"]
                )
                answer = _HEADER.pack(0, speech.sample_rate, len(speech.pcm)) + speech.pcm
            except EspeakError as exc:
                message = str(exc).encode()
                answer = _HEADER.pack(1, 0, len(message)) + message
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(answer)
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            answer = pipe.read()
        os.waitpid(pid, 0)
        if len(answer) < _HEADER.size:
            message = b"espeak-ng crashed while speaking"
            answer = _HEADER.pack(1, 0, len(message)) + message
        out.write(answer)
        out.flush()


if __name__ == "__main__":
    _serve()
