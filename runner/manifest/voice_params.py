"""Which voice parameters each provider kind takes, their ranges, and which combinations are
invalid — the manifest-side half of specs/providers.md, as data.

`RULES[kind]` checks combinations after each parameter passed its own check; it returns
(parameter or "", message) pairs for the problems it finds. `NOT_TAKEN[kind]` names the
parameters a voice's mode has no field for (a TTS.ai clone has no `speed`): `defaults` leave
them out of such a voice, and a voice or text that sets one is an error (by `RULES`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from runner.manifest.params import Param, ParamValue

__all__ = ["INDEX_EMOTIONS", "NOT_TAKEN", "OPUS_RATES", "PARAMS", "RULES"]

_AUDIO = (".wav", ".mp3", ".m4a")
_MB = 1 << 20

#: The sample rates the Opus codec encodes at (among those `sample_rate` accepts).
OPUS_RATES: Final = (8000, 16000, 24000, 48000)
#: The fields of TTS.ai's clone endpoint (POST /v1/tts/clone/, specs/providers.md §5).
TTSAI_CLONE_FIELDS: Final = "reference_audio, text, model, format and language"

INDEX_EMOTIONS: Final = (
    "happy",
    "angry",
    "sad",
    "afraid",
    "disgusted",
    "melancholic",
    "surprised",
    "calm",
)

PARAMS: Final[dict[str, dict[str, Param]]] = {
    "local": {
        "voice": Param("str"),  # an espeak-ng voice name, e.g. en-us, cmn, en-gb+f3
        "language": Param("str"),  # en, zh, auto (by script, per chunk) or a voice name
        "rate": Param("int", 80, 450),  # words per minute
        "pitch": Param("int", 0, 99),
    },
    "indextts": {
        "audio_id": Param("str"),
        "clone": Param(
            "mapping",
            fields={
                "audio": Param("file", extensions=_AUDIO, max_bytes=50 * _MB),
                "name": Param("str"),
                "describe": Param("str"),
            },
            required=("audio", "name"),
        ),
        "style": Param("choice", choices=(1, 2, 3)),
        "speed": Param("number", 0.5, 1.5),
        "genre": Param("choice", choices=(0, 1, 2)),
        "emotion": Param("mapping", fields={e: Param("number", 0.0, 1.0) for e in INDEX_EMOTIONS}),
        "emotion_ref": Param("file", extensions=_AUDIO, max_bytes=50 * _MB),
    },
    "voxcpm": {
        "prompt": Param("str"),
        "reference_audio": Param("file", extensions=(".wav", ".mp3", ".flac", ".m4a")),
        "reference_text": Param("str"),
    },
    "fish_yuntts": {
        "model": Param("choice", choices=("s1", "s2-pro")),
        "reference_id": Param("str"),
        "references": Param(
            "list",
            item=Param(
                "mapping",
                fields={
                    "audio": Param("file", extensions=(*_AUDIO, ".opus"), max_bytes=20 * _MB),
                    "text": Param("str"),
                },
                required=("audio",),
            ),
        ),
        "speakers": Param("list", item=Param("str")),
        "temperature": Param("number", 0.0, 1.0),
        "top_p": Param("number", 0.0, 1.0),
        "chunk_length": Param("int", 100, 300),
        "normalize": Param("bool"),
        "format": Param("choice", choices=("wav", "pcm", "mp3", "opus")),
        "sample_rate": Param("choice", choices=(8000, 16000, 22050, 24000, 32000, 44100, 48000)),
        "mp3_bitrate": Param("choice", choices=(64, 128, 192)),
        "opus_bitrate": Param("choice", choices=(-1000, 24000, 32000, 48000, 64000)),
        "latency": Param("choice", choices=("normal", "balanced", "low")),
        "prosody": Param(
            "mapping",
            fields={
                "speed": Param("number", 0.5, 2.0),
                "volume": Param("number", -20.0, 20.0),
                "normalize_loudness": Param("bool"),
            },
        ),
        "max_new_tokens": Param("int", 1, 4096),
        "repetition_penalty": Param("number", 0.5, 2.0),
        "min_chunk_length": Param("int", 0, 100),
        "condition_on_previous_chunks": Param("bool"),
        "early_stop_threshold": Param("number", 0.0, 1.0),
        "stream": Param("bool"),
    },
    "fishaudio_net": {
        "reference_id": Param("str"),
        "version": Param("choice", choices=("v1", "v2", "s1", "v3-turbo", "v3-hd")),
        "emotion": Param(
            "choice",
            choices=(
                "happy",
                "sad",
                "angry",
                "fearful",
                "disgusted",
                "surprised",
                "calm",
                "fluent",
                "auto",
            ),
        ),
        "speed": Param("number", 0.5, 2.0),
        "volume": Param("number", -20.0, 20.0),
        "format": Param("choice", choices=("mp3", "wav", "pcm")),
        "cache": Param("bool"),
    },
    "ttsai": {
        "model": Param("str"),
        "voice": Param("str"),
        "speed": Param("number", 0.5, 2.0),
        "language": Param("str"),
        "format": Param("choice", choices=("mp3", "wav", "flac")),
        "clone": Param(
            "mapping",
            fields={
                "reference_audio": Param(
                    "file", extensions=(*_AUDIO, ".flac", ".ogg"), max_bytes=20 * _MB
                ),
                "model": Param("str"),
            },
            required=("reference_audio",),
        ),
    },
}

Found = list[tuple[str, str]]


def _exactly_one(params: Mapping[str, ParamValue], names: tuple[str, ...], found: Found) -> None:
    present = [n for n in names if n in params]
    listed = " or ".join(f"`{n}`" for n in names)
    if not present:
        found.append(("", f"needs {listed}"))
    elif len(present) > 1:
        found.append((present[1], f"set only one of {listed}"))


def _indextts(p: Mapping[str, ParamValue]) -> Found:
    found: Found = []
    _exactly_one(p, ("audio_id", "clone"), found)
    genre, style = p.get("genre", 0), p.get("style")
    if genre in (1, 2) and style not in (None, 2):
        found.append(("style", f"genre {genre} needs the professional style 2, not {style}"))
    if genre == 1 and "emotion" not in p:
        found.append(("genre", "genre 1 (emotion-vector mode) needs `emotion` weights"))
    if genre == 2 and "emotion_ref" not in p:
        found.append(
            ("genre", "genre 2 (emotion-reference mode) needs `emotion_ref`, an audio file")
        )
    if "emotion" in p and genre != 1:
        found.append(("emotion", "`emotion` weights are used only with `genre: 1`"))
    if "emotion_ref" in p and genre != 2:
        found.append(("emotion_ref", "`emotion_ref` is used only with `genre: 2`"))
    return found


def _voxcpm(p: Mapping[str, ParamValue]) -> Found:
    found: Found = []
    if "reference_text" in p and "reference_audio" not in p:
        found.append(("reference_text", "`reference_text` describes `reference_audio`; set both"))
    if "reference_text" in p and "prompt" in p:
        found.append(
            (
                "prompt",
                "with `reference_audio` + `reference_text` (ultimate clone) the API takes no "
                "`prompt`; remove `prompt` or `reference_text`",
            )
        )
    return found


def _fish_yuntts(p: Mapping[str, ParamValue]) -> Found:
    found: Found = []
    _exactly_one(p, ("reference_id", "references", "speakers"), found)
    if "speakers" in p and p.get("model", "s2-pro") != "s2-pro":
        found.append(("speakers", "multi-speaker `speakers` needs `model: s2-pro`"))
    fmt = p.get("format", "mp3")
    if "mp3_bitrate" in p and fmt != "mp3":
        found.append(("mp3_bitrate", f"`mp3_bitrate` applies to format mp3, not {fmt}"))
    if "opus_bitrate" in p and fmt != "opus":
        found.append(("opus_bitrate", f"`opus_bitrate` applies to format opus, not {fmt}"))
    rate = p.get("sample_rate")
    if fmt == "opus" and rate is not None and rate not in OPUS_RATES:
        rates = ", ".join(map(str, OPUS_RATES[:-1])) + f" or {OPUS_RATES[-1]}"
        found.append(
            (
                "sample_rate",
                f"format opus is encoded at {rates} Hz, not {rate}; choose one of those (48000 "
                "when left out) or another `format`",
            )
        )
    return found


def _fishaudio_net(p: Mapping[str, ParamValue]) -> Found:
    found: Found = []
    if "reference_id" not in p:
        found.append(("", "needs `reference_id`"))
    version = p.get("version", "v1")
    if "emotion" in p and not str(version).startswith("v3"):
        found.append(
            ("emotion", f"`emotion` needs a v3 `version` (v3-turbo, v3-hd), not {version}")
        )
    return found


def _ttsai(p: Mapping[str, ParamValue]) -> Found:
    found: Found = []
    if "clone" in p:
        if "voice" in p:
            found.append(("voice", "a `clone` voice takes no `voice`; remove one of them"))
        if "speed" in p:
            found.append(
                (
                    "speed",
                    "TTS.ai's clone endpoint (/v1/tts/clone/) has no speed; it takes "
                    f"{TTSAI_CLONE_FIELDS}: remove `speed`, or use a stock `model` + `voice`",
                )
            )
    else:
        for name in ("model", "voice"):
            if name not in p:
                found.append(("", f"needs `{name}` (or `clone`)"))
    return found


def _not_taken_by_ttsai(p: Mapping[str, ParamValue]) -> frozenset[str]:
    return frozenset({"speed"}) if "clone" in p else frozenset()


NOT_TAKEN: Final[dict[str, Callable[[Mapping[str, ParamValue]], frozenset[str]]]] = {
    "ttsai": _not_taken_by_ttsai,
}

RULES: Final[dict[str, Callable[[Mapping[str, ParamValue]], Found]]] = {
    "local": lambda p: (
        [("voice", "set either `voice` or `language`")] if "voice" in p and "language" in p else []
    ),
    "indextts": _indextts,
    "voxcpm": _voxcpm,
    "fish_yuntts": _fish_yuntts,
    "fishaudio_net": _fishaudio_net,
    "ttsai": _ttsai,
}
