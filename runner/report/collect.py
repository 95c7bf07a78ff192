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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

from runner.events import Redactor
from runner.manifest.model import Account, Manifest
from runner.plan import Chapter, Plan, Segment, canonical_json, expand
from runner.plans import PRESETS
from runner.report.audit import Take
from runner.report.history import RunSpan, Starts, request_starts, run_span
from runner.report.timeline import timeline
from runner.stats import AccountStats
from runner.store import SegmentRow, SegmentState, Store

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
    rows = store.rows(unique)
    span = run_span(store.path, run_id)
    starts = request_starts(store.path, span)
    chapter_of = {s.key: c.id for c in reversed(plan.chapters) for s in c.segments}
    chapters, files = _chapters(manifest, plan, rows, store)

    def listed(keep: Callable[[SegmentRow], bool]) -> list[dict[str, object]]:
        return [
            {**_segment(unique[k], rows[k], chapter_of[k]), "reason": rows[k].reason or ""}
            for k in unique
            if keep(rows[k])
        ]

    document: dict[str, object] = {
        "report_version": REPORT_VERSION,
        "generated_at": round(time.time(), 3),
        "manifest": {"name": manifest.name, "path": str(manifest.path)},
        "run": _run(result, span),
        "totals": _totals(manifest, unique, rows, chapters, result),
        "chapters": chapters,
        "accounts": _accounts(manifest, unique, rows, result, span, starts),
        "failed": listed(lambda row: row.state == SegmentState.FAILED),
        "deferred": listed(_left_over),
        "warnings": list(result.stats.warnings),
        "suspicious": [],  # filled in by the audio checks
        "loudness": {"measured": False, "note": "not measured"},
        "notes": _notes(starts),
    }
    return Gathered(document, _takes(plan, rows, store.directory), files, store.directory)


def _takes(plan: Plan, rows: Mapping[str, SegmentRow], state_dir: Path) -> list[Take]:
    """Finished segments for the audio checks, each once (with its first chapter)."""
    first: dict[str, tuple[Chapter, Segment]] = {}
    for chapter in plan.chapters:
        for segment in chapter.segments:
            first.setdefault(segment.key, (chapter, segment))
    takes: list[Take] = []
    for key, (chapter, segment) in first.items():
        row = rows[key]
        if row.state != SegmentState.DONE or not row.path or row.duration is None:
            continue
        # Pace is compared among segments spoken alike: one voice of the manifest may speak
        # several ways (`language: auto` picks English or Mandarin per chunk; a text may
        # override `rate`), so the resolved parameters tell the manner apart.
        manner = f"{segment.account}:{canonical_json(segment.params)}"
        text = _preview(segment.text)
        path = state_dir / row.path
        voice = chapter.text.voice
        takes.append(
            Take(
                key,
                chapter.id,
                voice,
                manner,
                text,
                row.chars,
                row.duration,
                path,
                row.sha256 or "",
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
    manifest: Manifest, plan: Plan, rows: Mapping[str, SegmentRow], store: Store
) -> tuple[list[dict[str, object]], dict[str, Path]]:
    entries: list[dict[str, object]] = []
    files: dict[str, Path] = {}
    for chapter in plan.chapters:
        mine = [rows[s.key] for s in chapter.segments]
        done = sum(1 for r in mine if r.state == SegmentState.DONE)
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
    rows: Mapping[str, SegmentRow],
    chapters: list[dict[str, object]],
    result: RunResult,
) -> dict[str, object]:
    states = Counter(row.state for row in rows.values())
    durations = [c["duration"] for c in chapters if isinstance(c["duration"], float)]
    stats = result.stats.accounts.values()
    # Costs add up per unit only: credits and yuan do not sum.
    units = {name: _unit(account) for name, account in manifest.accounts.items()}
    cost_run: defaultdict[str, float] = defaultdict(float)
    for name, account_stats in result.stats.accounts.items():
        cost_run[units.get(name, "")] += account_stats.cost
    cost_total: defaultdict[str, float] = defaultdict(float)
    for row in rows.values():
        cost_total[units.get(row.account, "")] += row.cost or 0.0
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
    rows: Mapping[str, SegmentRow],
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
        costs = [r.cost for r in rows.values() if r.account == name and r.cost is not None]
        entries.append(
            {
                "name": name,
                "kind": account.kind,
                "plan": account.plan,
                "limits": _limits(account),
                "cost_unit": _unit(account),
                **stats.as_dict(),
                "cost_total": round(sum(costs, 0.0), 6),  #: every finished segment, across runs
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
