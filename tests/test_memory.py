"""The process's allocator policy (runner/memory.py), seen from glibc's own account of its
heaps: threads that allocate at once get arenas of their own unless one is shared."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

ARENAS = """
import ctypes, sys, threading
from runner.memory import share_one_malloc_arena
shared = sys.argv[2] == "shared" and share_one_malloc_arena()
start = threading.Barrier(6)
def allocate():
    start.wait()  # all at once: each would take an arena of its own
    held = [ctypes.create_string_buffer(4096) for _ in range(2000)]
    start.wait()
    del held
threads = [threading.Thread(target=allocate) for _ in range(6)]
for t in threads: t.start()
for t in threads: t.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
out = libc.fopen(sys.argv[1].encode(), b"w")
libc.malloc_info(0, out)
libc.fclose(out)
print(shared)
"""


def _heaps(tmp_path: Path, mode: str) -> tuple[int, str]:
    info = tmp_path / f"{mode}.xml"
    done = subprocess.run(
        [sys.executable, "-c", ARENAS, str(info), mode], capture_output=True, text=True, check=True
    )
    return info.read_text().count("<heap nr="), done.stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only: others have no arenas")
def test_threads_share_one_malloc_arena_when_asked(tmp_path: Path) -> None:
    shared, applied = _heaps(tmp_path, "shared")
    alone, _ = _heaps(tmp_path, "alone")
    assert applied == "True"
    assert shared == 1
    assert alone > 1  # the control: by default the threads spread over arenas
