"""Reading multipart and urlencoded forms the way the vendors' servers do."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web
from multidict import MultiDictProxy

from runner.sandbox.exchange import Call

__all__ = ["Form", "check_fields", "file_bytes", "files", "text"]

Form = MultiDictProxy[str | bytes | bytearray | web.FileField]


def text(form: Form, name: str) -> str | None:
    """A text field's value (None when absent; a file sent under that name reads as None)."""
    value = form.get(name)
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def files(form: Form, name: str) -> list[web.FileField]:
    return [v for v in form.getall(name, []) if isinstance(v, web.FileField)]


def file_bytes(field: web.FileField) -> bytes:
    field.file.seek(0)
    return field.file.read()


def check_fields(call: Call, form: Form, known: Iterable[str]) -> None:
    """Record a deviation for every form field the documentation does not name."""
    allowed = set(known)
    for name in sorted(set(form.keys()) - allowed):
        call.deviate(name, "not a documented form field", "only " + ", ".join(sorted(allowed)))
