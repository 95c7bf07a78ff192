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

from runner.cli.options import add_providers_option, duration, registry_of
from runner.cli.progress import ProgressBar
from runner.errors import RunnerError, UsageError, exit_code_of
from runner.events import Events, JsonLines, Redactor, Sink
from runner.manifest import Manifest, load_manifests
from runner.run import RunOptions, RunResult, run_manifests

__all__ = ["add_commands"]

NOTIFY_TIMEOUT = 15.0  #: seconds for the whole --notify-url request

#: Which exit code wins when several manifests end differently.
_SEVERITY = {4: 5, 2: 4, 3: 3, 1: 2, 0: 1}


def add_commands(commands: Any) -> None:
    run = commands.add_parser(
        "run",
        help="synthesise and assemble manifests (resumes where the last run stopped)",
        description="Synthesise every segment a manifest still needs, paced to each account's "
        "plan, and assemble the chapters. Safe to interrupt and run again.",
    )
    _add_common(run)
    run.add_argument(
        "--retry-failed",
        action="store_true",
        help="request segments that failed in earlier runs again",
    )
    run.add_argument(
        "--only",
        type=_ids,
        metavar="IDS",
        help="work on these texts only, comma-separated ids (e.g. ch03,ch05)",
    )
    run.add_argument(
        "--max-cost",
        type=float,
        metavar="AMOUNT",
        help="stop an account before its estimated spend in this run passes AMOUNT, in the "
        "account's own price unit (see `tts-runner plan`); exit 3, resumable",
    )
    run.add_argument(
        "--sandbox",
        action="store_true",
        help="rehearse against in-process emulators of every provider API: no keys needed, "
        "nothing spent; state kept apart in .tts-runner-sandbox",
    )
    run.set_defaults(handler=cmd_run, collect_only=False)

    collect = commands.add_parser(
        "collect",
        help="poll and download tasks already submitted; submit nothing (cheap, for cron)",
        description="Poll every submitted task and download every finished result before it "
        "expires, without submitting anything new. Exit 0 when no task is pending, 3 when "
        "some are still processing.",
    )
    _add_common(collect)
    collect.set_defaults(
        handler=cmd_run,
        collect_only=True,
        retry_failed=False,
        only=None,
        max_cost=None,
        sandbox=False,
    )

    sandbox = commands.add_parser(
        "sandbox",
        help="serve emulators of every provider API on loopback; prints their URLs as JSON",
        description="Serve strict emulators of every provider API on 127.0.0.1 until "
        "interrupted. The first line on stdout is a JSON object of base URLs (plus `admin`: "
        "ledger, deviations, clock and faults).",
    )
    sandbox.add_argument("--config", type=Path, metavar="FILE", help="sandbox configuration YAML")
    sandbox.set_defaults(handler=cmd_sandbox)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "manifests",
        nargs="+",
        type=Path,
        metavar="MANIFEST",
        help="manifest files, or directories of them (e.g. jobs/): run together, sharing "
        "each account's limits",
    )
    add_providers_option(parser)
    parser.add_argument(
        "--state",
        type=Path,
        metavar="DIR",
        help="state directory (default: .tts-runner beside the manifest)",
    )
    parser.add_argument(
        "--deadline",
        type=duration,
        metavar="DURATION",
        help="stop starting work after this long (e.g. 90m): nothing is started that would "
        "end after it; exit 3, resumable",
    )
    parser.add_argument(
        "--json-log",
        action="store_true",
        help="JSON lines on stderr instead of a progress bar (default when not a tty)",
    )
    parser.add_argument(
        "--notify-url",
        metavar="URL",
        help="when done, POST the run summary as JSON to URL (a failure to notify is only "
        "a warning)",
    )


def _ids(text: str) -> frozenset[str]:
    ids = frozenset(part.strip() for part in text.split(",") if part.strip())
    if not ids:
        raise argparse.ArgumentTypeError("give text ids separated by commas, e.g. ch03,ch05")
    return ids


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


def manifest_paths(paths: list[Path]) -> list[Path]:
    """MANIFEST arguments: files, or directories standing for the *.yaml files in them."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
            if not inside:
                raise UsageError(f"{path} is a directory without *.yaml manifests")
            found.extend(inside)
        else:
            found.append(path)
    return found


def cmd_run(args: argparse.Namespace) -> int:
    manifests = load_manifests(manifest_paths(args.manifests), registry_of(args))
    if args.state is not None and len(manifests) > 1:
        raise UsageError(
            "--state names the state directory of one manifest; several manifests each keep "
            "theirs beside them (leave --state out)"
        )
    options = RunOptions(
        state_dir=args.state,
        deadline=args.deadline,
        retry_failed=args.retry_failed,
        sandbox=args.sandbox,
        max_cost=args.max_cost,
        only=args.only,
        collect_only=args.collect_only,
    )
    json_log = args.json_log or not sys.stderr.isatty()
    sink: Sink = JsonLines(sys.stderr) if json_log else ProgressBar(Console(stderr=True))
    events = Events([sink])
    try:
        results = anyio.run(run_manifests, manifests, options, events)
        for manifest, result in zip(manifests, results, strict=True):
            if json_log and isinstance(result, RunResult):
                events.emit("summary", manifest=str(manifest.path), **summary_fields(result))
            elif json_log:
                events.emit("manifest_failed", manifest=str(manifest.path), message=str(result))
    finally:
        events.close()
    if args.notify_url:
        notify(args.notify_url, manifests, results, events.redact)
    codes = []
    for manifest, result in zip(manifests, results, strict=True):
        if isinstance(result, RunResult):
            print(summary_line(manifest, result))
            codes.append(result.exit_code)
        else:
            print(f"tts-runner: {manifest.path}: {result}", file=sys.stderr)
            codes.append(exit_code_of(result))
    return max(codes, key=lambda code: _SEVERITY.get(code, 0))


def notify(
    url: str,
    manifests: list[Manifest],
    results: list[RunResult | RunnerError],
    redact: Redactor,
) -> None:
    """POST the summary of every manifest to `url`; say so on stderr if that fails."""
    import aiohttp  # here: a run with nothing to request never loads it

    document = {
        "runs": [
            {"manifest": str(m.path), **summary_fields(r)}
            if isinstance(r, RunResult)
            else {"manifest": str(m.path), "exit_code": exit_code_of(r), "error": str(r)}
            for m, r in zip(manifests, results, strict=True)
        ]
    }

    async def post() -> int:
        timeout = aiohttp.ClientTimeout(total=NOTIFY_TIMEOUT)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url, json=redact.value(document)) as response,
        ):
            return response.status

    try:
        status = anyio.run(post)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        print(f"tts-runner: warning: could not notify {url}: {exc!r}", file=sys.stderr)
        return
    if status >= 300:
        print(
            f"tts-runner: warning: {url} answered the notification with {status}", file=sys.stderr
        )


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
