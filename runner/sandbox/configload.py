"""Build frozen config dataclasses from plain mappings (parsed YAML), strictly.

Unknown keys and wrong types are errors naming the dotted path, so a typo in a sandbox config
fails loudly instead of silently leaving a default in place.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

__all__ = ["ConfigError", "build"]

T = TypeVar("T")


class ConfigError(ValueError):
    """A sandbox configuration value is missing, unknown or of the wrong type."""


def build(cls: type[T], data: object, path: str = "sandbox") -> T:
    """An instance of the dataclass `cls` from `data`, checking every key and type."""
    value = _convert(cls, data, path)
    return typing.cast(T, value)


def _convert(tp: Any, data: object, path: str) -> object:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _dataclass(tp, data, path)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if data is None and type(None) in args:
            return None
        (inner,) = (a for a in args if a is not type(None))
        return _convert(inner, data, path)
    if origin is tuple:
        item_type = typing.get_args(tp)[0]
        if not isinstance(data, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {type(data).__name__}")
        return tuple(_convert(item_type, v, f"{path}[{i}]") for i, v in enumerate(data))
    if origin is dict:
        _, value_type = typing.get_args(tp)
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {type(data).__name__}")
        return {str(k): _convert(value_type, v, f"{path}.{k}") for k, v in data.items()}
    return _scalar(tp, data, path)


def _scalar(tp: Any, data: object, path: str) -> object:
    if tp is float and isinstance(data, int | float) and not isinstance(data, bool):
        return float(data)
    if tp is int and isinstance(data, int) and not isinstance(data, bool):
        return data
    if tp in (str, bool) and isinstance(data, tp):
        return data
    name = getattr(tp, "__name__", str(tp))
    raise ConfigError(f"{path}: expected {name}, got {data!r}")


def _dataclass(cls: type[Any], data: object, path: str) -> object:
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(str(k) for k in data if k not in names)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {sorted(names)}")
    kwargs = {str(k): _convert(hints[str(k)], v, f"{path}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
