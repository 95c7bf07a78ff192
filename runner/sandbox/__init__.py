"""The sandbox: strict, faithful emulators of the five provider APIs in specs/providers.md.

Each API is an aiohttp application on its own loopback port (the real services are separate
hosts): IndexTTS (`/api/third/...`), a pool of VoxCPM2 servers (`/api/tts`), Fish through
yuntts (`/api/v1/fish-audio/...`), fishaudio.net (`/api/open/tts`) and TTS.ai (`/v1/...`).
They answer as the vendors document, and beyond that:

- record every deviation from the documented request in `Sandbox.deviations`, so adapter tests
  can assert that a whole run sent none;
- record every request in `Sandbox.ledger` (account label, endpoint, status, characters, cost,
  payment, faults) with summaries: most starts in any window, most in flight, 429s, double pay;
- model behaviour over time on `Sandbox.clock`, which tests advance: task processing, URL and
  reference lifetimes, sliding-window plan limits;
- inject faults on demand through `Sandbox.faults[provider]`;
- return deterministic audio: identical requests give identical bytes.

Layout: `server` (Sandbox, SandboxThread, serve) and `admin` (JSON control on its own port);
one module or package per API (`indextts/`, `voxcpm`, `fish_yuntts/`, `fishaudio_net`,
`ttsai/`) over shared pieces: `emulator` and `exchange` (routing, the request record,
delivery with faults), `schema` and `forms` (body checks), `accounts` and `limits`, `clock`,
`ledger`, `strict`, `faults`, and the audio path `synth` → `encode` → `audio` (+ `probe`).
"""

from __future__ import annotations

from runner.sandbox.audio import Speak
from runner.sandbox.clock import SandboxClock
from runner.sandbox.config import (
    PLANS,
    REHEARSAL_ACCOUNT,
    AccountConfig,
    ConfigError,
    FaultConfig,
    FishAudioNetConfig,
    FishYunTTSConfig,
    IndexTTSConfig,
    Plan,
    RateLimit,
    SandboxConfig,
    TTSAIConfig,
    VoxCPMConfig,
)
from runner.sandbox.encode import AudioFormat
from runner.sandbox.faults import FaultKind, FaultPlan, Faults
from runner.sandbox.ledger import Ledger, LedgerEntry, LedgerSummary, Operation, PaidTwice
from runner.sandbox.server import Sandbox, SandboxThread, serve
from runner.sandbox.strict import Deviation, DeviationLog

__all__ = [
    "PLANS",
    "REHEARSAL_ACCOUNT",
    "AccountConfig",
    "AudioFormat",
    "ConfigError",
    "Deviation",
    "DeviationLog",
    "FaultConfig",
    "FaultKind",
    "FaultPlan",
    "Faults",
    "FishAudioNetConfig",
    "FishYunTTSConfig",
    "IndexTTSConfig",
    "Ledger",
    "LedgerEntry",
    "LedgerSummary",
    "Operation",
    "PaidTwice",
    "Plan",
    "RateLimit",
    "Sandbox",
    "SandboxClock",
    "SandboxConfig",
    "SandboxThread",
    "Speak",
    "TTSAIConfig",
    "VoxCPMConfig",
    "serve",
]
