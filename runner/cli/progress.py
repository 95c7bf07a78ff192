"""The run as people see it: a progress bar on a terminal, warnings printed above it."""

from __future__ import annotations

import time
from collections.abc import Mapping

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["ProgressBar"]


class ProgressBar:
    """Segments done/total, characters per second and ETA, for one or more manifests."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("segments"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task("synthesising", total=0, rate="")
        self.chars = 0
        self.started = time.monotonic()
        self.progress.start()

    def emit(self, kind: str, fields: Mapping[str, object]) -> None:
        if kind == "plan":
            todo = fields.get("todo", 0)
            assert isinstance(todo, int)
            total = self.progress.tasks[0].total or 0
            self.progress.update(self.task, total=total + todo)
        elif kind == "segment_done":
            chars = fields.get("chars", 0)
            self.chars += chars if isinstance(chars, int) else 0
            elapsed = max(time.monotonic() - self.started, 1e-6)
            self.progress.update(self.task, advance=1, rate=f"{self.chars / elapsed:,.0f} chars/s")
        elif kind == "segment_failed":
            key = str(fields.get("key", ""))[:12]
            self.console.print(f"[red]failed[/] {key}: {fields.get('reason')}")
        elif kind in ("retry", "warning", "account_stopped"):
            message = fields.get("message") or fields.get("reason") or ""
            self.console.print(f"[yellow]{kind}[/] {fields.get('account', '')}: {message}")
        elif kind == "chapter_written":
            self.console.print(f"[green]chapter[/] {fields.get('id')} → {fields.get('path')}")

    def close(self) -> None:
        self.progress.stop()
