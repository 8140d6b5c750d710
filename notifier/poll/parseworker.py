"""The parse worker's side: what runs in the process `parsepool` starts.

Apart from the pool so that a worker imports only this and the parser: not asyncio, the
thread pools and the pool's own machinery, which the parent needs and a worker does not
(every worker start paid for them).
"""

from __future__ import annotations

import contextlib
import gc
import os
import resource
import signal
from typing import TYPE_CHECKING

from notifier.failures import Failure, FailureKind
from notifier.memory import return_large_blocks

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from notifier.models import FeedKind, ParsedFeed

__all__ = ["RECYCLE_GROWTH", "RECYCLE_JOBS", "parse_job", "serve"]

RECYCLE_GROWTH = 10 * 1024 * 1024
"""A worker whose resident size grew by more than this over its size at start-up (about
28 MiB under the daemon) is replaced after its answer: an ordinary feed adds a few MiB at
most, a parse of thousands of entries would otherwise keep its peak for the worker's life.
Growth, not size: a worker also imports its parent's main module, whose size varies."""
RECYCLE_JOBS = 2000
"""Bodies one worker parses before it is replaced (fragmentation, leaks in libraries): a
backstop, as `RECYCLE_GROWTH` sees what they cost. A replacement's start (0.1-0.3 s, the
first body behind it waiting) is on a changed cycle's critical path, and at 500 a cycle
over 10,000 feeds with 1,000 changed paid one; 3,000 parses of those feeds grew a worker by
less than `RECYCLE_GROWTH`."""


def parse_job(body: bytes, url: str, headers: dict[str, str],
              expect: FeedKind | None = None) -> ParsedFeed | Failure:
    """The parse itself: the parsed feed or why it is not one."""
    # Imported here, in the worker: the daemon itself never parses, and a cycle of 304s
    # should not pay for importing feedparser.
    from notifier.parse import ParseError, parse_feed

    try:
        return parse_feed(body, url, headers, expect=expect)
    except ParseError as exc:
        return Failure(FailureKind.NOT_A_FEED, str(exc))
    except MemoryError:
        raise
    except RecursionError:
        return Failure(FailureKind.PARSER, "parser failed: the document is nested too deeply")
    except Exception as exc:
        return Failure(FailureKind.PARSER, f"parser failed: {type(exc).__name__}: {exc}")


def _resident() -> int:
    """This process's resident bytes now (what it keeps, which a recycle gives back).

    Not `ru_maxrss`: Linux carries it over from the parent across fork and exec, so a worker
    started by a large daemon would look large from its first job."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB elsewhere


def serve(conn: Connection, memory_limit: int) -> None:
    """A worker's life: answer jobs until told to stop or it should be replaced."""
    # Ctrl-C reaches the whole process group: the daemon stops its workers itself, so they
    # ignore SIGINT instead of each printing a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by `_Worker`
    return_large_blocks()
    if memory_limit:
        with contextlib.suppress(ValueError, OSError):
            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            limit = memory_limit if hard == resource.RLIM_INFINITY else min(memory_limit, hard)
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    # The parser is imported before the worker measures its size at start: importing it
    # at the first job (some 11 MiB) counted as that job's growth and retired every worker
    # after one parse.
    import notifier.parse  # noqa: F401

    # What is imported lives as long as the worker: the cycle collector need not walk it
    # again at every full collection a parse's garbage sets off (as in the daemon).
    gc.freeze()
    conn.send("ready")  # imports done: the time limit counts parsing only
    jobs = 0
    started = _resident()
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        fn, args = job
        retire = False
        try:
            result: object = fn(*args)
        except MemoryError:
            result = f"parser needed more than {memory_limit // (1024 * 1024)} MiB"
            retire = True
        jobs += 1
        retire = retire or _resident() - started > RECYCLE_GROWTH or jobs >= RECYCLE_JOBS
        try:
            conn.send((retire, result))
        except (OSError, ValueError):
            return
        if retire:
            return
