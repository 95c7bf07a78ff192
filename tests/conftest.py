from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _own_account_history(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each test paces its accounts from a history of its own (runs in subprocesses too)."""
    monkeypatch.setenv("TTS_RUNNER_HOME", str(tmp_path_factory.mktemp("home")))
