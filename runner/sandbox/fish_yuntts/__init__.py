"""The Fish (yuntts proxy) emulator: `app` (shapes, auth), `tts` (synthesis), `models`."""

from __future__ import annotations
