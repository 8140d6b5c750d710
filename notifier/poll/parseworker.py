"""The parse worker's side: what runs in the process `parsepool` starts.

Apart from the pool so that a worker imports only this and the parser: not asyncio, the
thread pools and the pool's own machinery, which the parent needs and a worker does not
(every worker start paid for them). For the same reason a worker is a plain interpreter
(`python -S -c`, see `BOOT`), not a multiprocessing child: that started a resource tracker
(a whole other interpreter) first and ran multiprocessing's bootstrap, which re-imported
the daemon's `__main__`, in every worker: a quarter to a third of each start's CPU.

The pipe is a socket the pool hands down, speaking `multiprocessing.connection`'s framing
(a 4-byte big-endian length, then a pickle), so that the pool's side is a plain
`Connection`; this side reads and writes it with `os`, without importing multiprocessing.
"""

from __future__ import annotations

import _thread
import contextlib
import ctypes
import gc
import importlib
import os
import pickle
import resource
import select
import signal
import struct
import sys
import types
from typing import TYPE_CHECKING, Any, Protocol

from notifier.failures import Failure, FailureKind
from notifier.memory import return_large_blocks

if TYPE_CHECKING:
    from notifier.models import FeedKind, ParsedFeed

__all__ = ["BOOT", "ORPHAN_CHECK", "RECYCLE_GROWTH", "RECYCLE_JOBS", "main", "parse_job",
           "serve"]

BOOT = ("import sys; sys.path[:] = sys.argv[4:]; "
        "from notifier.poll.parseworker import main; main(sys.argv[1:4])")
"""A worker's program (`python -S -c BOOT FD MEMORY_LIMIT PARENT_PID PATH...`): the
parent's `sys.path` first, so that the worker imports notifier and the jobs' modules from
where the parent did (a checkout, an install, a PYTHONPATH), then `main`. Not `-m`: that
would import this module twice, as `__main__` and under its name (which the pool's jobs
refer to)."""
ORPHAN_CHECK = 1.0
"""Seconds between a worker's checks that its parent still runs (see `_exit_with_parent`)."""

RECYCLE_GROWTH = 10 * 1024 * 1024
"""A worker whose resident size grew by more than this over its size at start-up (about
28 MiB under the daemon) is replaced after its answer: an ordinary feed adds a few MiB at
most, a parse of thousands of entries would otherwise keep its peak for the worker's life.
Growth, not size: a worker's size at start varies with the Python build and the install."""
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


DEFERRED = ("urllib.request", "urllib.error", "feedparser.http")
"""What a worker imports only if something uses it (`defer_module`)."""


class _Deferred(types.ModuleType):
    """A module's stand-in that imports the real one at its first use."""

    def __getattr__(self, attr: str) -> Any:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attr)


def defer_module(name: str) -> None:
    """Put off importing `name` until something uses it.

    For HTTP clients a worker never uses: `feedparser.api` imports its own at once, and
    `xml.sax.saxutils` (which feedparser imports for `escape`) imports `urllib.request`
    for the system ids of documents it would fetch; with them come http.client, email and
    ssl, a fifth of a worker's imports (some 20 ms of every start, and a start is on a
    changed cycle's critical path), while a worker hands the parsers bytes, never a URL.
    Whoever does fetch still gets the real module, imported then. Not
    `importlib.util.LazyLoader`: the import system reads a module's `__spec__` when it
    meets it in `sys.modules`, and that read already loads a lazy module; here `__spec__`
    is the plain attribute every module has (None). `urllib.error`, which `feedparser.api`
    imports for the errors of a fetch, brings `urllib.response` and with it `tempfile`,
    `shutil`, `random`, `bz2` and `lzma`: 6-9 ms of a start for a module no parse reads.
    """
    if name in sys.modules:
        return
    stand_in = _Deferred(name)
    sys.modules[name] = stand_in
    # `import a.b` then `a.b.x` reads b off the package: the stand-in is put there too
    # (the package imported after it is in place, so that the package's own imports of it
    # meet the stand-in); the real module replaces it there when it is imported.
    parent, _, child = name.rpartition(".")
    if parent:
        package = importlib.import_module(parent)
        if not hasattr(package, child):
            setattr(package, child, stand_in)


class Pipe(Protocol):
    def send(self, obj: object) -> None: ...
    def recv(self) -> Any: ...


class Channel:
    """The worker's end of its pipe: `multiprocessing.connection.Connection`'s framing."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, obj: object) -> None:
        data = pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
        size = len(data)
        header = struct.pack("!i", size) if size <= 0x7FFFFFFF else struct.pack("!iQ", -1, size)
        if size <= 16384:  # one write for the usual small answer
            self._write(header + data)
        else:
            self._write(header)
            self._write(data)

    def recv(self) -> Any:
        (size,) = struct.unpack("!i", self._read(4))
        if size == -1:
            (size,) = struct.unpack("!Q", self._read(8))
        return pickle.loads(self._read(size))

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def _read(self, size: int) -> bytearray:
        buffer = bytearray(size)
        view = memoryview(buffer)
        got = 0
        while got < size:
            n = os.readv(self.fd, [view[got:]])
            if n == 0:
                raise EOFError("the pool closed the pipe")
            got += n
        return buffer


def _exit_with_parent(fd: int, parent: int) -> None:
    """On a thread of its own: end the worker once the daemon has ended, however it ended.

    A multiprocessing child was ended by its parent's exit handlers, which a SIGKILL or a
    crash skips; an idle worker would see its pipe's end of file, but a busy one parses on
    for as long as its body takes (the pool's time limit died with the pool). The pipe's
    hang-up wakes this thread at once, and it ends the process as soon as it holds the
    interpreter lock (a parse in Python gives it up every few milliseconds; a single long
    call in C, a regex, ends first). The parent's pid is checked as well, every
    `ORPHAN_CHECK` seconds, for a copy of the pool's end held elsewhere (a fork)."""
    watch = select.poll()
    watch.register(fd, select.POLLHUP | getattr(select, "POLLRDHUP", 0))
    while not watch.poll(ORPHAN_CHECK * 1000) and os.getppid() == parent:
        pass
    os._exit(1)


def main(argv: list[str]) -> None:
    """A worker's start (see `BOOT`): `argv` is its pipe's fd, the memory limit and the
    pid of the daemon that started it."""
    fd, memory_limit, parent = (int(arg) for arg in argv)
    ignore_ctrl_c()
    _killed_with_parent()
    _thread.start_new_thread(_exit_with_parent, (fd, parent))
    serve(Channel(fd), memory_limit)


_PR_SET_PDEATHSIG = 1


def _killed_with_parent() -> None:
    """On Linux, have the kernel SIGKILL this worker when the thread that started it ends:
    `_exit_with_parent` needs the interpreter lock, which one long call in C (feedparser's
    quadratic regex on a hostile author) holds for minutes. The pool starts workers on
    its own threads, which live as long as it does. The parent may have ended before this
    was set: `_exit_with_parent` sees that at once (the pipe's hang-up)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def ignore_ctrl_c() -> None:
    """Ctrl-C reaches the whole process group: the daemon stops its workers itself, so they
    ignore SIGINT instead of each printing a KeyboardInterrupt traceback. The pool starts
    a worker with SIGINT blocked (the mask is inherited across fork and exec), so one sent
    during the interpreter's start stays pending until ignored here, and is dropped."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def serve(conn: Pipe, memory_limit: int) -> None:
    """A worker's life: answer jobs until its pipe closes (the pool kills it) or it
    should be replaced."""
    return_large_blocks()
    if memory_limit:
        with contextlib.suppress(ValueError, OSError):
            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            limit = memory_limit if hard == resource.RLIM_INFINITY else min(memory_limit, hard)
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    # The parser is imported before the worker measures its size at start: importing it
    # at the first job (some 11 MiB) counted as that job's growth and retired every worker
    # after one parse.
    for unused in DEFERRED:
        defer_module(unused)
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
