"""tts-runner: turn a YAML manifest of texts and voices into audio, paced, resumable, paid once."""

from __future__ import annotations

__version__ = "0.1.0"
