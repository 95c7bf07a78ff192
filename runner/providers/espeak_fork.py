"""Reproducible espeak-ng: every utterance is spoken from the engine's freshly initialised state.

espeak-ng keeps state from one utterance to the next inside the library (its pitch flutter
and wave generator run on), so the same text gives slightly different samples depending on
what the process spoke before — and a book resumed after a crash would not come out
byte-identical to an undisturbed run. Neither resetting nor re-initialising the library clears
that state.

So the engine lives in a helper process that initialises it once and never speaks itself: for
each utterance it forks (a copy-on-write copy of the pristine state), the child speaks and
hands the samples back through a pipe, and exits. Utterances are served one at a time, as the
library is single-threaded anyway.

The fork, and loading the voice, cost more than speaking a short sentence. So the child for the
*next* utterance in a voice is forked while the current one speaks, and loads that voice while
it waits; the next request is then handed to it through a pipe. One such child is kept for each
of the last few voices; an utterance in another voice gets a fresh child that loads nothing
ahead. So every utterance is still spoken from the initialised state plus exactly its own voice
(loading a voice twice leaves the same state as loading it once).

Protocol on the helper's stdin/stdout: a request is one JSON line `{text, voice, rate, pitch}`;
an answer is `status (1 byte: 0 ok, 1 error), sample rate (4), length (4), payload`, the
payload being PCM or a UTF-8 error message.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Iterable
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


class _Child:
    """A child forked ahead of its utterance, with `voice` loaded (None: nothing loaded)."""

    def __init__(self, engine: Espeak, voice: str | None, siblings: Iterable[_Child] = ()) -> None:
        self.voice = voice
        request_read, self.request = os.pipe()
        self.answer, answer_write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - the child: exits, never returns
            # only its own pipes: a sibling must see the end of its requests when the helper
            # goes away
            for fd in (self.request, self.answer, *(f for c in siblings for f in c.fds)):
                os.close(fd)
            _speak_once(engine, voice, request_read, answer_write)
        os.close(request_read)
        os.close(answer_write)

    @property
    def fds(self) -> tuple[int, ...]:
        """Its pipes' ends still open in the helper."""
        return tuple(fd for fd in (self.request, self.answer) if fd >= 0)

    def send(self, line: bytes) -> None:
        with os.fdopen(self.request, "wb") as pipe:
            pipe.write(line)
        self.request = -1

    def receive(self) -> bytes:
        with os.fdopen(self.answer, "rb") as pipe:
            answer = pipe.read()
        self.answer = -1
        if len(answer) < _HEADER.size:
            message = b"espeak-ng crashed while speaking"
            answer = _HEADER.pack(1, 0, len(message)) + message
        return answer

    def dismiss(self) -> None:
        """Unused: stopped at once (it may still be loading its voice)."""
        os.kill(self.pid, signal.SIGKILL)
        for fd in self.fds:
            os.close(fd)
        os.waitpid(self.pid, 0)


def _speak_once(engine: Espeak, voice: str | None, requests: int, answers: int) -> None:
    """In a forked child: load `voice`, wait for one request, answer it, and exit."""
    try:
        if voice is not None:
            engine.select(voice)  # a failure shows when speaking, with the usual message
        with os.fdopen(requests, "rb") as pipe:
            line = pipe.readline()
        if line:
            request = json.loads(line)
            try:
                speech = engine.speak(
                    request["text"], request["voice"], request["rate"], request["pitch"]
                )
                answer = _HEADER.pack(0, speech.sample_rate, len(speech.pcm)) + speech.pcm
            except EspeakError as exc:
                message = str(exc).encode()
                answer = _HEADER.pack(1, 0, len(message)) + message
            with os.fdopen(answers, "wb") as pipe:
                pipe.write(answer)
    finally:
        os._exit(0)


#: Children kept ready, one per voice used lately (a bilingual book alternates two voices).
_READY_VOICES: Final = 3


def _serve() -> None:  # pragma: no cover - runs in the helper process, exercised by every test
    out = sys.stdout.buffer
    engine = Espeak()
    _answer(out, 0, engine.sample_rate, engine.version.encode())
    ready: dict[str, _Child] = {}  #: by voice, least recently used first
    for line in sys.stdin.buffer:
        voice = str(json.loads(line)["voice"])
        child = ready.pop(voice, None) or _Child(engine, None, ready.values())
        child.send(line)
        # its successor is forked while it speaks (the fork costs about as much as speaking)
        ready[voice] = _Child(engine, voice, [*ready.values(), child])
        out.write(child.receive())
        out.flush()
        os.waitpid(child.pid, 0)
        while len(ready) > _READY_VOICES:
            ready.pop(next(iter(ready))).dismiss()
    for child in ready.values():
        child.dismiss()


if __name__ == "__main__":
    _serve()
