from __future__ import annotations

from collections.abc import Iterator

import pytest
from support import reap_started


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _own_account_history(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each test paces its accounts from a history of its own (runs in subprocesses too), and
    no developer's own providers file leaks into it."""
    monkeypatch.setenv("TTS_RUNNER_HOME", str(tmp_path_factory.mktemp("home")))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))
    monkeypatch.delenv("TTS_RUNNER_PROVIDERS", raising=False)


@pytest.fixture(autouse=True)
def _reap_started_runs() -> Iterator[None]:
    """No run a test started in the background outlives the test."""
    yield
    reap_started()
