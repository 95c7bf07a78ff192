"""IndexTTS voice models and emotion references: created on demand, remembered, reused.

- A `clone:` voice becomes a voice model once per recording (by content hash); the model's
  audioId is remembered in the state, so later runs reuse it. Models persist until deleted.
  A model made by `voices create`, or a reference by `refs upload`, is remembered the same way.
- An `emotion_ref:` file becomes an emotion reference when first needed. The service keeps it
  for 24 hours and at most 30 at once: we reuse one while it has a safety margin left, upload
  it again once expired, and delete the least recently used of ours to make room.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import aiohttp
import anyio

from runner.errors import PermanentError, TransientError
from runner.manifest.params import FileRef, ParamValue
from runner.plans import PRESETS
from runner.providers.base import VoiceModel
from runner.store import AssetRow

if TYPE_CHECKING:
    from runner.providers.indextts import IndexTTSProvider

__all__ = ["IndexAssets", "ReferenceGone"]

MODEL: Final = "model"
REFERENCE: Final = "emotion_ref"
#: A reference is reused only while it has this long left: a task created with it must not
#: find it gone.
REFERENCE_MARGIN: Final = 600.0
_AUDIO_TYPES: Final = {".wav": "audio/wav", ".mp3": "audio/mpeg", ".m4a": "audio/mp4"}


class ReferenceGone(PermanentError):
    """The emotion reference a task names no longer exists at IndexTTS."""


class IndexAssets:
    def __init__(self, provider: IndexTTSProvider) -> None:
        self.provider = provider
        self.context = provider.context
        preset = PRESETS[("indextts", self.context.account.plan)]
        self.reference_ttl = preset.reference_ttl or 24 * 3600.0
        self.reference_cap = preset.reference_cap or 30
        self._locks: dict[str, anyio.Lock] = {}

    def _lock(self, key: str) -> anyio.Lock:
        return self._locks.setdefault(key, anyio.Lock())

    @property
    def _account(self) -> str:
        return self.context.account.name

    # -- voice models -------------------------------------------------------------------------

    async def audio_id(self, params: Mapping[str, ParamValue], create: bool = True) -> str | None:
        """The voice model to speak with: given, or made from `clone:` once per recording."""
        if "audio_id" in params:
            return str(params["audio_id"])
        clone = params["clone"]
        assert isinstance(clone, Mapping)
        audio = clone["audio"]
        assert isinstance(audio, FileRef)
        store = self.context.store
        async with self._lock(f"model:{audio.sha256}"):
            known = store.asset(self._account, MODEL, audio.sha256) if store else None
            if known is not None:
                return known.remote_id
            if not create:
                return None
            model = await self.create_model(
                str(clone.get("name", audio.path.stem)), audio.path, str(clone.get("describe", ""))
            )
            self.remember_model(audio.sha256, model.id)
            self.context.events.emit(
                "voice_model_created", account=self._account, audio_id=model.id, name=model.name
            )
            return model.id

    def remember_model(self, sha256: str, audio_id: str) -> None:
        """Record a voice model made from the recording of digest `sha256`: runs whose
        `clone:` names the same recording speak with it instead of making another."""
        store = self.context.store
        if store is not None:
            now = time.time()
            store.save_asset(AssetRow(self._account, MODEL, sha256, audio_id, now, None, now))

    async def create_model(self, name: str, path: Path, describe: str) -> VoiceModel:
        data = await anyio.Path(path).read_bytes()

        async def upload() -> Any:
            form = aiohttp.FormData()
            form.add_field("file", data, filename=path.name, content_type=_content_type(path))
            form.add_field("name", name)
            if describe:
                form.add_field("describe", describe)
            return await self.provider.call(
                "POST", "/reference/upload", "create voice model", data=form
            )

        reply = await self.provider.http.retrying(upload, "create voice model")
        if not isinstance(reply, Mapping) or not isinstance(reply.get("audioId"), str):
            raise TransientError(
                "create voice model: the reply names no audioId", account=self._account
            )
        return VoiceModel(reply["audioId"], str(reply.get("name", name)), dict(reply))

    async def list_models(self) -> list[VoiceModel]:
        models: list[VoiceModel] = []
        page = 1
        while True:
            data = await self.provider.list_page("/reference/list", page, 20, "list voice models")
            items = data.get("list", [])
            models += [
                VoiceModel(str(m.get("audioId")), str(m.get("name", "")), dict(m)) for m in items
            ]
            if not items or page * 20 >= int(data.get("total", 0)):
                return models
            page += 1

    async def delete_model(self, audio_id: str) -> None:
        await self.provider.http.retrying(
            lambda: self.provider.call(
                "DELETE", "/reference/delete", "delete voice model", params={"audioId": audio_id}
            ),
            "delete voice model",
        )
        if self.context.store is not None:
            self.context.store.forget_asset(self._account, MODEL, audio_id)

    # -- emotion references -------------------------------------------------------------------

    async def emotion_path(self, ref: FileRef) -> str:
        """An emotionPath for `ref` that will outlive the task about to be created."""
        store = self.context.store
        # One lock for all references: making room under the cap must not race another upload.
        async with self._lock("references"):
            known = store.asset(self._account, REFERENCE, ref.sha256) if store else None
            now = time.time()
            if known is not None and (known.expires_at or 0) - REFERENCE_MARGIN > now:
                if store is not None:
                    store.touch_asset(self._account, REFERENCE, ref.sha256)
                return known.remote_id
            if known is not None and store is not None:
                store.forget_asset(self._account, REFERENCE, known.remote_id)
            await self._make_room()
            path = await self.upload_reference(ref.path)
            self.remember_reference(ref.sha256, path, now)
            self.context.events.emit("reference_uploaded", account=self._account, emotion_path=path)
            return path

    def remember_reference(self, sha256: str, emotion_path: str, uploaded_at: float) -> None:
        """Record an uploaded reference: runs naming the same audio reuse it while it lives,
        and count it against the account's cap."""
        store = self.context.store
        if store is not None:
            expires = uploaded_at + self.reference_ttl
            store.save_asset(
                AssetRow(
                    self._account,
                    REFERENCE,
                    sha256,
                    emotion_path,
                    uploaded_at,
                    expires,
                    uploaded_at,
                )
            )

    def forget_reference(self, params: Mapping[str, ParamValue]) -> None:
        ref = params.get("emotion_ref")
        store = self.context.store
        if isinstance(ref, FileRef) and store is not None:
            known = store.asset(self._account, REFERENCE, ref.sha256)
            if known is not None:
                store.forget_asset(self._account, REFERENCE, known.remote_id)

    async def _make_room(self) -> None:
        """Delete our least recently used live references until one more fits under the cap."""
        store = self.context.store
        if store is None:
            return
        now = time.time()
        live = [a for a in store.assets(self._account, REFERENCE) if (a.expires_at or 0) > now]
        for stale in [a for a in store.assets(self._account, REFERENCE) if a not in live]:
            store.forget_asset(self._account, REFERENCE, stale.remote_id)
        while len(live) >= self.reference_cap:
            oldest = live.pop(0)  # ordered by last use
            try:
                await self.delete_reference(oldest.remote_id)
            except PermanentError:
                store.forget_asset(self._account, REFERENCE, oldest.remote_id)  # already gone

    async def upload_reference(self, path: Path) -> str:
        data = await anyio.Path(path).read_bytes()

        async def upload() -> Any:
            form = aiohttp.FormData()
            form.add_field("file", data, filename=path.name, content_type=_content_type(path))
            return await self.provider.call(
                "POST", "/tts/uploadCustom", "upload reference", data=form
            )

        reply = await self.provider.http.retrying(upload, "upload reference")
        file = reply.get("file") if isinstance(reply, Mapping) else None
        if not isinstance(file, Mapping) or not isinstance(file.get("emotionPath"), str):
            raise TransientError(
                "upload reference: the reply names no emotionPath", account=self._account
            )
        return str(file["emotionPath"])

    async def list_references(self) -> list[VoiceModel]:
        refs: list[VoiceModel] = []
        page = 1
        while True:
            data = await self.provider.list_page("/tts/listCustom", page, 30, "list references")
            items = data.get("list", [])
            refs += [
                VoiceModel(str(r.get("emotionPath")), str(r.get("name", "")), dict(r))
                for r in items
            ]
            if not items or page * 30 >= int(data.get("total", 0)):
                return refs
            page += 1

    async def delete_reference(self, emotion_path: str) -> None:
        await self.provider.http.retrying(
            lambda: self.provider.call(
                "POST", "/tts/deleteCustom", "delete reference", json={"emotionPath": emotion_path}
            ),
            "delete reference",
        )
        if self.context.store is not None:
            self.context.store.forget_asset(self._account, REFERENCE, emotion_path)


def _content_type(path: Path) -> str:
    return _AUDIO_TYPES.get(path.suffix.lower(), "application/octet-stream")
