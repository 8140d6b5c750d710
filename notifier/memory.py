"""Give memory back to the system once a big feed is done with it.

A hostile feed makes the daemon hold a body up to `http.max_body` (15 MiB) for a moment, and
a parse worker build thousands of entries. glibc's malloc then raises its mmap threshold to
the largest block freed (up to 32 MiB), so later large blocks come from the heap, whose freed
space is rarely returned: the process stays at its worst moment's size for life. Fixing the
threshold at 256 KiB keeps large blocks (bodies, pickled parses) in their own mappings, which
are unmapped when freed; fewer arenas bound what the daemon's few threads keep in reserve.
Nothing to do, and nothing done, on a C library other than glibc.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import sys

__all__ = ["release_freed_memory", "return_large_blocks"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
MMAP_THRESHOLD = 256 * 1024
ARENA_MAX = 2


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """Found once (the daemon asks after every cycle)."""
    if not sys.platform.startswith("linux"):
        return None
    with contextlib.suppress(OSError, AttributeError):
        libc = _open_libc()
        if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim"):
            return libc
    return None


def _open_libc() -> ctypes.CDLL:
    """glibc by its own name first: `find_library` imports `ctypes.util` and runs
    `ldconfig`, which every parse worker's start waited for."""
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        from ctypes.util import find_library

        return ctypes.CDLL(find_library("c") or "libc.so.6")


def return_large_blocks() -> bool:
    """Set malloc so that large blocks are unmapped when freed; False where not glibc."""
    libc = _libc()
    if libc is None:
        return False
    ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    libc.mallopt(_M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD)
    libc.mallopt(_M_ARENA_MAX, ARENA_MAX)
    return ok


def release_freed_memory() -> None:
    """Hand the heap's free pages back now (after a large parse); a no-op elsewhere."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
