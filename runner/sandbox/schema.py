"""Field-by-field checks of request bodies against the documented schema.

Unknown keys are recorded as deviations and otherwise ignored (as lenient servers do); a wrong
type or an out-of-range value is recorded and raises `Invalid`, which each emulator turns into
its own error reply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from runner.sandbox.exchange import Call

__all__ = ["Field", "Invalid", "Kind", "check", "integer", "matches", "number", "type_name"]


class Kind(StrEnum):
    STR = "string"
    INT = "integer"
    NUMBER = "number"
    BOOL = "boolean"
    OBJECT = "object"
    LIST = "array"
    BYTES = "binary"


def matches(kind: Kind, value: object) -> bool:
    """Whether a decoded JSON / MessagePack value has the type `kind`."""
    if isinstance(value, bool):
        return kind is Kind.BOOL
    match kind:
        case Kind.STR:
            return isinstance(value, str)
        case Kind.INT:
            return isinstance(value, int)
        case Kind.NUMBER:
            return isinstance(value, int | float)
        case Kind.OBJECT:
            return isinstance(value, dict)
        case Kind.LIST:
            return isinstance(value, list)
        case Kind.BYTES:
            return isinstance(value, bytes)
    return False


def type_name(value: object) -> str:
    """The JSON / MessagePack name of a decoded value's type."""
    for kind in (Kind.BOOL, Kind.INT, Kind.NUMBER, Kind.STR, Kind.OBJECT, Kind.LIST, Kind.BYTES):
        if matches(kind, value):
            return str(kind.value)
    return "null" if value is None else type(value).__name__


@dataclass(frozen=True)
class Field:
    name: str
    kinds: tuple[Kind, ...]
    lo: float | None = None
    hi: float | None = None
    choices: tuple[object, ...] | None = None
    code: str = ""  #: the provider's error code for this field, when it has a specific one

    @property
    def expected(self) -> str:
        text = " or ".join(k.value for k in self.kinds)
        if self.choices is not None:
            text += " one of " + " | ".join(map(str, self.choices))
        if self.lo is not None and self.hi is not None:
            text += f" in {self.lo:g}..{self.hi:g}"
        elif self.lo is not None:
            text += f" >= {self.lo:g}"
        return text


class Invalid(Exception):
    def __init__(self, field: Field, value: object, problem: str) -> None:
        super().__init__(f"{field.name}: {problem}")
        self.field = field
        self.value = value
        self.problem = problem


def check(
    call: Call,
    body: Mapping[str, object],
    fields: Sequence[Field],
    *,
    prefix: str = "",
    unknown: str = "not a documented field",
) -> None:
    """Validate the present keys of `body`; missing keys are the caller's business."""
    known = {f.name: f for f in fields}
    for key in body:
        if key not in known:
            call.deviate(f"{prefix}{key}", unknown, "only " + ", ".join(known))
    for f in fields:
        if f.name not in body:
            continue
        value = body[f.name]
        problem = _problem(f, value)
        if problem:
            call.deviate(f"{prefix}{f.name}", problem, f.expected)
            raise Invalid(f, value, problem)


def _problem(f: Field, value: object) -> str:
    if not any(matches(k, value) for k in f.kinds):
        return f"{type_name(value)} {value!r:.40}"
    if f.choices is not None and value not in f.choices:
        return f"{value!r:.40} is not allowed"
    if not isinstance(value, int | float) or isinstance(value, bool):
        return ""
    if (f.lo is not None and value < f.lo) or (f.hi is not None and value > f.hi):
        return f"{value!r} is out of range"
    return ""


def number(body: Mapping[str, object], key: str, default: float) -> float:
    """A checked numeric field, or `default` when absent."""
    value = body.get(key, default)
    return float(value) if isinstance(value, int | float) else default


def integer(body: Mapping[str, object], key: str, default: int) -> int:
    """A checked integer field, or `default` when absent."""
    value = body.get(key, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else default
