"""`tts-runner run`: synthesise what a manifest still needs and assemble its chapters."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import sys
from pathlib import Path
from typing import Any

import anyio
from rich.console import Console

from runner.cli.options import duration
from runner.cli.progress import ProgressBar
from runner.errors import UsageError
from runner.events import Events, JsonLines, Sink
from runner.manifest import Manifest, load_manifests
from runner.run import RunOptions, RunResult, run_manifest

__all__ = ["add_commands"]

#: Which exit code wins when several manifests end differently.
_SEVERITY = {4: 5, 2: 4, 3: 3, 1: 2, 0: 1}


def add_commands(commands: Any) -> None:
    run = commands.add_parser(
        "run",
        help="synthesise and assemble manifests (resumes where the last run stopped)",
        description="Synthesise every segment a manifest still needs, paced to each account's "
        "plan, and assemble the chapters. Safe to interrupt and run again.",
    )
    run.add_argument("manifests", nargs="+", type=Path, metavar="MANIFEST")
    run.add_argument(
        "--state",
        type=Path,
        metavar="DIR",
        help="state directory (default: .tts-runner beside the manifest)",
    )
    run.add_argument(
        "--deadline",
        type=duration,
        metavar="DURATION",
        help="stop starting work after this long (e.g. 90m); exit 3, resumable",
    )
    run.add_argument(
        "--json-log",
        action="store_true",
        help="JSON lines on stderr instead of a progress bar (default when not a tty)",
    )
    run.add_argument(
        "--retry-failed",
        action="store_true",
        help="request segments that failed in earlier runs again",
    )
    run.add_argument(
        "--sandbox",
        action="store_true",
        help="rehearse against in-process emulators of every provider API: no keys needed, "
        "nothing spent; state kept apart in .tts-runner-sandbox",
    )
    run.set_defaults(handler=cmd_run)

    sandbox = commands.add_parser(
        "sandbox",
        help="serve emulators of every provider API on loopback; prints their URLs as JSON",
        description="Serve strict emulators of every provider API on 127.0.0.1 until "
        "interrupted. The first line on stdout is a JSON object of base URLs (plus `admin`: "
        "ledger, deviations, clock and faults).",
    )
    sandbox.add_argument("--config", type=Path, metavar="FILE", help="sandbox configuration YAML")
    sandbox.set_defaults(handler=cmd_sandbox)


def cmd_sandbox(args: argparse.Namespace) -> int:
    from runner.rehearsal import speak
    from runner.sandbox import SandboxConfig, serve
    from runner.sandbox.config import ConfigError

    try:
        config = SandboxConfig.from_yaml(args.config) if args.config else SandboxConfig()
    except (ConfigError, OSError) as exc:
        raise UsageError(f"sandbox config {args.config}: {exc}") from exc

    def announce(urls: dict[str, object]) -> None:
        print(json.dumps(urls), flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(functools.partial(serve, config, announce, speak=speak))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    manifests = load_manifests(args.manifests)
    options = RunOptions(
        state_dir=args.state,
        deadline=args.deadline,
        retry_failed=args.retry_failed,
        sandbox=args.sandbox,
    )
    json_log = args.json_log or not sys.stderr.isatty()
    sink: Sink = JsonLines(sys.stderr) if json_log else ProgressBar(Console(stderr=True))
    events = Events([sink])
    try:
        results = anyio.run(_run_all, manifests, options, events)
        for manifest, result in zip(manifests, results, strict=True):
            if json_log:
                events.emit("summary", manifest=str(manifest.path), **summary_fields(result))
    finally:
        events.close()
    for manifest, result in zip(manifests, results, strict=True):
        print(summary_line(manifest, result))
    return max((r.exit_code for r in results), key=lambda code: _SEVERITY.get(code, 0))


async def _run_all(
    manifests: list[Manifest], options: RunOptions, events: Events
) -> list[RunResult]:
    return [await run_manifest(m, options, events) for m in manifests]


def summary_fields(result: RunResult) -> dict[str, object]:
    return {
        "exit_code": result.exit_code,
        "stopped": result.stopped,
        "remaining": result.remaining,
        "chapters_complete": result.chapters_complete,
        "chapters_written": len(result.chapters_written),
        "index": str(result.index) if result.index else None,
        "report": str(result.report) if result.report else None,
        "elapsed": round(result.elapsed, 3),
        **result.stats.as_dict(),
    }


def summary_line(manifest: Manifest, result: RunResult) -> str:
    stats = result.stats
    chars = sum(a.chars for a in stats.accounts.values())
    line = (
        f"{manifest.name}: {result.chapters_complete}/{len(manifest.texts)} chapters in "
        f"{manifest.output.dir} ({len(result.chapters_written)} rebuilt); "
        f"{stats.synthesized} segments synthesised ({chars:,} chars), "
        f"{stats.cached + stats.recovered} from cache, {len(stats.failures)} failed; "
        f"{result.elapsed:.1f} s"
    )
    if result.exit_code == 3:
        line += (
            f"\nstopped early ({result.stopped}): {result.remaining} segments left"
            " — run again to resume"
        )
    for key, reason in sorted(stats.failures.items()):
        line += f"\nfailed {key[:12]}: {reason}"
    if result.report is not None:
        line += f"\nreport: {result.report}"
    return line
