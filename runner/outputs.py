"""A run's last step: the files it delivers. Which chapters are complete, which of their
files are stale, rebuild those (and the whole book), and write `index.json`.

A book's segments are read once, as lean audio rows (`Store.audio`): assembly needs only
where each segment's audio is, its digest and its rate, and a resume of a finished book of
100,000 segments must not hold 100,000 whole rows to learn that nothing needs doing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import anyio.to_thread

from runner.assemble import (
    assemble_book,
    assemble_chapter,
    chapter_fingerprint,
    chapter_gains,
    chapter_row,
    is_current,
    output_path,
    write_index,
)
from runner.errors import OutputError, RunnerError
from runner.events import Events
from runner.manifest.model import Manifest
from runner.plan import Chapter, Plan
from runner.store import ChapterRow, Store

if TYPE_CHECKING:
    from runner.run import RunResult

__all__ = ["write_outputs"]


async def write_outputs(
    manifest: Manifest, plan: Plan, store: Store, directory: Path, events: Events, result: RunResult
) -> None:
    """Bring every complete chapter's file (and the book's) up to date; record them in
    `result` and in `index.json`. `result.done` holds the audio of the segments the run knows
    are done; the rest of the plan's (other chapters than `run --only` names) is read here."""
    audio = result.done
    audio.update(
        store.audio(s.key for c in plan.chapters for s in c.segments if s.key not in audio)
    )
    # one mapping serves every chapter: each reads its own segments' entries
    complete = [
        (chapter, audio)
        for chapter in plan.chapters
        if all(s.key in audio for s in chapter.segments)
    ]
    # loudness is normalised per chapter or per book, so gains are known before any is written
    gains = await anyio.to_thread.run_sync(chapter_gains, manifest, complete, directory)
    index: list[tuple[Chapter, ChapterRow | None]] = []
    fingerprints: dict[str, str] = {}
    for chapter in plan.chapters:
        if chapter.id not in gains:
            index.append((chapter, None))
            continue
        gain = gains[chapter.id]
        fingerprint = chapter_fingerprint(manifest, chapter, audio, gain)
        fingerprints[chapter.id] = fingerprint
        previous = store.chapter(str(manifest.path), chapter.id)
        path = output_path(manifest, chapter)
        if not await anyio.to_thread.run_sync(is_current, previous, fingerprint, path):
            try:
                built = await anyio.to_thread.run_sync(
                    assemble_chapter, manifest, chapter, audio, directory, gain
                )
            except OSError as exc:
                if isinstance(exc, RunnerError):
                    raise
                raise OutputError(
                    f"cannot write chapter {chapter.id} to {path}: {exc.strerror or exc}; "
                    "the audio is safe in the state directory — fix the output path and run "
                    "again"
                ) from exc
            previous = chapter_row(manifest, chapter, fingerprint, built)
            store.save_chapter(previous)
            result.chapters_written.append(path)
            events.emit(
                "chapter_written", id=chapter.id, path=str(path), seconds=round(built[1], 3)
            )
        result.chapters_complete += 1
        index.append((chapter, previous))
    book = None
    if manifest.output.book and complete and len(complete) == len(plan.chapters):
        book, rebuilt = await anyio.to_thread.run_sync(
            assemble_book, manifest, complete, directory, gains, fingerprints
        )
        if rebuilt:
            events.emit("book_written", path=str(book[0]), seconds=round(book[1], 3))
    result.index = await anyio.to_thread.run_sync(write_index, manifest, index, gains, book)
