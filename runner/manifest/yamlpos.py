"""YAML → a tree of `Node`s that remember where each value (and each mapping key) was written.

PyYAML's `safe_load` forgets positions, and silently keeps the last of two duplicate keys. We
compose the node graph ourselves so that every problem found later can name file:line:column,
and so that a duplicate key is a problem rather than a silent overwrite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from runner.errors import Problem

__all__ = ["Node", "parse_yaml"]

Scalar = str | int | float | bool | None


@dataclass
class Node:
    """A YAML value with its 1-based position; mappings also keep their keys' positions."""

    value: dict[str, Node] | list[Node] | Scalar | object
    line: int
    column: int
    key_positions: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """A user-facing name of the value's type, for messages."""
        v = self.value
        if isinstance(v, dict):
            return "a mapping"
        if isinstance(v, list):
            return "a list"
        if v is None:
            return "empty (null)"
        if isinstance(v, bool):
            return "a boolean"
        if isinstance(v, int):
            return "an integer"
        if isinstance(v, float):
            return "a number"
        if isinstance(v, str):
            return "a string"
        return type(v).__name__


def _problem_at(file: str, mark: yaml.Mark | None, message: str) -> Problem:
    if mark is None:
        return Problem(file, 0, 0, message)
    return Problem(file, mark.line + 1, mark.column + 1, message)


def parse_yaml(text: str, file: str) -> tuple[Node | None, list[Problem]]:
    """Parse one YAML document. Returns (root or None, problems)."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            what = exc.problem or "is not valid YAML"
            return None, [_problem_at(file, exc.problem_mark, f"YAML syntax error: {what}")]
        except yaml.YAMLError as exc:
            return None, [Problem(file, 0, 0, f"YAML error: {exc}")]
        if root is None:
            return None, [Problem(file, 1, 1, "the file is empty; a manifest needs `texts`")]
        problems: list[Problem] = []
        return _convert(loader, root, file, problems), problems
    finally:
        loader.dispose()


def _convert(loader: yaml.SafeLoader, node: yaml.Node, file: str, problems: list[Problem]) -> Node:
    line, column = node.start_mark.line + 1, node.start_mark.column + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves `<<` merge keys
        out = Node({}, line, column)
        mapping: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key_line, key_col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(Problem(file, key_line, key_col, "a key must be a plain word"))
                continue
            key = str(loader.construct_object(key_node))
            if key in mapping:
                first = out.key_positions[key][0]
                problems.append(
                    Problem(
                        file,
                        key_line,
                        key_col,
                        f"duplicate key `{key}` (first set on line {first}); keep one of them",
                    )
                )
                continue
            mapping[key] = _convert(loader, value_node, file, problems)
            out.key_positions[key] = (key_line, key_col)
        out.value = mapping
        return out
    if isinstance(node, yaml.SequenceNode):
        return Node([_convert(loader, item, file, problems) for item in node.value], line, column)
    try:
        value = loader.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        problems.append(Problem(file, line, column, f"cannot read this value: {exc}"))
        value = None
    return Node(value, line, column)


def read_text_file(path: Path) -> str:
    """Read a UTF-8 file (a BOM is tolerated). Raises OSError / UnicodeDecodeError."""
    return path.read_text(encoding="utf-8-sig")
