"""Running a whole manifest in-process against a sandbox in the same event loop, so a test can
advance the sandbox clock, inject faults and read the ledger while the runner works."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from runner.events import Events
from runner.manifest import load_manifest
from runner.providers.context import RetryPolicy
from runner.run import RunOptions, RunResult, run_manifest
from runner.task_lane import TaskPolicy

from .conftest import FAST_RETRY, EventLog

__all__ = ["InProcessRun", "run_in_process"]


@dataclass
class InProcessRun:
    result: RunResult
    log: EventLog
    directory: Path
    state: Path = field(init=False)

    def __post_init__(self) -> None:
        self.state = self.directory / ".tts-runner"

    def events(self, kind: str) -> list[dict[str, object]]:
        return [fields for k, fields in self.log.records if k == kind]


async def run_in_process(
    directory: Path,
    manifest: str,
    environ: dict[str, str],
    *,
    retry: RetryPolicy = FAST_RETRY,
    task_policy: TaskPolicy | None = None,
    deadline: float | None = None,
    collect_only: bool = False,
    max_cost: float | None = None,
    only: frozenset[str] | None = None,
) -> InProcessRun:
    path = directory / "book.yaml"
    path.write_text(manifest)
    log = EventLog()
    options = RunOptions(
        environ=environ,
        retry=retry,
        task_policy=task_policy or TaskPolicy(),
        deadline=deadline,
        collect_only=collect_only,
        max_cost=max_cost,
        only=only,
    )
    result = await run_manifest(load_manifest(path), options, Events([log]))
    return InProcessRun(result, log, directory)
