"""A ctypes binding to the espeak-ng library shipped in the `espeakng-loader` wheel.

Facts this binding is built around:
- The library must be initialised exactly once per process. With a bad data path it calls
  `exit(1)` unless `espeakINITIALIZE_DONT_EXIT` is set; even then the only sign of failure is a
  non-positive sample rate, which we check.
- The data path must be at most 159 characters (a fixed buffer inside the library); a longer
  one is reached through a short symlink in the temp directory.
- It is not thread-safe: voice selection, parameters and synthesis all happen under one
  process-wide lock. Callers in async code go through `anyio.to_thread`.
- A failed voice selection silently keeps the previous voice; we treat it as an error.
- Output: 16-bit mono PCM at the sample rate returned by initialisation (22050 Hz).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import tempfile
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

import espeakng_loader

__all__ = ["Espeak", "EspeakError", "engine", "voice_names"]

_SYNCHRONOUS: Final = 2  # AUDIO_OUTPUT_SYNCHRONOUS: samples are handed to our callback
_DONT_EXIT: Final = 0x8000  # espeakINITIALIZE_DONT_EXIT
_CHARS_UTF8: Final = 1  # espeakCHARS_UTF8
_POS_CHARACTER: Final = 1  # POS_CHARACTER
_RATE, _PITCH = 1, 3  # espeakRATE, espeakPITCH
_MAX_DATA_PATH: Final = 159

_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class EspeakError(Exception):
    """espeak-ng refused a request (unknown voice, synthesis error)."""


@dataclass(frozen=True)
class Speech:
    pcm: bytes  #: signed 16-bit little-endian mono
    sample_rate: int


def _data_path() -> str:
    path = espeakng_loader.get_data_path()
    if len(path) <= _MAX_DATA_PATH:
        return str(path)
    tag = hashlib.sha256(path.encode()).hexdigest()[:12]
    link = Path(tempfile.gettempdir()) / f"tts-runner-espeak-{os.getuid()}-{tag}"
    if not link.is_symlink():
        tmp = link.with_name(link.name + f".{os.getpid()}")
        tmp.symlink_to(path)
        tmp.replace(link)
    return str(link)


class Espeak:
    """The process-wide engine. Use `engine()`; constructing a second one is refused."""

    _created = False

    def __init__(self) -> None:
        if Espeak._created:
            raise RuntimeError("espeak-ng is initialised once per process; use engine()")
        Espeak._created = True
        self._lock = threading.Lock()
        self._chunks: list[bytes] = []
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
        lib.espeak_Info.restype = ctypes.c_char_p
        rate = lib.espeak_Initialize(_SYNCHRONOUS, 0, _data_path().encode(), _DONT_EXIT)
        if rate <= 0:
            raise EspeakError(f"espeak-ng failed to initialise (data: {_data_path()})")
        self.sample_rate: int = rate
        self.version: str = (lib.espeak_Info(None) or b"").decode()
        self._callback = _Callback(self._collect)  # kept referenced: C holds the pointer
        lib.espeak_SetSynthCallback(self._callback)
        self._lib = lib

    def _collect(self, wav: ctypes._Pointer[ctypes.c_short], count: int, _events: int) -> int:
        if wav and count > 0:
            self._chunks.append(ctypes.string_at(wav, count * 2))
        return 0  # continue synthesis

    def select(self, voice: str) -> bool:
        """Load `voice` ahead of speaking (what `speak` does first); False if unknown."""
        with self._lock:
            return bool(self._lib.espeak_SetVoiceByName(voice.encode()) == 0)

    def speak(self, text: str, voice: str, rate: int = 175, pitch: int = 50) -> Speech:
        """Synthesise `text` (blocking). Raises EspeakError."""
        data = text.encode("utf-8")
        with self._lock:
            if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise EspeakError(f"espeak-ng has no voice {voice!r}")
            self._lib.espeak_SetParameter(_RATE, rate, 0)
            self._lib.espeak_SetParameter(_PITCH, pitch, 0)
            self._chunks = []
            status = self._lib.espeak_Synth(
                data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
            pcm, self._chunks = b"".join(self._chunks), []
        if status != 0:
            raise EspeakError(f"espeak-ng synthesis failed with status {status}")
        return Speech(pcm, self.sample_rate)


_engine_lock = threading.Lock()
_engine: Espeak | None = None


def engine() -> Espeak:
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = Espeak()
        return _engine


@cache
def voice_names() -> frozenset[str]:
    """Every voice name espeak-ng knows (the files under its `lang/` tree), without loading it.

    Lower case: espeak-ng matches voice names without regard to case.
    """
    lang = Path(espeakng_loader.get_data_path()) / "lang"
    return frozenset(p.name.lower() for p in lang.rglob("*") if p.is_file())


@cache
def variant_names() -> frozenset[str]:
    """Voice variants usable as `voice+variant` (e.g. `en-us+f3`)."""
    variants = Path(espeakng_loader.get_data_path()) / "voices" / "!v"
    return frozenset(p.name.lower() for p in variants.iterdir() if p.is_file())
