"""YAML → a tree of `Node`s that remember where each value (and each mapping key) was written.

PyYAML's `safe_load` forgets positions, and silently keeps the last of two duplicate keys. We
compose the node graph ourselves so that every problem found later can name file:line:column,
and so that a duplicate key is a problem rather than a silent overwrite.
"""

from __future__ import annotations

import re
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


def parse_yaml(text: str, file: str, *, _pure: bool = False) -> tuple[Node | None, list[Problem]]:
    """Parse one YAML document. Returns (root or None, problems).

    libyaml composes a large manifest some thirty times faster, but PyYAML's Python loader stays
    the reference (its messages, its marks): wherever libyaml fails or might read the text
    otherwise, the Python loader parses it again. `_pure` skips libyaml, for comparisons.
    """
    if not _pure and yaml.__with_libyaml__:
        try:
            fast = _parse_fast(text, file)
        except Exception:  # whatever went wrong, the Python loader reports it as it always has
            fast = None
        if fast is not None:
            return fast
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


def _parse_fast(text: str, file: str) -> tuple[Node, list[Problem]] | None:
    """libyaml's parse, or None where it might differ from the Python loader's."""
    if text.startswith("\ufeff"):
        text = text[1:]  # libyaml's indexes skip a leading one; no line or column counts it
    if "\ufeff" in text:
        return None  # the Python reader gives a byte-order mark no column, libyaml gives it one
    if _has_directive(text):
        return None  # libyaml takes `%YAML 1.1#`
    loader = yaml.CSafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None or not _agrees(text, root):
            return None
        problems: list[Problem] = []
        return _convert(loader, root, file, problems, strict=True), problems
    finally:
        loader.dispose()


def _has_directive(text: str) -> bool:
    at = text.find("%")
    while at >= 0:
        if at == 0 or text[at - 1] in "\r\n\x85\u2028\u2029":
            return True
        at = text.find("%", at + 1)
    return False


#: The start of a block scalar's header that both scanners read alike (libyaml also takes `|#`).
_BLOCK_HEADER: Final = re.compile(r"[|>](?:[1-9][+-]?|[+-][1-9]?)?(?=[ \r\n\x85\u2028\u2029]|\Z)")


def _agrees(text: str, root: yaml.Node) -> bool:
    """Whether the Python loader surely composes this same tree, with the same marks.

    Where the two are known to part, libyaml takes a tab wherever it takes a space (PyYAML only
    inside quoted and block scalars), a `?` inside a plain scalar of a flow collection, tags that
    PyYAML rejects, and a `#` right after a block scalar's `|`; it places some empty values at the
    next token (or past the end) rather than after the `:`, and reads an empty value tagged `!`
    as "" rather than null.
    """
    literal: list[tuple[int, int]] = []  # where a tab or a `!` is content to both scanners
    plain: list[tuple[int, int]] = []  # where a `!` is content to both scanners
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, in_flow = stack.pop()
        if id(node) in seen:
            continue  # an alias
        seen.add(id(node))
        start, end = node.start_mark.index, node.end_mark.index
        if isinstance(node, yaml.ScalarNode):
            if node.value == "" and not node.style:  # an empty value, perhaps tagged `!`
                before = text[start - 1 : start] if start < len(text) else ""
                if start != end or in_flow or before not in (":", "-", "?"):
                    return False
            elif not node.style:
                if text[start] not in "!&":  # (no tag or anchor)
                    plain.append((start, end))
            elif node.style in ("'", '"'):
                if text[start] == node.style:
                    literal.append((start + 1, end - 1))
            elif _BLOCK_HEADER.match(text, start):
                body = text.find("\n", start, end)  # a tab on the header line is not content
                literal.append((body if body >= 0 else end, end))
            else:
                return False
            continue
        flow = bool(getattr(node, "flow_style", False))
        if flow and ("?" in text[start:end] or "!" in text[start:end]):
            return False  # (each flow collection, for an alias may bring one inside another)
        flow = flow or in_flow
        if isinstance(node, yaml.MappingNode):
            stack.extend((child, flow) for pair in node.value for child in pair)
        else:
            stack.extend((child, flow) for child in node.value)
    return _covered(text, "\t", sorted(literal)) and _covered(text, "!", sorted(literal + plain))


def _covered(text: str, char: str, spans: list[tuple[int, int]]) -> bool:
    """Whether every `char` in the text lies inside one of the (sorted, disjoint) spans."""
    i = 0
    at = text.find(char)
    while at >= 0:
        while i < len(spans) and spans[i][1] <= at:
            i += 1
        if i == len(spans) or spans[i][0] > at:
            return False
        at = text.find(char, at + 1)
    return True


def _convert(
    loader: yaml.SafeLoader | yaml.CSafeLoader,
    node: yaml.Node,
    file: str,
    problems: list[Problem],
    *,
    strict: bool = False,
) -> Node:
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
            mapping[key] = _convert(loader, value_node, file, problems, strict=strict)
            out.key_positions[key] = (key_line, key_col)
        out.value = mapping
        return out
    if isinstance(node, yaml.SequenceNode):
        items = [_convert(loader, item, file, problems, strict=strict) for item in node.value]
        return Node(items, line, column)
    try:
        value = loader.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        if strict:
            raise  # libyaml's marks quote no source line, so its message would differ
        problems.append(Problem(file, line, column, f"cannot read this value: {exc}"))
        value = None
    return Node(value, line, column)


def read_text_file(path: Path) -> str:
    """Read a UTF-8 file (a BOM is tolerated). Raises OSError / UnicodeDecodeError."""
    return path.read_text(encoding="utf-8-sig")
