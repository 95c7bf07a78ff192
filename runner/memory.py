"""How the process asks the C allocator for memory.

glibc's malloc gives each thread that allocates its own heap (an "arena", up to eight per
core) and keeps in it what the thread has freed, for that thread to reuse. The runner's worker
threads take turns decoding, measuring and assembling audio, so a long run leaves freed
buffers spread over several arenas, each holding on to its share. One arena for the whole
process lets every thread reuse what any other freed. Measured against the no-latency
emulator: 20,000 segments peaked at 109 MB instead of 119 MB, 100,000 at 185 MB instead of
224 MB. The price is one lock for every thread's allocations: 10,000 segments took 6-9 %
longer in two paired runs, while the 100,000-segment synthesis phase kept its pace.
See mallopt(3), M_ARENA_MAX.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Final

__all__ = ["share_one_malloc_arena"]

_M_ARENA_MAX: Final = -8  #: from glibc's <malloc.h>


def share_one_malloc_arena() -> bool:
    """Limit glibc's malloc to one arena; call before any thread starts. Whether it applied
    (False elsewhere than glibc, where there is nothing to do)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        gnu_get_libc_version = libc.gnu_get_libc_version  # glibc only: musl has no arenas
    except (OSError, AttributeError):
        return False
    del gnu_get_libc_version
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, 1))
