"""The embedded offline engine (espeak-ng): real speech with no key and no network."""

from __future__ import annotations

import io
import re
import wave
from collections.abc import Mapping
from importlib.metadata import version
from typing import ClassVar, Final

import anyio.to_thread

from runner.errors import PermanentError
from runner.manifest.params import ParamValue
from runner.providers.base import Audio, Mode, Provider, Request
from runner.providers.espeak import EspeakError
from runner.providers.espeak_fork import forking_engine

__all__ = ["LocalProvider", "resolve_params"]

#: Manifest languages → espeak-ng voices.
LANGUAGE_VOICES: Final = {"en": "en-us", "zh": "cmn"}
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")
ENGINE: Final = f"espeak-ng/{version('espeakng-loader')}"


def resolve_params(params: Mapping[str, ParamValue], text: str) -> dict[str, ParamValue]:
    """The exact engine settings for one chunk: `language` becomes a concrete `voice`.

    `auto` picks by script, per chunk: Chinese when Han characters outnumber Latin letters,
    so a bilingual book speaks each chunk in its own language.
    """
    resolved: dict[str, ParamValue] = {
        "rate": params.get("rate", 175),
        "pitch": params.get("pitch", 50),
        "engine": ENGINE,  # a new engine build may sound different: part of the segment key
    }
    voice = params.get("voice")
    if voice is None:
        language = str(params.get("language", "auto"))
        if language == "auto":
            han, latin = len(_HAN.findall(text)), len(_LATIN.findall(text))
            language = "zh" if han > latin else "en"
        voice = LANGUAGE_VOICES.get(language, language)
    resolved["voice"] = voice
    return resolved


class LocalProvider(Provider):
    mode: ClassVar[Mode] = Mode.SYNC
    kind: ClassVar[str] = "local"
    paid: ClassVar[bool] = False

    async def synthesize(self, request: Request) -> Audio:
        params = request.params
        voice, rate, pitch = str(params["voice"]), params["rate"], params["pitch"]
        assert isinstance(rate, int)
        assert isinstance(pitch, int)
        async with self.context.slot():
            await request.on_send()
            self.context.stats.requests += 1
            try:
                speech = await anyio.to_thread.run_sync(
                    lambda: forking_engine().speak(request.text, voice, rate, pitch)
                )
            except EspeakError as exc:
                raise PermanentError(str(exc), account=self.account) from exc
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(speech.sample_rate)
            out.writeframes(speech.pcm)
        return Audio(buffer.getvalue(), "wav", speech.sample_rate)
