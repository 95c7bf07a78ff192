"""Fish (yuntts) voice models: create, list, update, delete, with the per-account model limit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from runner.sandbox import forms, probe
from runner.sandbox.emulator import Route
from runner.sandbox.exchange import Call, Reply
from runner.sandbox.ledger import Operation

if TYPE_CHECKING:
    from runner.sandbox.fish_yuntts.app import FishYunTTS

__all__ = ["CATALOG", "FishModel", "ModelEndpoints"]

API = "/api/v1/fish-audio"
VISIBILITIES = ("public", "unlist", "private")
SOURCES = ("official", "community", "upload")
VOICE_TYPES = ("mp3", "wav", "m4a", "opus")
CREATE_FIELDS = (
    "title",
    "voices",
    "visibility",
    "description",
    "cover_image",
    "train_mode",
    "texts",
    "tags",
    "enhance_audio_quality",
)
UPDATE_FIELDS = ("title", "description", "visibility", "tags", "cover_image")


@dataclass(frozen=True)
class FishModel:
    model_id: str
    owner: str  #: account label; "" for official voices
    title: str
    description: str = ""
    visibility: str = "private"
    tags: tuple[str, ...] = ()
    cover_image: str = ""
    train_mode: str = "fast"
    created: str = ""
    updated: str = ""

    @property
    def source(self) -> str:
        return "official" if not self.owner else "upload"


CATALOG = (
    FishModel(
        "7f92f8afb8ec43bf81429cc1c9199cb1", "", "官方女声 (official female)", visibility="public"
    ),
    FishModel(
        "54a5170264694bfc8e9ad98df7bd89c3", "", "官方男声 (official male)", visibility="public"
    ),
)


def _tags(text: str) -> tuple[str, ...]:
    """Comma-separated tags, as the form field carries them."""
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _when(wall: float) -> str:
    return dt.datetime.fromtimestamp(wall, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


class ModelEndpoints:
    def __init__(self, emulator: FishYunTTS) -> None:
        self.emu = emulator

    def routes(self) -> Sequence[Route]:
        return [
            Route("POST", f"{API}/model", self.create, Operation.MANAGE),
            Route("GET", f"{API}/model/list", self.list, Operation.LIST),
            Route("PATCH", f"{API}/model/update", self.update, Operation.MANAGE),
            Route("POST", f"{API}/model/update", self.update, Operation.MANAGE),
            Route("DELETE", f"{API}/model/delete", self.delete, Operation.MANAGE),
        ]

    def add(
        self,
        model_id: str,
        owner: str,
        *,
        title: str,
        wall: float,
        description: str = "",
        visibility: str = "private",
        cover_image: str = "",
        tags: tuple[str, ...] = (),
    ) -> FishModel:
        when = _when(wall)
        model = FishModel(
            model_id,
            owner,
            title,
            description,
            visibility,
            tags,
            cover_image,
            created=when,
            updated=when,
        )
        self.emu.models[model_id] = model
        return model

    def _cover(self, call: Call, form: forms.Form) -> str | None:
        """The URL of an uploaded cover image, checked; None when none was sent."""
        uploads = forms.files(form, "cover_image")
        if not uploads:
            return None
        data = forms.file_bytes(uploads[0])
        if probe.sniff(data) not in ("jpeg", "png"):
            raise self.emu.invalid(call, "cover_image", "not a jpg/png image", "jpg, jpeg or png")
        if len(data) > self.emu.config.max_cover_bytes:
            raise self.emu.invalid(call, "cover_image", f"{len(data)} bytes", "at most 5 MB")
        origin = call.request.url.origin()
        return f"{origin}/wp-content/uploads/covers/{self.emu.ids.hex(16)}.jpg"

    def _visibility(self, call: Call, value: str | None, default: str | None) -> str | None:
        if value is None:
            return default
        if value not in VISIBILITIES:
            raise self.emu.invalid(
                call, "visibility", repr(value), "public | unlist | private", "invalid_visibility"
            )
        return value

    def _check_voices(self, call: Call, form: forms.Form) -> None:
        emu = self.emu
        voices = forms.files(form, "voices")
        if not voices:
            raise emu.invalid(call, "voices", "missing", "1-10 audio files", "missing_audio")
        if len(voices) > 10:
            raise emu.invalid(call, "voices", f"{len(voices)} files", "≤ 10", "too_many_files")
        for voice in voices:
            data = forms.file_bytes(voice)
            suffix = voice.filename.rsplit(".", 1)[-1].lower()
            if suffix not in VOICE_TYPES or probe.sniff(data) not in (*VOICE_TYPES, "ogg"):
                raise emu.invalid(
                    call, "voices", f"{voice.filename!r}", "mp3/wav/m4a/opus", "invalid_audio_type"
                )
            if len(data) > emu.config.max_voice_bytes:
                raise emu.invalid(
                    call, "voices", f"{len(data)} bytes", "≤ 20 MB", "audio_too_large"
                )

    def _check_options(self, call: Call, form: forms.Form) -> tuple[str, str]:
        """The visibility and cover image URL of a new model, after checking every option."""
        emu = self.emu
        visibility = self._visibility(call, forms.text(form, "visibility"), "private") or "private"
        cover = self._cover(call, form)
        if visibility == "public" and cover is None:
            raise emu.invalid(
                call, "cover_image", "missing for a public model", "a cover", "missing_cover_image"
            )
        train_mode = forms.text(form, "train_mode") or "fast"
        if train_mode != "fast":
            raise emu.invalid(call, "train_mode", repr(train_mode), "fast")
        enhance = forms.text(form, "enhance_audio_quality")
        if enhance is not None and enhance.lower() not in ("true", "false", "1", "0"):
            raise emu.invalid(call, "enhance_audio_quality", repr(enhance), "true | false")
        return visibility, cover or ""

    async def create(self, call: Call) -> Reply:
        emu = self.emu
        account = emu.admit(call)
        if emu.media_type(call) != "multipart/form-data":
            raise emu.invalid(call, "Content-Type", emu.media_type(call), "multipart/form-data")
        form = await emu.form(call)
        forms.check_fields(call, form, CREATE_FIELDS)
        title = (forms.text(form, "title") or "").strip()
        if not title:
            raise emu.invalid(call, "title", "missing", "a model title", "missing_title")
        self._check_voices(call, form)
        visibility, cover = self._check_options(call, form)
        limit = account.config.model_limit
        owned = sum(1 for m in emu.models.values() if m.owner == account.label)
        if limit is not None and owned >= limit:
            raise call.refuse(400, "model_limit_exceeded", f"model limit of {limit} reached")
        model = self.add(
            emu.ids.hex(),
            account.label,
            title=title,
            wall=call.clock.wall(),
            description=forms.text(form, "description") or "",
            visibility=visibility,
            cover_image=cover,
            tags=_tags(forms.text(form, "tags") or ""),
        )
        return Reply.json(
            {
                **self._view(model, account.label),
                "state": "created",
                "samples": [],
                "reference_id": model.model_id,
                "message": "音色模型创建成功,训练中请稍候",
            }
        )

    def _view(self, model: FishModel, viewer: str) -> dict[str, object]:
        return {
            "model_id": model.model_id,
            "title": model.title,
            "description": model.description,
            "visibility": model.visibility,
            "train_mode": model.train_mode,
            "cover_image": model.cover_image,
            "is_own": model.owner == viewer,
        }

    def _int(self, call: Call, name: str, default: int, low: int, high: int) -> int:
        raw = call.request.query.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise self.emu.invalid(call, name, f"{raw!r}", "an integer") from None
        if not low <= value <= high:
            raise self.emu.invalid(call, name, f"{value} out of range", f"{low}..{high}")
        return value

    async def list(self, call: Call) -> Reply:
        emu = self.emu
        account = emu.admit(call)
        query = call.request.query
        page = self._int(call, "page", 1, 1, 1_000_000)
        size = self._int(call, "page_size", 20, 1, 100)
        visibility = self._visibility(call, query.get("visibility"), None)
        source = query.get("source")
        if source is not None and source not in SOURCES:
            raise emu.invalid(call, "source", repr(source), "official | community | upload")
        search = query.get("search", "").lower()
        items = []
        for m in reversed(emu.models.values()):
            src = m.source if m.owner in ("", account.label) else "community"
            if m.owner not in ("", account.label) and m.visibility != "public":
                continue
            if (visibility and m.visibility != visibility) or (source and src != source):
                continue
            if search and search not in m.title.lower():
                continue
            items.append(
                {
                    "_id": m.model_id,
                    **self._view(m, account.label),
                    "state": "trained",
                    "tags": list(m.tags),
                    "created_at": m.created,
                    "updated_at": m.updated,
                    "like_count": 0,
                    "mark_count": 0,
                    "shared_count": 0,
                    "task_count": 0,
                    "samples": [],
                    "languages": ["zh-CN"],
                    "voice_source": src,
                    "author": {
                        "_id": m.owner or "0",
                        "nickname": m.owner or "official",
                        "avatar": "",
                    },
                }
            )
        start = (page - 1) * size
        return Reply.json(
            {
                "total": len(items),
                "items": items[start : start + size],
                "has_more": start + size < len(items),
            }
        )

    def _own(self, call: Call, account_label: str) -> FishModel:
        model_id = call.request.query.get("model_id", "")
        if not model_id:
            raise self.emu.invalid(
                call, "model_id", "missing", "query ?model_id=", "missing_params"
            )
        model = self.emu.models.get(model_id)
        if model is None:
            raise call.refuse(404, "model_not_found", f"model {model_id} not found or deleted")
        if model.owner != account_label:
            raise call.refuse(403, "permission_denied", "you may only change your own models")
        return model

    async def update(self, call: Call) -> Reply:
        emu = self.emu
        account = emu.admit(call)
        model = self._own(call, account.label)
        changes: dict[str, str] = {}
        cover: str | None = None
        if emu.media_type(call) == "multipart/form-data":
            form = await emu.form(call)
            forms.check_fields(call, form, UPDATE_FIELDS)
            cover = self._cover(call, form)
            values = {k: forms.text(form, k) for k in UPDATE_FIELDS if k != "cover_image"}
        else:
            body = await emu.json_body(call)
            for key in body:
                if key not in UPDATE_FIELDS or key == "cover_image":
                    call.deviate(key, "not an updatable JSON field", "title, description, ...")
            values = {k: v if isinstance(v, str) else None for k, v in body.items()}
        for key in ("title", "description", "visibility", "tags"):
            if values.get(key) is not None:
                changes[key] = str(values[key])
        if cover is not None:
            changes["cover_image"] = cover
        if not changes:
            raise emu.invalid(
                call, "<body>", "nothing to update", "at least one field", "missing_params"
            )
        self._visibility(call, changes.get("visibility"), None)
        if changes.get("visibility") == "public" and not (cover or model.cover_image):
            raise emu.invalid(
                call, "cover_image", "missing for a public model", "a cover", "missing_cover_image"
            )
        tags = _tags(changes.pop("tags", ",".join(model.tags)))
        model = replace(model, **changes, tags=tags, updated=_when(call.clock.wall()))
        emu.models[model.model_id] = model
        view = self._view(model, account.label)
        del view["train_mode"], view["is_own"]
        return Reply.json({**view, "message": "音色模型更新成功"})

    async def delete(self, call: Call) -> Reply:
        account = self.emu.admit(call)
        model = self._own(call, account.label)
        del self.emu.models[model.model_id]
        return Reply.json({"model_id": model.model_id, "message": "音色模型删除成功"})
