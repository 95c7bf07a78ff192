"""What `voices` and `refs` do once connected: one `Action` per subcommand, each a few lines
over the adapter's own operations (see `runner.providers.base.Provider`)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from runner.errors import UsageError
from runner.manifest.params import hash_file
from runner.providers.base import Provider, VoiceModel

if TYPE_CHECKING:
    from runner.providers.indextts_assets import IndexAssets

__all__ = ["ACTIONS", "Action", "voice_line"]

#: Detail keys worth a column in text output, as the providers name them.
_SHOWN: Final = ("model", "language", "gender", "level", "state", "visibility", "createdAt")
#: The voice parameter that names a model, per provider kind (for the hint after `create`).
_VOICE_PARAM: Final = {"indextts": "audio_id", "fish_yuntts": "reference_id"}

Result = tuple[dict[str, object], list[str]]


def _nothing(parser_or_args: object) -> None:
    del parser_or_args


@dataclass(frozen=True)
class Action:
    name: str
    help: str
    operation: str  #: the Provider method it needs, or "refs" (IndexTTS only)
    perform: Callable[[Provider, argparse.Namespace], Awaitable[Result]]
    arguments: Callable[[argparse.ArgumentParser], None] = _nothing
    check: Callable[[argparse.Namespace], None] = _nothing  #: before anything is sent
    writes_state: bool = False  #: the state's records of what the runner created are updated
    #: provider kinds for which it records something new: the manifest's state is created if
    #: no run made it yet
    creates_state: frozenset[str] = frozenset()


def voice_line(voice: VoiceModel) -> str:
    extra = ", ".join(f"{k} {voice.details[k]}" for k in _SHOWN if voice.details.get(k))
    return f"  {voice.id}  {voice.name}" + (f"  ({extra})" if extra else "")


def _document(voice: VoiceModel) -> dict[str, object]:
    return {"id": voice.id, "name": voice.name, "details": dict(voice.details)}


def _listing(items: list[VoiceModel], what: str, key: str) -> Result:
    lines = [f"{len(items)} {what}{'' if len(items) == 1 else 's'}", *map(voice_line, items)]
    return {key: [_document(v) for v in items]}, lines


def _files_exist(args: argparse.Namespace) -> None:
    for path in args.files:
        if not Path(path).is_file():
            raise UsageError(f"{path}: no such file; nothing was sent")


# -- voices -------------------------------------------------------------------------------------


async def _voices_list(provider: Provider, args: argparse.Namespace) -> Result:
    del args
    return _listing(await provider.list_voices(), "voice model", "voices")


def _create_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="AUDIO", help="recordings")
    parser.add_argument("--name", required=True, help="the model's name at the provider")
    parser.add_argument("--describe", default="", metavar="TEXT", help="a description")
    parser.add_argument(
        "--text",
        action="append",
        default=[],
        dest="texts",
        metavar="TRANSCRIPT",
        help="what a recording says, once per recording in order (Fish; else it transcribes)",
    )


async def _voices_create(provider: Provider, args: argparse.Namespace) -> Result:
    voice = await provider.create_voice(
        args.name, list(args.files), describe=args.describe, texts=list(args.texts)
    )
    line = f"created voice model {voice.id} ({voice.name})"
    param = _VOICE_PARAM.get(provider.kind)
    if param:
        line += f"; speak with it as `{param}: {voice.id}`"
    return {"created": _document(voice)}, [line]


def _ids_argument(metavar: str) -> Callable[[argparse.ArgumentParser], None]:
    def add(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("ids", nargs="+", metavar=metavar)

    return add


async def _voices_delete(provider: Provider, args: argparse.Namespace) -> Result:
    for voice_id in args.ids:
        await provider.delete_voice(voice_id)
    return {"deleted": list(args.ids)}, [f"deleted voice model {i}" for i in args.ids]


# -- emotion references (IndexTTS) --------------------------------------------------------------


def _assets(provider: Provider) -> IndexAssets:
    # imported here: the adapters (and aiohttp) load only when an account command runs
    from runner.providers.indextts import IndexTTSProvider

    if not isinstance(provider, IndexTTSProvider):  # choose_account admits only IndexTTS
        raise UsageError(f"{provider.account} has no emotion references")
    return provider.assets


async def _refs_list(provider: Provider, args: argparse.Namespace) -> Result:
    del args
    refs = await _assets(provider).list_references()
    return _listing(refs, "emotion reference", "references")


def _upload_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="AUDIO", help="mp3, wav or m4a")


async def _refs_upload(provider: Provider, args: argparse.Namespace) -> Result:
    assets = _assets(provider)
    uploaded: list[Mapping[str, str]] = []
    for path in args.files:
        sha256, _ = hash_file(path)
        now = time.time()
        emotion_path = await assets.upload_reference(path)
        # a run naming this audio as `emotion_ref:` reuses it instead of uploading it again
        assets.remember_reference(sha256, emotion_path, now)
        uploaded.append({"file": str(path), "emotion_path": emotion_path})
    hours = assets.reference_ttl / 3600
    lines = [
        f"uploaded {u['file']} as emotion reference {u['emotion_path']} (kept {hours:g} h)"
        for u in uploaded
    ]
    return {"uploaded": uploaded}, lines


async def _refs_delete(provider: Provider, args: argparse.Namespace) -> Result:
    assets = _assets(provider)
    for emotion_path in args.ids:
        await assets.delete_reference(emotion_path)
    return {"deleted": list(args.ids)}, [f"deleted emotion reference {i}" for i in args.ids]


ACTIONS: Final[Mapping[str, tuple[Action, ...]]] = {
    "voices": (
        Action("list", "list the account's voice models", "list_voices", _voices_list),
        Action(
            "create",
            "create a voice model from recordings",
            "create_voice",
            _voices_create,
            arguments=_create_arguments,
            check=_files_exist,
            # an IndexTTS model is recorded, as a run's `clone:` model is
            writes_state=True,
            creates_state=frozenset({"indextts"}),
        ),
        Action(
            "delete",
            "delete voice models by id",
            "delete_voice",
            _voices_delete,
            arguments=_ids_argument("VOICE_ID"),
            writes_state=True,
        ),
    ),
    "refs": (
        Action("list", "list the account's emotion references", "refs", _refs_list),
        Action(
            "upload",
            "upload recordings as emotion references",
            "refs",
            _refs_upload,
            arguments=_upload_arguments,
            check=_files_exist,
            writes_state=True,
            creates_state=frozenset({"indextts"}),
        ),
        Action(
            "delete",
            "delete emotion references by emotionPath",
            "refs",
            _refs_delete,
            arguments=_ids_argument("EMOTION_PATH"),
            writes_state=True,
        ),
    ),
}
