"""The TTS.ai emulator: `app` (shapes, auth, plan headers), `speech`, `listen`, `catalog`."""

from __future__ import annotations
