"""IndexTTS voice models (/reference/...) and emotion references (/tts/...Custom)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

from runner.sandbox import forms, probe
from runner.sandbox.emulator import Route
from runner.sandbox.exchange import Call, Reply
from runner.sandbox.indextts.state import CST, EmotionRef, stamp
from runner.sandbox.ledger import Operation

if TYPE_CHECKING:
    from runner.sandbox.accounts import Account
    from runner.sandbox.indextts.app import IndexTTS

__all__ = ["AssetEndpoints"]

API = "/api/third"
AUDIO_TYPES = ("wav", "mp3", "m4a")
MODEL_SECONDS = (2.0, 60.0)


class AssetEndpoints:
    def __init__(self, emulator: IndexTTS) -> None:
        self.emu = emulator

    def routes(self) -> Sequence[Route]:
        return [
            Route("POST", f"{API}/reference/upload", self.upload_model, Operation.MANAGE),
            Route("GET", f"{API}/reference/list", self.list_models, Operation.LIST),
            Route("GET", f"{API}/reference/detail", self.model_detail, Operation.LIST),
            Route("DELETE", f"{API}/reference/delete", self.delete_model, Operation.MANAGE),
            Route("POST", f"{API}/tts/uploadCustom", self.upload_reference, Operation.MANAGE),
            Route("GET", f"{API}/tts/listCustom", self.list_references, Operation.LIST),
            Route("POST", f"{API}/tts/deleteCustom", self.delete_reference, Operation.MANAGE),
        ]

    # -- shared ----------------------------------------------------------------------------

    async def _audio_file(self, call: Call, known: Sequence[str]) -> tuple[forms.Form, str, bytes]:
        """The multipart form and its `file`: checked for presence, size and type."""
        emu = self.emu
        if emu.media_type(call) != "multipart/form-data":
            raise emu.invalid(call, "Content-Type", emu.media_type(call), "multipart/form-data")
        form = await emu.form(call)
        forms.check_fields(call, form, known)
        uploads = forms.files(form, "file")
        if not uploads:
            raise emu.invalid(call, "file", "missing", "the audio in form field `file`")
        upload = uploads[0]
        data = forms.file_bytes(upload)
        if len(data) >= emu.config.max_upload_bytes:
            raise emu.too_large(call)
        kind = probe.sniff(data)
        if kind not in AUDIO_TYPES:
            raise emu.invalid(call, "file", f"{kind or 'unknown'} content", "mp3, wav or m4a")
        return form, upload.filename, data

    def _param(self, call: Call, name: str, body: dict[str, object] | None = None) -> str:
        value = call.request.query.get(name) or (body or {}).get(name)
        if not isinstance(value, str) or not value:
            raise self.emu.invalid(call, name, "missing", f"the {name} parameter")
        return value

    # -- voice models ----------------------------------------------------------------------

    async def upload_model(self, call: Call) -> Reply:
        emu = self.emu
        account = emu.admit(call)
        form, _, data = await self._audio_file(call, ("file", "name", "describe"))
        name = (forms.text(form, "name") or "").strip()
        if not name:
            raise emu.invalid(call, "name", "missing", "a model name")
        seconds = probe.duration(data)
        if seconds is None:
            raise emu.fail(call, "音频无法解析 (the audio could not be decoded)")
        low, high = MODEL_SECONDS
        if not low <= seconds <= high:
            raise emu.invalid(call, "file", f"{seconds:.1f} s long", f"{low:g}-{high:g} s of audio")
        describe = forms.text(form, "describe") or ""
        model = emu.add_model(
            emu.ids.base58(),
            account.label,
            level=emu.config.upload_level,
            name=name,
            describe=describe,
        )
        return emu.ok({"audioId": model.audio_id, "name": model.name, "describe": describe})

    async def list_models(self, call: Call) -> Reply:
        account = self.emu.admit(call)
        page, size = self.emu.page(call, max_size=20)
        mine = [m for m in reversed(self.emu.models.values()) if m.account == account.label]
        items = [
            {
                "audioId": m.audio_id,
                "name": m.name,
                "describe": m.describe,
                "level": m.level,
                "createdAt": stamp(m.created_wall),
            }
            for m in mine
        ]
        return self.emu.ok(self.emu.paged(items, page, size), "获取成功")

    async def model_detail(self, call: Call) -> Reply:
        account = self.emu.admit(call)
        if not account.config.detail_available:
            call.code = "404"
            return Reply.text("404 page not found", 404)
        audio_id = self._param(call, "audioId")
        model = self.emu.models.get(audio_id)
        if model is None or model.account != account.label:
            raise self.emu.fail(call, f"模型不存在 (voice model not found): {audio_id}")
        return self.emu.ok(
            {
                "audioId": model.audio_id,
                "name": model.name,
                "describe": model.describe,
                "level": model.level,
                "createdAt": stamp(model.created_wall),
            }
        )

    async def delete_model(self, call: Call) -> Reply:
        account = self.emu.admit(call)
        body = await self.emu.json_body(call) if call.request.can_read_body else None
        audio_id = self._param(call, "audioId", body)
        model = self.emu.models.get(audio_id)
        if model is None or model.account != account.label:
            raise self.emu.fail(call, f"模型不存在 (voice model not found): {audio_id}")
        del self.emu.models[audio_id]
        return self.emu.ok({}, "删除成功")

    # -- emotion references ----------------------------------------------------------------

    def live_references(self, account: Account) -> list[EmotionRef]:
        """The account's references, dropping any whose lifetime has passed."""
        now = self.emu.ctx.clock.now()
        refs = self.emu.references
        for path in [p for p, r in refs.items() if r.expires_at <= now]:
            del refs[path]
        return [r for r in refs.values() if r.account == account.label]

    async def upload_reference(self, call: Call) -> Reply:
        emu = self.emu
        account = emu.admit(call)
        _, filename, data = await self._audio_file(call, ("file",))
        cap = emu.config.reference_cap
        if len(self.live_references(account)) >= cap:
            raise emu.fail(
                call,
                f"参考音频数量已达上限 {cap} 个，请先删除 "
                f"(reference limit of {cap} reached: delete one to upload another)",
            )
        suffix = probe.sniff(data) or "wav"
        when = dt.datetime.fromtimestamp(call.clock.wall(), CST).strftime("%Y%m%d%H%M%S")
        path = f"{emu.ids.hex()}_{when}.{suffix}"
        emu.references[path] = EmotionRef(
            emotion_path=path,
            account=account.label,
            name=filename,
            created_wall=call.clock.wall(),
            expires_at=call.clock.now() + emu.config.reference_ttl,
        )
        return emu.ok({"file": {"emotionPath": path}}, "上传成功")

    async def list_references(self, call: Call) -> Reply:
        account = self.emu.admit(call)
        page, size = self.emu.page(call, max_size=30)
        refs = list(reversed(self.live_references(account)))
        items = [
            {"emotionPath": r.emotion_path, "name": r.name, "createdAt": stamp(r.created_wall)}
            for r in refs
        ]
        return self.emu.ok(self.emu.paged(items, page, size), "获取成功")

    async def delete_reference(self, call: Call) -> Reply:
        emu = self.emu
        account = emu.admit(call)
        value: object
        if emu.media_type(call) in ("multipart/form-data", "application/x-www-form-urlencoded"):
            form = await emu.form(call)
            forms.check_fields(call, form, ("emotionPath",))
            value = forms.text(form, "emotionPath")
        else:
            body = await emu.json_body(call)
            value = body.get("emotionPath")
        if not isinstance(value, str) or not value:
            raise emu.invalid(call, "emotionPath", "missing", "the emotionPath to delete")
        live = {r.emotion_path for r in self.live_references(account)}
        if value not in live:
            raise emu.fail(call, f"参考音频不存在 (reference not found): {value}")
        del emu.references[value]
        return emu.ok({}, "删除成功")
