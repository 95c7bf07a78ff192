"""Commands that only look: `validate`, `plan` and `status`. They send and write nothing."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from runner.cli.options import add_providers_option, registry_of
from runner.manifest import Manifest, load_manifest, load_manifests
from runner.plan import Plan, Segment, expand
from runner.plans import DEFAULT_PLAN, PRESETS, Limits
from runner.providers import adapter_class
from runner.run import RunOptions, state_dir_for
from runner.store import SegmentRow, SegmentState, Store

__all__ = ["add_commands"]


def add_commands(commands: Any) -> None:
    validate = commands.add_parser(
        "validate",
        help="check manifests; report every problem with file:line:column",
        description="Check manifests and report every problem at once. Exit 0 when valid, 2 "
        "otherwise. Nothing is sent or written.",
    )
    validate.add_argument("manifests", nargs="+", type=Path, metavar="MANIFEST")
    add_providers_option(validate)
    validate.set_defaults(handler=cmd_validate)

    plan = commands.add_parser(
        "plan",
        help="what a run would do: segments, characters, cache hits, time at plan limits",
    )
    plan.add_argument("manifest", type=Path, metavar="MANIFEST")
    plan.add_argument("--state", type=Path, metavar="DIR")
    add_providers_option(plan)
    plan.add_argument("--json", action="store_true", help="machine-readable output")
    plan.add_argument(
        "--since-last",
        action="store_true",
        help="only what is new or changed since the state last saw this manifest (what a "
        "nightly run would request), per chapter, and what it would cost",
    )
    plan.set_defaults(handler=cmd_plan)

    status = commands.add_parser(
        "status",
        help="segment counts per state; tasks awaiting download with their time left",
        description="Segment counts per state, and every task still processing or awaiting "
        f"download with the time left until its result expires (a warning within "
        f"{WARN_WITHIN / 3600:g} hours). Exit 0.",
    )
    status.add_argument("manifest", type=Path, nargs="?", metavar="MANIFEST")
    status.add_argument("--state", type=Path, metavar="DIR")
    add_providers_option(status)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=cmd_status)


def cmd_validate(args: argparse.Namespace) -> int:
    for manifest in load_manifests(args.manifests, registry_of(args)):
        chars = sum(len(t.body) for t in manifest.texts)
        texts = len(manifest.texts)
        print(
            f"{manifest.path}: ok — {texts} text{'s' if texts != 1 else ''}, {chars:,} characters, "
            f"voices {', '.join(sorted(manifest.voices))}"
        )
    return 0


def _known_keys(directory: Path, keys: list[str]) -> dict[str, SegmentState]:
    """The state of each of `keys` the state directory has seen."""
    if not (directory / "state.db").is_file():
        return {}
    with Store.open(directory) as store:
        return store.states(keys)


def since_last(manifest: Manifest, plan: Plan, known: Mapping[str, object]) -> dict[str, object]:
    """Segments the state has never seen (new texts, edited sentences), per chapter."""
    seen: set[str] = set()
    chapters = []
    totals: dict[str, float] = {}
    for chapter in plan.chapters:
        new = [s for s in chapter.segments if s.key not in known and s.key not in seen]
        seen.update(s.key for s in new)
        if not new:
            continue
        chapters.append(
            {
                "id": chapter.id,
                "title": chapter.text.title,
                "new_segments": len(new),
                "chars": sum(s.chars for s in new),
                "first": new[0].text[:60],
            }
        )
        for segment in new:
            unit = PRESETS[
                (manifest.accounts[segment.account].kind, manifest.accounts[segment.account].plan)
            ].price_unit
            if unit:
                totals[unit] = round(totals.get(unit, 0.0) + _estimate(manifest, segment), 6)
    return {
        "new_segments": len(seen),
        "chars": sum(c["chars"] for c in chapters),  # type: ignore[misc]
        "estimated_cost": totals,
        "chapters": chapters,
    }


def plan_document(manifest: Manifest, plan: Plan, done: set[str]) -> dict[str, object]:
    unique = plan.unique_segments()
    per_account: dict[str, dict[str, float | None]] = {}
    for key, segment in unique.items():
        entry = per_account.setdefault(
            segment.account,
            {"segments": 0, "chars": 0, "cached": 0, "requests": 0, "estimated_cost": 0.0},
        )
        entry["segments"] = (entry["segments"] or 0) + 1
        entry["chars"] = (entry["chars"] or 0) + segment.chars
        if key in done:
            entry["cached"] = (entry["cached"] or 0) + 1
            continue
        entry["requests"] = (entry["requests"] or 0) + 1
        entry["estimated_cost"] = (entry["estimated_cost"] or 0.0) + _estimate(manifest, segment)
    totals: dict[str, float] = {}
    accounts: dict[str, dict[str, object]] = {}
    for name, entry in sorted(per_account.items()):
        account = manifest.accounts[name]
        preset = PRESETS[(account.kind, account.plan)]
        entry["seconds_at_plan_limit"] = _time_at_limits(
            account.limits, int(entry["requests"] or 0)
        )
        cost = round(entry["estimated_cost"] or 0.0, 6)
        entry["estimated_cost"] = cost
        if preset.price_unit:
            totals[preset.price_unit] = round(totals.get(preset.price_unit, 0.0) + cost, 6)
        accounts[name] = {
            "kind": account.kind,
            "plan": account.plan,
            **entry,
            "price_unit": preset.price_unit or None,
            "price_published": preset.published,
        }
    return {
        "manifest": str(manifest.path),
        "texts": len(manifest.texts),
        "segments": sum(len(c.segments) for c in plan.chapters),
        "unique_segments": len(unique),
        "chars": sum(s.chars for s in unique.values()),
        "cached": len(done & set(unique)),
        "accounts": accounts,
        "estimated_cost": totals,  # per unit: accounts of different kinds bill in different units
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


def _estimate(manifest: Manifest, segment: Segment) -> float:
    """What the segment's request should cost, by its adapter's own estimate and price table."""
    account = manifest.accounts[segment.account]
    preset = PRESETS[(account.kind, account.plan)]
    return adapter_class(account.kind).estimate_cost(segment.text, segment.params, preset)


def _cost_text(cost: float, unit: str | None) -> str:
    if not unit:
        return "free"
    return f"{cost:,.{0 if cost >= 100 or cost == int(cost) else 2}f} {unit}"


def _time_at_limits(limits: Limits, requests: int) -> float | None:
    """The shortest time the plan's request rate allows for `requests` (None: no rate limit)."""
    if not requests or limits.requests is None or limits.per_seconds is None:
        return 0.0 if not requests else None
    return math.floor((requests - 1) / limits.requests) * limits.per_seconds


def cmd_plan(args: argparse.Namespace) -> int:
    manifest = load_manifest(args.manifest, registry_of(args))
    plan = expand(manifest)
    directory = state_dir_for(manifest, RunOptions(state_dir=args.state))
    known = _known_keys(directory, list(plan.unique_segments()))
    done = {k for k, state in known.items() if state == SegmentState.DONE}
    document = plan_document(manifest, plan, done)
    if args.since_last:
        document["since_last"] = since_last(manifest, plan, known)
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
        cost = _cost_text(entry["estimated_cost"], entry["price_unit"])
        cost = cost if cost == "free" else f"≈ {cost}"
        print(
            f"  {name} ({entry['kind']}, plan {entry['plan']}): {entry['requests']:.0f} requests, "
            f"{entry['chars']:,.0f} characters, {entry['cached']:.0f} cached; {at_limit}; {cost}"
        )
    totals = document["estimated_cost"]
    assert isinstance(totals, dict)
    spent = [_cost_text(cost, unit) for unit, cost in sorted(totals.items()) if cost]
    print(f"estimated cost: {'≈ ' + ' + '.join(spent) if spent else 'nothing'}")
    if args.since_last:
        _print_since_last(document["since_last"])  # type: ignore[arg-type]
    return 0


def _print_since_last(news: Mapping[str, Any]) -> None:
    if not news["new_segments"]:
        print("since the last run: nothing new or changed")
        return
    spent = [_cost_text(c, u) for u, c in sorted(news["estimated_cost"].items()) if c]
    print(
        f"since the last run: {news['new_segments']} new or changed segments "
        f"({news['chars']:,} characters), ≈ {' + '.join(spent) if spent else 'free'}"
    )
    for chapter in news["chapters"]:
        print(
            f"  {chapter['id']}: {chapter['new_segments']} new, {chapter['chars']:,} characters "
            f"— {chapter['first']!r}…"
        )


def cmd_status(args: argparse.Namespace) -> int:
    manifest: Manifest | None = None
    if args.manifest is not None:
        manifest = load_manifest(args.manifest, registry_of(args))
        directory = state_dir_for(manifest, RunOptions(state_dir=args.state))
        keys: list[str] | None = list(expand(manifest).unique_segments())
    elif args.state is not None:
        directory, keys = args.state.expanduser().resolve(), None
    else:
        print("tts-runner status: give a MANIFEST or --state DIR", file=sys.stderr)
        return 2
    tasks: list[dict[str, object]] = []
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
            waiting = store.in_state(SegmentState.SUBMITTED, SegmentState.READY)
        wanted = None if keys is None else set(keys)
        tasks = pending_tasks(
            [r for r in waiting if wanted is None or r.key in wanted], manifest, time.time()
        )
    warnings = [_warning(t) for t in tasks if t["warning"]]
    document = {
        "state": str(directory),
        "counts": {s.value: counts[s.value] for s in SegmentState},
        "pending_tasks": tasks,
        "warnings": warnings,
    }
    if args.json:
        json.dump(document, sys.stdout, indent=2)
        print()
        return 0
    shown = ", ".join(f"{counts[s.value]} {s.value}" for s in SegmentState if counts[s.value])
    print(f"{directory}: {shown or 'no segments'}")
    if tasks:
        print("tasks awaiting download or still processing, soonest expiry first:")
    for task in tasks:
        print(f"  {task['state']:<9}  {task['account']}  {_named(task)}  {_left(task)}")
    for warning in warnings:
        print(f"warning: {warning}")
    return 0


# -- tasks awaiting download ---------------------------------------------------------------------

#: A paid result this close to expiry is shown as a warning.
WARN_WITHIN: Final = 6 * 3600.0


def pending_tasks(
    rows: list[SegmentRow], manifest: Manifest | None, now: float
) -> list[dict[str, object]]:
    """Submitted and ready segments with the time left until their result expires.

    A ready result's URL states its own expiry. A submitted task's result expires `result_ttl`
    after it finishes, which is after it was submitted: submitted_at + ttl is an upper bound.
    """
    tasks: list[tuple[float, dict[str, object]]] = []
    for row in rows:
        expires, bound = _expiry(row, manifest)
        left = None if expires is None else expires - now
        tasks.append(
            (
                math.inf if expires is None else expires,
                {
                    "key": row.key,
                    "task_id": row.task_id,
                    "account": row.account,
                    "kind": row.kind,
                    "state": row.state.value,
                    "submitted_at": row.submitted_at,
                    "expires_at": expires,
                    "expires_at_is_upper_bound": bound,
                    "seconds_left": None if left is None else math.floor(left),
                    "warning": left is not None and left < WARN_WITHIN,
                },
            )
        )
    return [task for _, task in sorted(tasks, key=lambda pair: pair[0])]


def _expiry(row: SegmentRow, manifest: Manifest | None) -> tuple[float | None, bool]:
    """(when the result expires, whether that is only an upper bound)."""
    if row.state == SegmentState.READY and row.url_expires_at is not None:
        return row.url_expires_at, False
    account = manifest.accounts.get(row.account) if manifest is not None else None
    plan = account.plan if account is not None else DEFAULT_PLAN.get(row.kind, "")
    preset = PRESETS.get((row.kind, plan))
    if preset is None or preset.result_ttl is None or row.submitted_at is None:
        return None, False
    return row.submitted_at + preset.result_ttl, True


def _span(seconds: float) -> str:
    minutes = max(0, math.floor(seconds / 60))  # never more time than there is
    if minutes == 0:
        return "under a minute"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m"


def _left(task: Mapping[str, object]) -> str:
    left = task["seconds_left"]
    if not isinstance(left, int):
        return "expiry unknown"
    if left <= 0:
        return f"expired {_span(-left)} ago"
    return f"expires in {'at most ' if task['expires_at_is_upper_bound'] else ''}{_span(left)}"


def _named(task: Mapping[str, object]) -> str:
    """A provider task by its id; a synchronous API's stored result by its segment."""
    if task["task_id"]:
        return f"task {task['task_id']}"
    return f"segment {str(task['key'])[:12]}"


def _warning(task: Mapping[str, object]) -> str:
    what = f"{_named(task)} ({task['account']}, {task['state']})"
    left = task["seconds_left"]
    if isinstance(left, int) and left <= 0:
        return f"{what} expired {_span(-left)} ago; the next run requests it again (and pays again)"
    return f"{what} {_left(task)}; run its manifest again before then to download it"
