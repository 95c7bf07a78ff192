"""Commands that only look: `validate`, `plan` and `status`. They send and write nothing."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from runner.manifest import Manifest, load_manifest, load_manifests
from runner.plan import Plan, expand
from runner.plans import Limits
from runner.run import RunOptions, state_dir_for
from runner.store import SegmentState, Store

__all__ = ["add_commands"]


def add_commands(commands: Any) -> None:
    validate = commands.add_parser(
        "validate",
        help="check manifests; report every problem with file:line:column",
        description="Check manifests and report every problem at once. Exit 0 when valid, 2 "
        "otherwise. Nothing is sent or written.",
    )
    validate.add_argument("manifests", nargs="+", type=Path, metavar="MANIFEST")
    validate.set_defaults(handler=cmd_validate)

    plan = commands.add_parser(
        "plan",
        help="what a run would do: segments, characters, cache hits, time at plan limits",
    )
    plan.add_argument("manifest", type=Path, metavar="MANIFEST")
    plan.add_argument("--state", type=Path, metavar="DIR")
    plan.add_argument("--json", action="store_true", help="machine-readable output")
    plan.set_defaults(handler=cmd_plan)

    status = commands.add_parser("status", help="segment counts per state")
    status.add_argument("manifest", type=Path, nargs="?", metavar="MANIFEST")
    status.add_argument("--state", type=Path, metavar="DIR")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=cmd_status)


def cmd_validate(args: argparse.Namespace) -> int:
    for manifest in load_manifests(args.manifests):
        chars = sum(len(t.body) for t in manifest.texts)
        texts = len(manifest.texts)
        print(
            f"{manifest.path}: ok — {texts} text{'s' if texts != 1 else ''}, {chars:,} characters, "
            f"voices {', '.join(sorted(manifest.voices))}"
        )
    return 0


def _done_keys(directory: Path, keys: list[str]) -> set[str]:
    if not (directory / "state.db").is_file():
        return set()
    with Store.open(directory) as store:
        rows = store.rows(keys)
    return {k for k, r in rows.items() if r.state == SegmentState.DONE}


def plan_document(manifest: Manifest, plan: Plan, done: set[str]) -> dict[str, object]:
    unique = plan.unique_segments()
    per_account: dict[str, dict[str, float | None]] = {}
    for key, segment in unique.items():
        entry = per_account.setdefault(
            segment.account, {"segments": 0, "chars": 0, "cached": 0, "requests": 0}
        )
        counter = "cached" if key in done else "requests"
        entry["segments"] = (entry["segments"] or 0) + 1
        entry["chars"] = (entry["chars"] or 0) + segment.chars
        entry[counter] = (entry[counter] or 0) + 1
    for name, entry in per_account.items():
        entry["seconds_at_plan_limit"] = _time_at_limits(
            manifest.accounts[name].limits, int(entry["requests"] or 0)
        )
    return {
        "manifest": str(manifest.path),
        "texts": len(manifest.texts),
        "segments": sum(len(c.segments) for c in plan.chapters),
        "unique_segments": len(unique),
        "chars": sum(s.chars for s in unique.values()),
        "cached": len(done & set(unique)),
        "accounts": {
            name: {"kind": manifest.accounts[name].kind, "plan": manifest.accounts[name].plan, **e}
            for name, e in sorted(per_account.items())
        },
        "chapters": [
            {
                "id": c.id,
                "title": c.text.title,
                "segments": len(c.segments),
                "chars": sum(s.chars for s in c.segments),
                "cached": sum(1 for s in c.segments if s.key in done),
            }
            for c in plan.chapters
        ],
    }


def _time_at_limits(limits: Limits, requests: int) -> float | None:
    """The shortest time the plan's request rate allows for `requests` (None: no rate limit)."""
    if not requests or limits.requests is None or limits.per_seconds is None:
        return 0.0 if not requests else None
    return math.floor((requests - 1) / limits.requests) * limits.per_seconds


def cmd_plan(args: argparse.Namespace) -> int:
    manifest = load_manifest(args.manifest)
    plan = expand(manifest)
    directory = state_dir_for(manifest, RunOptions(state_dir=args.state))
    done = _done_keys(directory, list(plan.unique_segments()))
    document = plan_document(manifest, plan, done)
    if args.json:
        json.dump(document, sys.stdout, indent=2, ensure_ascii=False)
        print()
        return 0
    print(
        f"{manifest.name}: {document['texts']} texts → {document['segments']} segments "
        f"({document['unique_segments']} unique, {document['chars']:,} characters), "
        f"{document['cached']} already done"
    )
    accounts = document["accounts"]
    assert isinstance(accounts, dict)
    for name, entry in accounts.items():
        seconds = entry["seconds_at_plan_limit"]
        at_limit = "no rate limit" if seconds is None else f"≥ {seconds:,.0f} s at the plan's rate"
        print(
            f"  {name} ({entry['kind']}, plan {entry['plan']}): {entry['requests']:.0f} requests, "
            f"{entry['chars']:,.0f} characters, {entry['cached']:.0f} cached; {at_limit}"
        )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    if args.manifest is not None:
        manifest = load_manifest(args.manifest)
        directory = state_dir_for(manifest, RunOptions(state_dir=args.state))
        keys: list[str] | None = list(expand(manifest).unique_segments())
    elif args.state is not None:
        directory, keys = args.state.expanduser().resolve(), None
    else:
        print("tts-runner status: give a MANIFEST or --state DIR", file=sys.stderr)
        return 2
    if not (directory / "state.db").is_file():
        counts: Counter[str] = Counter()
        if keys is not None:
            counts[SegmentState.PENDING.value] = len(keys)
    else:
        with Store.open(directory) as store:
            if keys is None:
                counts = Counter({s.value: n for s, n in store.counts().items()})
            else:
                rows = store.rows(keys)
                counts = Counter(rows[k].state.value if k in rows else "pending" for k in keys)
    document = {"state": str(directory), "counts": {s.value: counts[s.value] for s in SegmentState}}
    if args.json:
        json.dump(document, sys.stdout, indent=2)
        print()
    else:
        shown = ", ".join(f"{counts[s.value]} {s.value}" for s in SegmentState if counts[s.value])
        print(f"{directory}: {shown or 'no segments'}")
    return 0
