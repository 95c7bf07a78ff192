"""Serve a sandbox with its synthetic voice, for tests that run it in its own process.

    python tests/torture/sandbox_server.py CONFIG.yaml

Like `tts-runner sandbox --config CONFIG.yaml` (the first line on stdout is the JSON object of
base URLs, `admin` included), except for the voice: `tts-runner sandbox` speaks through the
embedded espeak-ng engine, whose output for a text depends on what the process spoke before,
so two sandbox processes answer the same request with different bytes. The synthetic voice is
a pure function of the request, which the byte-for-byte comparisons of the torture suite need.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys

import anyio

from runner.sandbox import SandboxConfig, serve


def main(argv: list[str]) -> int:
    config = SandboxConfig.from_yaml(argv[0]) if argv else SandboxConfig()

    def announce(urls: dict[str, object]) -> None:
        print(json.dumps(urls), flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(functools.partial(serve, config, announce))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
