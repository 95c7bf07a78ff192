"""The runner's exceptions. Everything it raises on purpose derives from `RunnerError`.

```
RunnerError
├── UsageError                  bad command line                              exit 2
│   └── Unsupported             the provider's API has no such operation
├── ManifestError               one or more manifest problems, all listed      exit 2
├── StateError                  the state directory cannot be used
│   ├── StateLocked             another run holds the lock                     exit 4
│   ├── StateCorrupt            the database failed its integrity check
│   └── StateTooNew             written by a newer tts-runner
├── DiskFull                    no space left while writing state or audio     exit 3
├── AudioError                  bytes that are not the audio they claim to be
└── ProviderError               a provider call failed (to one account, for one item)
    ├── TransientError          worth retrying with backoff: 5xx, timeouts, dropped
    │   │                       connections, truncated bodies, a model still loading
    │   └── CorruptResult       the body arrived but is not valid, plausible audio
    ├── RateLimited             the account must slow down; carries `retry_after`
    ├── ResultExpired           a finished result can no longer be downloaded
    ├── SubmitAmbiguous         a create request may have made a paid task we cannot find yet
    ├── AccountUnusable         stop this account, keep the others going
    │   ├── OutOfCredit         no credit, balance or quota left
    │   └── Unauthorized        the credentials were refused
    └── PermanentError          this item will never succeed as asked; fail the segment
```

Foreign exceptions (aiohttp, sqlite3, yaml, OSError) are mapped onto this tree at the boundary
where they occur, with the original chained (`raise ... from exc`). Messages say what happened,
to which item, and what to do; they never contain credentials.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AccountUnusable",
    "AudioError",
    "CorruptResult",
    "DiskFull",
    "ManifestError",
    "OutOfCredit",
    "PermanentError",
    "Problem",
    "ProviderError",
    "RateLimited",
    "ResultExpired",
    "RunnerError",
    "StateCorrupt",
    "StateError",
    "StateLocked",
    "StateTooNew",
    "SubmitAmbiguous",
    "TransientError",
    "Unauthorized",
    "Unsupported",
    "UsageError",
]


class RunnerError(Exception):
    """Root of every error the runner raises on purpose."""


class UsageError(RunnerError):
    """The command line asks for something that cannot be done."""


class Unsupported(UsageError):
    """The provider's API offers no such operation."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file, located as precisely as the file allows."""

    file: str
    line: int  #: 1-based; 0 when the whole file is at fault
    column: int  #: 1-based; 0 when the whole line or file is at fault
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}"
            if self.column:
                where += f":{self.column}"
        return f"{where}: {self.message}"


class ManifestError(RunnerError):
    """A manifest (or providers file) is invalid; `problems` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.column, p.message))
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} found; nothing was sent or written"
        super().__init__("\n".join([*map(str, self.problems), head]))


class StateError(RunnerError):
    """The state directory cannot be used as it is."""


class StateLocked(StateError):
    """Another run holds the state directory's lock."""


class StateCorrupt(StateError):
    """The state database failed its integrity check."""


class StateTooNew(StateError):
    """The state database was written by a newer version of tts-runner."""


class DiskFull(RunnerError):
    """No space left on a device the runner writes to."""


class AudioError(RunnerError):
    """Bytes that do not parse as the audio format they claim to be, or implausible audio."""


class ProviderError(RunnerError):
    """A provider call failed. `account` names the provider account as the manifest does."""

    def __init__(self, message: str, *, account: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.account = account
        self.status = status


class TransientError(ProviderError):
    """Worth retrying after a backoff."""


class CorruptResult(TransientError):
    """A result arrived but is not valid, plausible audio (cut short, broken header...)."""


class RateLimited(ProviderError):
    """The account is being throttled; wait `retry_after` seconds (when the server said)."""

    def __init__(
        self,
        message: str,
        *,
        account: str = "",
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, account=account, status=status)
        self.retry_after = retry_after


class ResultExpired(ProviderError):
    """A paid result is gone (its URL expired); the segment must be requested again."""


class SubmitAmbiguous(ProviderError):
    """A create request left and failed, and the provider's task list could not be checked:
    the segment stays `submitting` and is reconciled by a later run, never sent blindly again."""


class AccountUnusable(ProviderError):
    """Nothing more can be done with this account in this run."""


class OutOfCredit(AccountUnusable):
    """The account has no credit, balance or quota left for this request."""


class Unauthorized(AccountUnusable):
    """The provider refused the account's credentials."""


class PermanentError(ProviderError):
    """The request will never succeed as asked (bad parameter, unknown voice...)."""


class OutputError(RunnerError):
    """An output file could not be written (a file where a directory should be, permissions)."""


def exit_code_of(error: RunnerError) -> int:
    """The exit code of design.md for a run that ended with `error`."""
    if isinstance(error, ManifestError | UsageError):
        return 2
    if isinstance(error, StateLocked):
        return 4
    if isinstance(error, DiskFull):
        return 3
    if isinstance(error, StateError):
        return 2
    return 1


def runner_error_in(group: BaseExceptionGroup[BaseException]) -> RunnerError | None:
    """The first RunnerError among a task group's exceptions (e.g. a full disk met by one of
    many workers), so that it ends the run with its own message and exit code."""
    for exc in group.exceptions:
        if isinstance(exc, RunnerError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = runner_error_in(exc)
            if found is not None:
                return found
    return None
