"""The IndexTTS open API emulator: `app` (shapes, auth, paging), `tasks`, `assets`, `state`."""

from __future__ import annotations
