"""YAML → a tree of `Node`s that remember where each value (and each mapping key) was written.

PyYAML's `safe_load` forgets positions, and silently keeps the last of two duplicate keys. We
compose the node graph ourselves so that every problem found later can name file:line:column,
and so that a duplicate key is a problem rather than a silent overwrite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

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


#: PyYAML's terse complaints, each with the likely mistake and its fix (the first match wins).
_HINTS: Final = (
    ("'\\t'", "; YAML indents with spaces: replace the tab with spaces"),
    (
        "mapping values are not allowed here",
        "; either this line is indented deeper than the line above it, or a value contains "
        "`: ` and must be quoted",
    ),
    (
        "expected <block end>, but found '<scalar>'",
        "; a quoted value ends at its closing quote: check for a missing or an extra quote on "
        "this line or the one above (inside '...', write a quote as '')",
    ),
    (
        "expected <block end>",
        "; check the indentation: the items of one list or mapping must start in the same column",
    ),
    (
        "escape",
        "; inside double quotes a backslash starts an escape: use single quotes, or / in paths",
    ),
)


def _syntax_problem(file: str, text: str, exc: yaml.MarkedYAMLError) -> Problem:
    what = exc.problem or "is not valid YAML"
    start = exc.context_mark
    if exc.context == "while scanning a quoted scalar" and start is not None:
        # (the context of an unclosed quote only; bad escapes come "while scanning a
        # double-quoted scalar") PyYAML notices at the end of the file or document, but the place
        # to fix is the opening quote
        quote = text[start.index] if start.index < len(text) else '"'
        return _problem_at(
            file,
            start,
            f"YAML syntax error: the string quoted here is never closed; add the closing {quote}",
        )
    hint = next((h for pattern, h in _HINTS if pattern in what), "")
    return _problem_at(file, exc.problem_mark, f"YAML syntax error: {what}{hint}")


def parse_yaml(text: str, file: str) -> tuple[Node | None, list[Problem]]:
    """Parse one YAML document. Returns (root or None, problems)."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            return None, [_syntax_problem(file, text, exc)]
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
