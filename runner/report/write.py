"""`report.json` and `report.html` in the output directory, after every run."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import anyio.to_thread
import msgpack

from runner.cache import Levels, level_key
from runner.events import Redactor
from runner.fsutil import atomic_write
from runner.manifest.model import Manifest
from runner.plan import Plan
from runner.report.audit import chapter_loudness, suspicious
from runner.report.collect import Gathered, gather, redactor_for
from runner.report.html import render
from runner.store import Store

if TYPE_CHECKING:
    from runner.run import RunResult

__all__ = ["HTML_NAME", "JSON_NAME", "ReportFiles", "write_report"]

JSON_NAME: Final = "report.json"
HTML_NAME: Final = "report.html"
LEVELS_NAME: Final = "segment-levels.msgpack"  #: in the state directory's `levels/`
_LEVELS_VERSION: Final = 2


@dataclass(frozen=True)
class ReportFiles:
    json: Path
    html: Path


async def write_report(
    manifest: Manifest,
    store: Store,
    result: RunResult,
    *,
    run_id: int | None = None,
    environ: Mapping[str, str] | None = None,
    plan: Plan | None = None,
) -> ReportFiles:
    """Write the run's report beside its chapters (`manifest.output.dir`).

    Call at the end of a run, while `store` is still open, with the id `Store.start_run`
    returned (None: the latest run in the state). `environ` is where the run read its
    credentials (os.environ if None): their values are scrubbed from every string. `plan` is
    the run's expansion of the manifest (expanded again here if None). The state
    is read here, on the Store's thread; reading the cached audio and writing the files happen
    in a worker thread.
    """
    gathered = gather(manifest, store, result, run_id, plan)
    result.done = {}  # the report was the last to read it: let it go before the audio checks
    levels, result.levels = result.levels, Levels()
    redactor = redactor_for(manifest, environ)
    return await anyio.to_thread.run_sync(_finish, manifest, gathered, redactor, levels)


def _finish(
    manifest: Manifest,
    gathered: Gathered,
    redactor: Redactor,
    measured: Levels,
) -> ReportFiles:
    """`measured`: levels of the audio cached by this run."""
    directory = manifest.output.dir
    files = ReportFiles(directory / JSON_NAME, directory / HTML_NAME)
    document = gathered.document
    known = _known_levels(gathered.state_dir)
    learned = len(known)
    known.update(measured)
    document["suspicious"] = suspicious(gathered.takes, known)
    stale = len(known) != learned or not _levels_path(gathered.state_dir or directory).exists()
    if gathered.state_dir is not None and stale:
        _save_levels(gathered.state_dir, known)
    _measure_loudness(document, gathered, _known_loudness(files.json))
    clean = redactor.value(document)
    assert isinstance(clean, dict)
    text = json.dumps(clean, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    atomic_write(files.json, text.encode())
    atomic_write(files.html, render(clean).encode())
    return files


def _measure_loudness(
    document: dict[str, object], gathered: Gathered, known: dict[str, float]
) -> None:
    chapters = document["chapters"]
    assert isinstance(chapters, list)
    for chapter in chapters:
        path = gathered.chapter_files.get(chapter["id"])
        if path is None:
            continue
        lufs = known.get(chapter["sha256"])
        if lufs is None:
            lufs = chapter_loudness(path)
        chapter["loudness_lufs"] = None if lufs is None else round(lufs, 1)
    measured = any(c["loudness_lufs"] is not None for c in chapters)
    note = "integrated loudness of each chapter file (ITU-R BS.1770)"
    document["loudness"] = {"measured": measured, "note": note if measured else "not measured"}


def _levels_path(state_dir: Path) -> Path:
    return state_dir / "levels" / LEVELS_NAME


def _known_levels(state_dir: Path | None) -> dict[int, float | None]:
    """Levels (dBFS; None: silent) of cached segments measured by earlier reports, by
    `audit.level_key` of their file."""
    if state_dir is None:
        return {}
    if not _levels_path(state_dir).exists():
        return _levels_of_version_1(state_dir)
    try:
        document = msgpack.unpackb(
            _levels_path(state_dir).read_bytes(), raw=False, strict_map_key=False
        )
        levels = document["levels"] if document["version"] == _LEVELS_VERSION else None
    except (OSError, ValueError, KeyError, TypeError, msgpack.UnpackException):
        return {}
    # used as loaded when well formed (a book's 100,000 entries are not copied)
    if not isinstance(levels, dict) or not all(
        type(k) is int and (v is None or type(v) is float) for k, v in levels.items()
    ):
        return {}
    return levels


def _levels_of_version_1(state_dir: Path) -> dict[int, float | None]:
    """The memory as the previous format kept it (JSON, by "digest:size:mtime_ns"), so that
    an upgrade does not decode every segment of a long book once more."""
    try:
        old = json.loads((state_dir / "levels" / "segment-levels.json").read_bytes())["levels"]
        levels: dict[int, float | None] = {}
        for name, level in old.items():
            sha256, size, mtime_ns = str(name).rsplit(":", 2)
            if level is not None and type(level) is not float:
                return {}
            levels[level_key(sha256, int(size), int(mtime_ns))] = level
        return levels
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _save_levels(state_dir: Path, known: Mapping[int, float | None]) -> None:
    data = msgpack.packb({"version": _LEVELS_VERSION, "levels": known})
    try:
        atomic_write(_levels_path(state_dir), data)
    except OSError:
        pass  # only a cache: the next report measures again


def _known_loudness(previous: Path) -> dict[str, float]:
    """Loudness of chapter files measured by the previous report, by file digest: an unchanged
    chapter of hours is not decoded again after every nightly run."""
    try:
        document = json.loads(previous.read_text(encoding="utf-8"))
        return {
            str(c["sha256"]): float(c["loudness_lufs"])
            for c in document["chapters"]
            if c.get("sha256") and c.get("loudness_lufs") is not None
        }
    except (OSError, ValueError, KeyError, TypeError):
        return {}
