"""A small toolkit for checking `Node` trees: every check that fails adds a located `Problem`
and returns None, so a whole file is checked in one pass and every problem is reported at once.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Sequence

from runner.errors import Problem
from runner.manifest.yamlpos import Node

__all__ = ["Checker", "closest", "did_you_mean"]


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice closest to `word`, if one is close enough to be a likely typo."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean `x`?)' when a choice is close to `word`, else ''."""
    close = closest(word, choices)
    return f" (did you mean `{close}`?)" if close else ""


def _show(value: object) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


class Checker:
    """Collects problems for one file."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def add(self, at: Node | tuple[int, int] | None, message: str) -> None:
        if at is None:
            problem = Problem(self.file, 0, 0, message)
        elif isinstance(at, Node):
            problem = Problem(self.file, at.line, at.column, message)
        else:
            problem = Problem(self.file, at[0], at[1], message)
        if problem not in self.problems:  # a default applied to many voices is one problem
            self.problems.append(problem)

    def key_at(self, mapping: Node, key: str) -> tuple[int, int]:
        return mapping.key_positions.get(key, (mapping.line, mapping.column))

    # -- shapes ---------------------------------------------------------------------------------

    def mapping(self, node: Node, what: str) -> dict[str, Node] | None:
        if isinstance(node.value, dict):
            return node.value
        self.add(node, f"`{what}` must be a mapping of `key: value` lines, not {node.kind}")
        return None

    def sequence(self, node: Node, what: str) -> list[Node] | None:
        if isinstance(node.value, list):
            return node.value
        self.add(node, f"`{what}` must be a list (lines starting with `- `), not {node.kind}")
        return None

    def keys(
        self,
        node: Node,
        what: str,
        allowed: Iterable[str],
        required: Sequence[str] = (),
        hint: str = "",
    ) -> None:
        """Unknown keys (with a suggestion) and missing required keys."""
        assert isinstance(node.value, dict)
        allowed = list(allowed)
        for key in node.value:
            if key not in allowed:
                known = ", ".join(f"`{k}`" for k in sorted(allowed))
                self.add(
                    self.key_at(node, key),
                    f"unknown key `{key}` in {what}{did_you_mean(key, allowed)}; "
                    f"known keys: {known}{hint}",
                )
        for key in required:
            if key not in node.value:
                self.add(node, f"{what} is missing `{key}`")

    # -- scalars --------------------------------------------------------------------------------

    def string(self, node: Node, what: str, *, allow_empty: bool = False) -> str | None:
        value = node.value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # `title: 1984` is a title, not a number
        if not isinstance(value, str):
            self.add(node, f"`{what}` must be a string, not {node.kind}")
            return None
        if not allow_empty and not value.strip():
            self.add(node, f"`{what}` must not be empty")
            return None
        return value

    def integer(
        self, node: Node, what: str, lo: int | None = None, hi: int | None = None
    ) -> int | None:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(node, f"`{what}` must be a whole number{_range(lo, hi)}, not {node.kind}")
            return None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            self.add(node, f"`{what}` is {value}; it must be{_range(lo, hi)}")
            return None
        return value

    def number(
        self, node: Node, what: str, lo: float | None = None, hi: float | None = None
    ) -> float | None:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            self.add(node, f"`{what}` must be a number{_range(lo, hi)}, not {node.kind}")
            return None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            self.add(node, f"`{what}` is {_fmt(value)}; it must be{_range(lo, hi)}")
            return None
        return float(value) if isinstance(value, float) else value

    def boolean(self, node: Node, what: str) -> bool | None:
        if isinstance(node.value, bool):
            return node.value
        self.add(node, f"`{what}` must be true or false, not {_show(node.value)}")
        return None

    def choice(self, node: Node, what: str, choices: Sequence[object]) -> object | None:
        value = node.value
        if (
            isinstance(value, (str, int, float))
            and not isinstance(value, bool)
            and value in choices
        ):
            if isinstance(value, int) and not isinstance(value, bool):
                # 1 == 1.0 == True in Python; accept only the exact type documented
                matches = [c for c in choices if c == value and type(c) is type(value)]
                if matches:
                    return value
            else:
                return value
        if isinstance(value, str) and any(
            not isinstance(c, str) and str(c) == value.strip() for c in choices
        ):
            # `style: "2"`: the right value, quoted into a string
            self.add(
                node, f"`{what}` is the string {_show(value)}; write {value.strip()} without quotes"
            )
            return None
        shown = ", ".join(_show(c) for c in choices)
        must = f"it must be {shown}" if len(choices) == 1 else f"it must be one of {shown}"
        extra = did_you_mean(value, [str(c) for c in choices]) if isinstance(value, str) else ""
        self.add(node, f"`{what}` is {_show(value)}; {must}{extra}")
        return None


def _range(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f" from {_fmt(lo)} to {_fmt(hi)}"
    if lo is not None:
        return f" of at least {_fmt(lo)}"
    if hi is not None:
        return f" of at most {_fmt(hi)}"
    return ""
