"""Parsing of option values shared by several commands."""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.manifest import Account
from runner.manifest.registry import ENV_VAR, open_registry

__all__ = ["add_providers_option", "duration", "existing_state_dir", "registry_of"]

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


def add_providers_option(parser: Any) -> None:
    """`--providers FILE`: the account registry, for every command that loads manifests."""
    parser.add_argument(
        "--providers",
        type=Path,
        metavar="FILE",
        help=f"providers file of named accounts (default: ${ENV_VAR}, else "
        "~/.config/tts-runner/providers.yaml when it exists)",
    )


def registry_of(args: argparse.Namespace) -> Mapping[str, Account]:
    """The registry accounts the command line (or the environment) names; see
    runner/manifest/registry.py for the precedence."""
    return open_registry(getattr(args, "providers", None))
