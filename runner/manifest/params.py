"""Declarative parameter specs (voice and synthesis parameters per provider kind) and their check.

A spec is data: a type, a range or a set of choices, nested fields. Checking a YAML value
against a spec yields a plain JSON-like value, except files, which become `FileRef`s carrying
the content hash: a segment's key must change when a reference recording changes, not when it
moves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from runner.manifest.check import Checker
from runner.manifest.yamlpos import Node

__all__ = ["FileRef", "Param", "ParamValue", "check_param"]

ParamType = Literal[
    "str", "int", "number", "bool", "choice", "file", "mapping", "list", "str_or_list"
]


@dataclass(frozen=True)
class FileRef:
    """A file named by a manifest, resolved and hashed when the manifest is loaded."""

    path: Path
    sha256: str
    size: int


ParamValue = str | int | float | bool | FileRef | dict[str, "ParamValue"] | list["ParamValue"]


@dataclass(frozen=True)
class Param:
    type: ParamType
    lo: float | None = None
    hi: float | None = None
    choices: tuple[object, ...] = ()
    fields: Mapping[str, Param] = field(default_factory=dict)  #: for "mapping"
    required: tuple[str, ...] = ()  #: for "mapping"
    item: Param | None = None  #: for "list"
    max_items: int | None = None  #: for "list"
    extensions: tuple[str, ...] = ()  #: for "file": accepted suffixes, lower case
    max_bytes: int | None = None  #: for "file"


def hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def check_param(
    c: Checker, node: Node, what: str, spec: Param, base_dir: Path
) -> ParamValue | None:
    """Check `node` against `spec`; returns the value, or None after adding a problem."""
    if spec.type == "str":
        return c.string(node, what)
    if spec.type == "int":
        lo = None if spec.lo is None else int(spec.lo)
        hi = None if spec.hi is None else int(spec.hi)
        return c.integer(node, what, lo, hi)
    if spec.type == "number":
        return c.number(node, what, spec.lo, spec.hi)
    if spec.type == "bool":
        return c.boolean(node, what)
    if spec.type == "choice":
        value = c.choice(node, what, spec.choices)
        return value if isinstance(value, (str, int, float)) else None
    if spec.type == "file":
        return _check_file(c, node, what, spec, base_dir)
    if spec.type == "mapping":
        return _check_mapping(c, node, what, spec, base_dir)
    if spec.type == "list":
        return _check_list(c, node, what, spec, base_dir)
    # str_or_list: a string, or a non-empty list of strings
    if isinstance(node.value, list):
        items = [c.string(item, f"{what}[{i}]") for i, item in enumerate(node.value)]
        if not items:
            c.add(node, f"`{what}` must not be an empty list")
            return None
        strings = [s for s in items if s is not None]
        return list[ParamValue](strings) if len(strings) == len(items) else None
    return c.string(node, what)


def _check_file(c: Checker, node: Node, what: str, spec: Param, base_dir: Path) -> FileRef | None:
    name = c.string(node, what)
    if name is None:
        return None
    path = (base_dir / Path(name).expanduser()).resolve()
    if spec.extensions and path.suffix.lower() not in spec.extensions:
        allowed = ", ".join(spec.extensions)
        c.add(node, f"`{what}` must be a {allowed} file, not {path.name!r}")
        return None
    if not path.is_file():
        c.add(node, f"`{what}`: file not found: {path}")
        return None
    try:
        sha256, size = hash_file(path)
    except OSError as exc:
        c.add(node, f"`{what}`: cannot read {path}: {exc.strerror}")
        return None
    if spec.max_bytes is not None and size > spec.max_bytes:
        c.add(node, f"`{what}`: {path.name} is {size:,} bytes; at most {spec.max_bytes:,} allowed")
        return None
    return FileRef(path, sha256, size)


def _check_mapping(
    c: Checker, node: Node, what: str, spec: Param, base_dir: Path
) -> dict[str, ParamValue] | None:
    items = c.mapping(node, what)
    if items is None:
        return None
    c.keys(node, f"`{what}`", spec.fields, spec.required)
    out: dict[str, ParamValue] = {}
    ok = all(k in items for k in spec.required) and all(k in spec.fields for k in items)
    for key, child in items.items():
        if key in spec.fields:
            value = check_param(c, child, f"{what}.{key}", spec.fields[key], base_dir)
            if value is None:
                ok = False
            else:
                out[key] = value
    return out if ok else None


def _check_list(
    c: Checker, node: Node, what: str, spec: Param, base_dir: Path
) -> list[ParamValue] | None:
    items = c.sequence(node, what)
    if items is None:
        return None
    if not items:
        c.add(node, f"`{what}` must not be an empty list")
        return None
    if spec.max_items is not None and len(items) > spec.max_items:
        c.add(node, f"`{what}` has {len(items)} items; at most {spec.max_items} allowed")
        return None
    assert spec.item is not None
    values = [
        check_param(c, item, f"{what}[{i}]", spec.item, base_dir) for i, item in enumerate(items)
    ]
    checked = [v for v in values if v is not None]
    return checked if len(checked) == len(values) else None
