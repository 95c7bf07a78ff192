"""The report as a plain document (JSON values only), gathered from the state and the run.

Everything comes from the state database, the run's counters and the manifest's *names*:
account names, never the environment values that hold their secrets. As a second guard, every
string is passed through a redactor that knows those values (a provider's error message might
echo a key back).

Reads the Store, so it runs on the thread that owns it; the audio checks that need the cached
files are left to `audit` (see `write.py`), which runs in a worker thread.
"""

from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

from runner.events import Redactor
from runner.manifest.model import Account, Manifest
from runner.plan import Plan, Segment, canonical_json, expand
from runner.plans import PRESETS
from runner.report.audit import Take
from runner.report.history import RunSpan, Starts, request_starts, run_span
from runner.report.timeline import timeline
from runner.stats import AccountStats
from runner.store import SegmentAudio, SegmentRow, SegmentState, Store

if TYPE_CHECKING:
    from runner.run import RunResult

__all__ = ["REPORT_VERSION", "Gathered", "gather", "redactor_for"]

REPORT_VERSION: Final = 1
_TEXT_PREVIEW: Final = 160


@dataclass(frozen=True)
class Gathered:
    document: dict[str, object]
    takes: list[Take]  #: finished segments, for the audio checks
    chapter_files: dict[str, Path]  #: chapter id → its complete output file
    state_dir: Path | None = None  #: where the levels of segments already measured are kept


def gather(
    manifest: Manifest,
    store: Store,
    result: RunResult,
    run_id: int | None,
    plan: Plan | None = None,
) -> Gathered:
    plan = plan or expand(manifest)
    unique = plan.unique_segments()
    # Lean reads: the audio columns of the done segments (read by the run already), whole
    # rows only of the rest (a finished book's 100,000 whole rows would cost 100 MB here).
    done = result.done or store.audio(unique)
    others = store.rows(k for k in unique if k not in done)
    states = Counter(row.state for row in others.values())
    states[SegmentState.DONE] = sum(1 for k in unique if k in done)
    costs = store.costs(unique)
    span = run_span(store.path, run_id)
    starts = request_starts(store.path, span)
    chapters, files = _chapters(manifest, plan, done, store)

    def listed(keep: Callable[[SegmentRow], bool]) -> list[dict[str, object]]:
        chosen = [k for k in unique if k in others and keep(others[k])]
        first = _first_chapters(plan, chosen)
        return [
            {**_segment(unique[k], others[k], first[k]), "reason": others[k].reason or ""}
            for k in chosen
        ]

    document: dict[str, object] = {
        "report_version": REPORT_VERSION,
        "generated_at": round(time.time(), 3),
        "manifest": {"name": manifest.name, "path": str(manifest.path)},
        "run": _run(result, span),
        "totals": _totals(manifest, unique, states, costs, chapters, result),
        "chapters": chapters,
        "accounts": _accounts(manifest, unique, costs, result, span, starts),
        "failed": listed(lambda row: row.state == SegmentState.FAILED),
        "deferred": listed(_left_over),
        "warnings": list(result.stats.warnings),
        "suspicious": [],  # filled in by the audio checks
        "loudness": {"measured": False, "note": "not measured"},
        "notes": _notes(starts),
    }
    return Gathered(document, _takes(plan, done, store.directory), files, store.directory)


def _first_chapters(plan: Plan, keys: Collection[str]) -> dict[str, str]:
    """The first chapter that speaks each of `keys`."""
    first: dict[str, str] = {}
    if keys:
        wanted = set(keys)
        for chapter in plan.chapters:
            for segment in chapter.segments:
                if segment.key in wanted:
                    first.setdefault(segment.key, chapter.id)
    return first


def _takes(plan: Plan, audio: Mapping[str, SegmentAudio], state_dir: Path) -> list[Take]:
    """Finished segments for the audio checks, each once (with its first chapter)."""
    takes: list[Take] = []
    seen: set[str] = set()
    manners: dict[tuple[str, int], str] = {}
    root = str(state_dir)
    for chapter in plan.chapters:
        voice = chapter.text.voice
        for segment in chapter.segments:
            key = segment.key
            found = audio.get(key)
            if found is None or key in seen or not found.stored or found.duration is None:
                continue
            seen.add(key)
            # Pace is compared among segments spoken alike: one voice of the manifest may speak
            # several ways (`language: auto` picks English or Mandarin per chunk; a text may
            # override `rate`), so the resolved parameters tell the manner apart. Segments
            # spoken alike share one parameters mapping (see `expand`): its JSON is made once.
            shared = (segment.account, id(segment.params))
            manner = manners.get(shared)
            if manner is None:
                manner = f"{segment.account}:{canonical_json(segment.params)}"
                manners[shared] = manner
            takes.append(
                Take(
                    key,
                    chapter.id,
                    voice,
                    manner,
                    _preview(segment.text),
                    segment.chars,
                    found,
                    root,
                )
            )
    return takes


def redactor_for(manifest: Manifest, environ: Mapping[str, str] | None = None) -> Redactor:
    """A redactor that knows the values of every credential variable the manifest names."""
    environ = os.environ if environ is None else environ
    names = {n for a in manifest.accounts.values() for n in a.credentials.values()}
    return Redactor(environ[n] for n in names if n in environ)


def _run(result: RunResult, span: RunSpan) -> dict[str, object]:
    return {
        "id": span.id,
        "started_at": round(span.started_at, 3),
        "finished_at": round(span.finished_at, 3),
        "elapsed": round(result.elapsed, 3),
        "exit_code": result.exit_code,
        "stopped": result.stopped,
        "remaining": result.remaining,
        "chapters_written": [p.name for p in result.chapters_written],
        "synthesized": result.stats.synthesized,
        "cached": result.stats.cached,
        "recovered": result.stats.recovered,
    }


def _chapters(
    manifest: Manifest, plan: Plan, finished: Collection[str], store: Store
) -> tuple[list[dict[str, object]], dict[str, Path]]:
    entries: list[dict[str, object]] = []
    files: dict[str, Path] = {}
    for chapter in plan.chapters:
        mine = chapter.segments
        done = sum(1 for s in mine if s.key in finished)
        saved = store.chapter(str(manifest.path), chapter.id)
        complete = saved is not None and done == len(mine) and Path(saved.path).is_file()
        href = None
        if complete and saved is not None:
            files[chapter.id] = Path(saved.path)
            relative = os.path.relpath(saved.path, manifest.output.dir)
            href = quote(Path(relative).as_posix())
        entries.append(
            {
                "id": chapter.id,
                "title": chapter.text.title,
                "voice": chapter.text.voice,
                "file": Path(saved.path).name if complete and saved else None,
                "href": href,
                "complete": complete,
                "duration": round(saved.duration, 3) if complete and saved else None,
                "sha256": saved.sha256 if complete and saved else None,
                "segments": len(mine),
                "done": done,
                "chars": sum(s.chars for s in chapter.segments),
                "loudness_lufs": None,
            }
        )
    return entries, files


def _totals(
    manifest: Manifest,
    unique: Mapping[str, Segment],
    states: Counter[SegmentState],
    costs: Mapping[str, float],
    chapters: list[dict[str, object]],
    result: RunResult,
) -> dict[str, object]:
    durations = [c["duration"] for c in chapters if isinstance(c["duration"], float)]
    stats = result.stats.accounts.values()
    # Costs add up per unit only: credits and yuan do not sum.
    units = {name: _unit(account) for name, account in manifest.accounts.items()}
    cost_run: defaultdict[str, float] = defaultdict(float)
    for name, account_stats in result.stats.accounts.items():
        cost_run[units.get(name, "")] += account_stats.cost
    cost_total: defaultdict[str, float] = defaultdict(float)
    for name, cost in costs.items():
        cost_total[units.get(name, "")] += cost
    return {
        "segments": len(unique),
        "done": states[SegmentState.DONE],
        "failed": states[SegmentState.FAILED],
        "remaining": len(unique) - states[SegmentState.DONE],
        "chars": sum(s.chars for s in unique.values()),
        "chapters": len(chapters),
        "chapters_complete": sum(1 for c in chapters if c["complete"]),
        "duration": round(sum(durations), 3),
        "synthesized": result.stats.synthesized,
        "requests": sum(a.requests for a in stats),
        "retries": sum(sum(a.retries.values()) for a in stats),
        "rate_limited": sum(a.rate_limited for a in stats),
        "re_requests": sum(a.re_requests for a in stats),
        "deferred": sum(a.deferred for a in stats),
        "cost_run": {unit: round(v, 6) for unit, v in sorted(cost_run.items())},
        "cost_total": {unit: round(v, 6) for unit, v in sorted(cost_total.items())},
    }


def _accounts(
    manifest: Manifest,
    unique: Mapping[str, Segment],
    costs: Mapping[str, float],
    result: RunResult,
    span: RunSpan,
    starts: Starts,
) -> list[dict[str, object]]:
    names = sorted({s.account for s in unique.values()} | set(result.stats.accounts))
    entries: list[dict[str, object]] = []
    for name in names:
        account = manifest.accounts.get(name)
        if account is None:  # counters of an account this manifest no longer names
            continue
        stats = result.stats.accounts.get(name, AccountStats())
        entries.append(
            {
                "name": name,
                "kind": account.kind,
                "plan": account.plan,
                "limits": _limits(account),
                "cost_unit": _unit(account),
                **stats.as_dict(),
                "cost_total": round(costs.get(name, 0.0), 6),  #: every segment, across runs
                "timeline": timeline(
                    starts.by_account.get(name, []),
                    account.limits,
                    span.started_at,
                    span.finished_at,
                    starts.source,
                ),
            }
        )
    return entries


def _limits(account: Account) -> dict[str, object]:
    limits = account.limits
    return {
        "requests": limits.requests,
        "per_seconds": limits.per_seconds,
        "concurrent": limits.concurrent,
        "max_chars": limits.max_chars,
    }


def _unit(account: Account) -> str:
    preset = PRESETS.get((account.kind, account.plan))
    return preset.price_unit if preset is not None else ""


def _segment(segment: Segment, row: SegmentRow, chapter: str) -> dict[str, object]:
    return {
        "key": segment.key,
        "chapter": chapter,
        "account": segment.account,
        "state": row.state.value,
        "attempts": row.attempts,
        "text": _preview(segment.text),
    }


def _left_over(row: SegmentRow) -> bool:
    """Neither done nor failed, and touched: deferred after transient failures, or a task
    still awaiting collection. Pending segments never tried are counted, not listed."""
    if row.state in (SegmentState.DONE, SegmentState.FAILED):
        return False
    return row.state != SegmentState.PENDING or bool(row.reason) or row.attempts > 0


def _preview(text: str) -> str:
    return text if len(text) <= _TEXT_PREVIEW else text[: _TEXT_PREVIEW - 1] + "…"


def _notes(starts: Starts) -> list[str]:
    notes: list[str] = []
    if starts.source != "events":
        notes.append(
            "Request start times are not recorded in the state database's events table, so "
            "the request plots show the last submission time of each segment submitted in "
            "this run (segments.submitted_at): retries, polls and downloads are not counted "
            "there; the request totals in the accounts table are complete."
        )
    return notes
