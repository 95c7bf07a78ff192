"""Parsing of option values shared by several commands."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

__all__ = ["duration", "existing_state_dir"]

_PART = re.compile(r"(\d+(?:\.\d+)?)([hms]?)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "": 1.0}


def duration(text: str) -> float:
    """`90`, `45s`, `90m`, `2h`, `1h30m` → seconds."""
    compact = text.strip().lower().replace(" ", "")
    pos, total = 0, 0.0
    while pos < len(compact):
        match = _PART.match(compact, pos)
        if match is None:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not compact or pos != len(compact) or total <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration; write e.g. 45s, 90m, 2h or 1h30m"
        )
    return total


def existing_state_dir(text: str) -> Path:
    return Path(text).expanduser().resolve()
