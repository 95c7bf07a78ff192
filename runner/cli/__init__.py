"""The `tts-runner` command line. Exit codes: 0 everything done; 1 some segments failed
permanently (the rest done); 2 usage or manifest error; 3 stopped early, resumable; 4 the state
directory is locked by another run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from runner import __version__
from runner.cli import accounts, inspect, providers, run
from runner.errors import ManifestError, RunnerError, exit_code_of
from runner.memory import share_one_malloc_arena

__all__ = ["main"]

Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tts-runner",
        description="Turn a YAML manifest of texts and voices into audio files.",
        epilog="Exit codes: 0 done; 1 some segments failed; 2 usage or manifest error; "
        "3 stopped early (resumable); 4 state directory locked by another run.",
    )
    parser.add_argument("--version", action="version", version=f"tts-runner {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    inspect.add_commands(commands)
    run.add_commands(commands)
    accounts.add_commands(commands)
    providers.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    share_one_malloc_arena()  # before any worker thread starts (see runner/memory.py)
    parser = build_parser()
    args = parser.parse_args(argv)
    command: Command = args.handler
    try:
        return command(args)
    except RunnerError as exc:
        print(exc if isinstance(exc, ManifestError) else f"tts-runner: {exc}", file=sys.stderr)
        return exit_code_of(exc)
    except KeyboardInterrupt:
        print("tts-runner: interrupted; run again to resume", file=sys.stderr)
        return 3
