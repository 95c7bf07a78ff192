"""TTS.ai's models, voices and prices (seed 004), as one table.

# NOTE: credits are charged per started 1000 characters: ceil(characters / 1000) times the
# tier's price. The seed's own example agrees: 34 characters with kokoro (standard, 2 per 1000)
# report "X-Credits-Used: 2". Speech-to-text is charged per started audio minute likewise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from runner.sandbox.encode import AudioFormat

__all__ = [
    "FORMATS",
    "MODELS",
    "STT_MODELS",
    "VOICES",
    "Model",
    "Voice",
    "clone_credits",
    "stt_credits",
    "tts_credits",
]

TIER_CREDITS = {"basic": 1, "standard": 2, "premium": 4}
CLONE_CREDITS_PER_1K = 4
STT_CREDITS_PER_MINUTE = 2
STT_MODELS = ("whisper", "faster-whisper", "sensevoice")
#: Output formats the emulator produces honestly, with their Content-Type.
FORMATS = {
    "mp3": (AudioFormat.MP3, "audio/mpeg"),
    "wav": (AudioFormat.WAV, "audio/wav"),
    "flac": (AudioFormat.FLAC, "audio/flac"),
    "opus": (AudioFormat.OPUS, "audio/ogg"),
    "aac": (AudioFormat.AAC, "audio/aac"),
    "pcm": (AudioFormat.PCM, "audio/pcm"),
}


@dataclass(frozen=True)
class Model:
    id: str
    name: str
    tier: str
    languages: tuple[str, ...]
    supports_cloning: bool
    supports_streaming: bool

    @property
    def credits_per_1k(self) -> int:
        return TIER_CREDITS[self.tier]

    def view(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "type": "tts",
            "tier": self.tier,
            "languages": list(self.languages),
            "supports_cloning": self.supports_cloning,
            "supports_streaming": self.supports_streaming,
            "credits_per_1k_chars": self.credits_per_1k,
        }


@dataclass(frozen=True)
class Voice:
    id: str
    name: str
    model: str
    language: str
    gender: str


MODELS = {
    m.id: m
    for m in (
        Model("piper", "Piper", "basic", ("en", "de", "fr", "es", "it", "zh"), False, True),
        Model("vits", "VITS", "basic", ("en",), False, False),
        Model("melotts", "MeloTTS", "basic", ("en", "es", "fr", "zh", "ja", "ko"), False, True),
        Model("kokoro", "Kokoro", "standard", ("en", "ja", "ko", "zh", "fr"), False, True),
        Model("cosyvoice2", "CosyVoice 2", "standard", ("zh", "en", "ja", "ko"), True, True),
        Model("tortoise", "Tortoise", "premium", ("en",), True, False),
        Model("chatterbox", "Chatterbox", "premium", ("en",), True, True),
        Model("gpt-sovits", "GPT-SoVITS", "premium", ("zh", "en", "ja"), True, False),
    )
}
VOICES = (
    Voice("af_bella", "Bella", "kokoro", "en", "female"),
    Voice("af_sarah", "Sarah", "kokoro", "en", "female"),
    Voice("am_adam", "Adam", "kokoro", "en", "male"),
    Voice("bf_emma", "Emma", "kokoro", "en", "female"),
    Voice("zf_xiaobei", "Xiaobei", "kokoro", "zh", "female"),
    Voice("en_US-lessac-medium", "Lessac", "piper", "en", "male"),
    Voice("en_US-amy-medium", "Amy", "piper", "en", "female"),
    Voice("de_DE-thorsten-medium", "Thorsten", "piper", "de", "male"),
    Voice("p225", "VCTK p225", "vits", "en", "female"),
    Voice("EN-US", "English (US)", "melotts", "en", "neutral"),
    Voice("ZH", "Chinese", "melotts", "zh", "neutral"),
    Voice("zh_female", "中文女", "cosyvoice2", "zh", "female"),
    Voice("en_male", "English male", "cosyvoice2", "en", "male"),
    Voice("tom", "Tom", "tortoise", "en", "male"),
    Voice("default", "Default", "chatterbox", "en", "neutral"),
    Voice("default", "Default", "gpt-sovits", "zh", "neutral"),
)


def tts_credits(model: Model, characters: int) -> int:
    return math.ceil(characters / 1000) * model.credits_per_1k


def clone_credits(characters: int) -> int:
    return math.ceil(characters / 1000) * CLONE_CREDITS_PER_1K


def stt_credits(seconds: float) -> int:
    return math.ceil(seconds / 60) * STT_CREDITS_PER_MINUTE
