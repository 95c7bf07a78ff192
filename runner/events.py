"""What happens during a run, as a stream of named events with plain fields.

The scheduler and the assembler emit; sinks render (a progress bar for people, JSON lines for
cron and tests). Fields are JSON values only, and never carry secrets: every string passes
through the redactor, which knows the credential values loaded for this run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Protocol, TextIO

__all__ = ["Events", "JsonLines", "Redactor", "Sink"]


class Sink(Protocol):
    def emit(self, kind: str, fields: Mapping[str, object]) -> None: ...

    def close(self) -> None: ...


class Redactor:
    """Replaces every known secret value in text with `***`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def add(self, secret: str) -> None:
        if len(secret) >= 4 and secret not in self._secrets:
            self._secrets = sorted([*self._secrets, secret], key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def value(self, value: object) -> object:
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {str(k): self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        return value


class Events:
    def __init__(self, sinks: Iterable[Sink] = (), redactor: Redactor | None = None) -> None:
        self.sinks = list(sinks)
        self.redact = redactor or Redactor()

    def emit(self, kind: str, **fields: object) -> None:
        clean = {k: self.redact.value(v) for k, v in fields.items()}
        for sink in self.sinks:
            sink.emit(kind, clean)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


class JsonLines:
    """One JSON object per event and line: `{"ts": ..., "event": kind, ...fields}`."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def emit(self, kind: str, fields: Mapping[str, object]) -> None:
        record = {"ts": round(time.time(), 3), "event": kind, **fields}
        self.stream.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()
