"""Parse workers that one hostile feed cannot stall, bloat or keep alive.

feedparser is pure Python and holds the GIL; some inputs make it slow without bound (its
author-email regex is quadratic: an 80,000-character author costs 22 s per item) or large
(100,000 entries: 300 MB). So each parse runs in a worker process that the daemon can kill:

- a **time limit** per parse, kept by the parent (a watchdog, not RLIMIT_CPU, which counts a
  worker's whole life): a worker that overruns is killed and replaced, and the feed fails
  with "parser took more than 10 s";
- a **memory limit** (RLIMIT_AS) in the worker: a parse that needs more fails with
  "parser needed more than ... MiB" and the worker is replaced;
- **recycling**: a worker whose resident size grew by more than `RECYCLE_GROWTH`, or that has
  parsed `RECYCLE_JOBS` bodies (both in `parseworker`, the worker's side, which imports
  only the parser), or that parsed a suspect (a body over `SUSPECT_BYTES`, a feed whose
  parse overran before), exits after answering and a fresh one takes its place
  when next needed, so one big feed does not keep its memory for the daemon's life;
- **less to hold**: entries beyond `MAX_ENTRIES` are cut from the body before it is sent;
- **shutdown** kills the workers, so SIGTERM stops the daemon while a parse is stuck, and
  a worker whose daemon is gone however it went (`kill -9`, a crash) ends itself;
- **no idle worker**: an ordinary worker holds `PIPELINE_DEPTH` bodies, the next one in its
  pipe while it parses; each body's time limit starts when the worker takes it up;
- **bodies held in check**: fetching outruns the parse (50 requests at once, one worker),
  so when the bodies waiting for a parse hold more than `MAX_WAITING_BYTES`, new requests
  wait (`room`) until the parse catches up: a first run over 1,000 feeds held all 996 of
  them at once, which with real blogs' feeds (50-500 KB with full text) is hundreds of MB.

Failures are data (a `failures.Failure`: a kind and a message), as everywhere in the poll path.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from notifier.budget import pause_budget
from notifier.entrytext import cap_entries
from notifier.failures import Failure, FailureKind
from notifier.models import FeedKind, ParsedFeed
from notifier.poll.parseworker import BOOT, parse_job

__all__ = ["PARSE_MEMORY_LIMIT", "PARSE_TIME_LIMIT", "ParsePool"]

PARSE_TIME_LIMIT = 10.0
"""Seconds one parse may take; a real feed of hundreds of items parses in well under one."""
PARSE_MEMORY_LIMIT = 1024 * 1024 * 1024
"""Address space of a parse worker (RLIMIT_AS). Virtual, so well above what it touches:
a worker's interpreter and libraries map ~150 MiB before parsing anything."""
WORKER_START_LIMIT = 60.0
"""Seconds a new worker may take to import its libraries."""
SUSPECT_BYTES = 1024 * 1024
"""A body larger than this, or from a URL whose parse overran before, is parsed in the
suspect lane (one worker of its own), so slow parses never queue the quick ones."""
MAX_SUSPECT_URLS = 10_000
PIPELINE_DEPTH = 2
"""Bodies an ordinary worker holds at once: the next one waits in its pipe while it parses,
so it never idles while the daemon (busy fetching, writing, sending mail) takes an answer
and hands over the next body, a round trip through the event loop and the GIL that cost
2-4 ms a body, a third of a parse. A suspect's worker takes one at a time."""

MAX_WAITING_BYTES = 8 * 1024 * 1024
"""Bytes of fetched bodies the pool holds before they are parsed (queued, or in a worker)
past which new requests wait (`ParsePool.room`). Some 900 bodies of a plain blog feed
(9 KB), 80 of 100 KB: 0.4-0.8 s of one worker's parsing, more than a request takes over
the internet, so the worker does not idle for the next body, while what a run holds stays
bounded whatever its feeds weigh (the requests already on their way when the limit is
reached still bring theirs, and one body may be up to `http.max_body`). A first run over
1,000 of the benchmark's feeds (8.7 MB of bodies, all held at once without a limit): 1 MiB
5.02 / 4.89 s and a peak of 75 MiB, 4 MiB 4.76 / 5.85 s and 78 MiB, 16 MiB (no wait at that
size) 5.88 / 6.74 s and 83 MiB."""

Job = Callable[..., Any]
_UNTOUCHED = object()
"""A job's answer when its worker went (retired, killed) before taking it."""


class _Job:
    """One job sent to a worker: when it began (the job ahead answered), and its answer."""

    __slots__ = ("done", "started")

    def __init__(self) -> None:
        self.started: concurrent.futures.Future[object] = concurrent.futures.Future()
        self.done: concurrent.futures.Future[object] = concurrent.futures.Future()


def _settle(future: concurrent.futures.Future[object], value: object) -> None:
    """Resolve `future` unless it was resolved or cancelled (a caller gave up on it)."""
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        if isinstance(value, BaseException):
            future.set_exception(value)
        else:
            future.set_result(value)


class _Worker:
    """One worker process and the parent's end of its pipe."""

    def __init__(self, memory_limit: int) -> None:
        mine, theirs = socket.socketpair()
        self.conn = Connection(mine.detach())
        # A plain interpreter (`parseworker.BOOT`), not a multiprocessing child: it costs
        # the interpreter's start and the parser's imports, no resource tracker and no
        # second import of the daemon's `__main__`. No `site` (-S) either: the path it
        # would build is the daemon's, given whole (`_import_path`), and its `.pth` hooks
        # (an editable install's importer) were a tenth of a start.
        # Until `parseworker.main` ignores it, a Ctrl-C would interrupt the child's imports
        # with a KeyboardInterrupt traceback: it starts with SIGINT blocked (a thread's mask
        # is inherited across fork and exec), so one sent meanwhile stays pending until
        # ignored, and is dropped. Runs on one of the pool's threads, which live as long
        # as the pool: on Linux a worker is killed when the thread that started it ends.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            self.process = subprocess.Popen(
                [sys.executable, *_interpreter_flags(), "-S", "-c", BOOT,
                 str(theirs.fileno()), str(memory_limit), str(os.getpid()), *_import_path()],
                stdin=subprocess.DEVNULL, pass_fds=(theirs.fileno(),))
        except BaseException:
            self.conn.close()
            raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            theirs.close()
        self.retired = False
        # Runs on a thread: waits for the child's imports (seconds on a busy machine).
        ended = False
        try:
            ready = self.conn.poll(WORKER_START_LIMIT) and self.conn.recv() == "ready"
        except (EOFError, OSError):
            ready, ended = False, True
        if not ready:
            with contextlib.suppress(subprocess.TimeoutExpired):
                if ended:  # its end of the pipe closed: it exits, or has
                    self.process.wait(1.0)
            status = self.process.poll()
            self.kill()
            raise OSError(f"it exited with status {status} before it was ready"
                          if status is not None else
                          f"it was not ready within {WORKER_START_LIMIT:g} s")
        self.start_reading()

    def start_reading(self) -> None:
        self._pending: deque[_Job] = deque()
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self.dead = False
        threading.Thread(target=self._read, name="parse-answers", daemon=True).start()

    def submit(self, job: tuple[Job, tuple[Any, ...]]) -> _Job:
        """Queue a job in the worker's pipe (runs on a thread: the send may wait for the
        worker to finish the job ahead); its `started` resolves when the worker takes it."""
        pending = _Job()
        with self._send_lock:
            with self._lock:
                if self.dead or self.retired:
                    raise EOFError("the worker is gone")
                self._pending.append(pending)
                if len(self._pending) == 1:
                    pending.started.set_result(None)
            try:
                self.conn.send(job)
            except (OSError, ValueError) as exc:
                self._fail_all()
                raise EOFError(str(exc)) from None
        return pending

    def _read(self) -> None:
        """Answers in the order the jobs were sent; the next job starts as one is answered."""
        while True:
            try:
                retire, result = self.conn.recv()
            except (EOFError, OSError, ValueError, TypeError):
                self._fail_all()
                return
            with self._lock:
                done = self._pending.popleft() if self._pending else None
                if retire:
                    self.retired = True  # it exits now: a job behind was never started
                following = self._pending[0] if self._pending and not retire else None
            if done is not None:
                _settle(done.done, result)
            if following is not None:
                _settle(following.started, None)

    def _fail_all(self) -> None:
        with self._lock:
            self.dead = True
            pending = list(self._pending)
            self._pending.clear()
        for job in pending:
            _settle(job.started, EOFError())
            _settle(job.done, EOFError())

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
        with contextlib.suppress(Exception):
            self.process.wait(1.0)
        with contextlib.suppress(Exception):
            self.conn.close()


def _import_path() -> list[str]:
    """Where a worker imports from: the daemon's `sys.path`, then the folder that holds the
    daemon's own `notifier` (found there by an editable install's import hook otherwise)."""
    import notifier

    home = os.path.dirname(os.path.dirname(os.path.abspath(notifier.__file__)))
    return sys.path if home in sys.path else [*sys.path, home]


def _interpreter_flags() -> list[str]:
    """The daemon's own interpreter options (-O, -X, -W, ...), as multiprocessing passes
    them on; none where the helper is gone (it is private to `subprocess`)."""
    flags: Callable[[], list[str]] = getattr(subprocess, "_args_from_interpreter_flags", list)
    return flags()


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark a worker start's failure as seen: the parses that waited for it report it, and
    one no parse waits for any more is no error of its own."""
    if not task.cancelled():
        task.exception()


class ParsePool:
    """Up to `workers` parse processes, and one more for suspects, started when needed.

    A cycle of unchanged feeds (304s) never pays for the workers' start-up. Each call
    borrows an idle worker, or starts one while fewer exist than its lane allows. Two lanes:
    a hostile feed (a huge body, or one whose parse overran before) takes the suspect lane's
    single slot, so however many of them there are, the ordinary feeds keep `workers`
    workers to themselves and are never held up by them for a whole time limit.
    """

    def __init__(self, workers: int | None = None, *,
                 time_limit: float = PARSE_TIME_LIMIT,
                 memory_limit: int = PARSE_MEMORY_LIMIT) -> None:
        # One CPU is the daemon's own (fetching, deciding, writing); each worker holds
        # about 28 MiB, so more than the CPUs can keep busy is memory for nothing.
        self._size = max(1, workers if workers is not None else min((os.cpu_count() or 2) - 1, 4))
        self.time_limit = time_limit
        self.memory_limit = memory_limit
        self._lanes: dict[bool, dict[_Worker, int]] = {False: {}, True: {}}
        """Each lane's workers (suspect or not) and the jobs each is given now: the suspect
        lane never takes a warm worker from the ordinary one."""
        self._starting: dict[bool, set[asyncio.Task[None]]] = {False: set(), True: set()}
        """Each lane's worker starts under way: tasks of their own, so that a started worker
        joins its lane whichever parse asked for it, and whether or not that parse is still
        waiting (cancelled, or not yet resumed)."""
        self._all: set[_Worker] = set()
        self._free: asyncio.Semaphore | None = None
        self._suspect_free: asyncio.Semaphore | None = None
        self._suspects: set[str] = set()
        self._threads: concurrent.futures.ThreadPoolExecutor | None = None
        self._closed = False
        self.max_waiting = MAX_WAITING_BYTES
        self._waiting = 0  # see `waiting`
        self._roomy: asyncio.Event | None = None

    async def parse(self, body: bytes, url: str, headers: dict[str, str],
                    expect: FeedKind | None = None, *,
                    budget: asyncio.Timeout | None = None) -> ParsedFeed | Failure:
        """The parsed feed, or why not (a time or memory overrun included).

        `budget`, the caller's deadline, stands still while the body waits for a worker.
        """
        size = len(body)
        self._waiting += size
        try:
            result = await self._parse(body, url, headers, expect, budget)
        finally:
            self._waiting -= size
            if self._roomy is not None and self._waiting < self.max_waiting:
                self._roomy.set()
        return result

    @property
    def waiting(self) -> int:
        """Bytes of the bodies given to `parse` and not yet answered."""
        return self._waiting

    def crowded(self) -> bool:
        """Whether the bodies waiting for a parse hold `max_waiting` bytes or more."""
        return self._waiting >= self.max_waiting and not self._closed

    async def room(self) -> None:
        """Return once the bodies waiting for a parse hold less than `max_waiting` bytes
        (or the pool is shut down): a caller about to fetch a body waits here first."""
        while self.crowded():
            if self._roomy is None:
                self._roomy = asyncio.Event()
            self._roomy.clear()
            await self._roomy.wait()

    async def _parse(self, body: bytes, url: str, headers: dict[str, str],
                     expect: FeedKind | None, budget: asyncio.Timeout | None
                     ) -> ParsedFeed | Failure:
        suspect = len(body) > SUSPECT_BYTES or url in self._suspects
        # The entries beyond MAX_ENTRIES never travel: 100,000 of them are 14.6 MB to send
        # and to hold in the worker, the 5,000 kept a tenth of it.
        body = await asyncio.to_thread(cap_entries, body) if suspect else cap_entries(body)
        result = await self.run(parse_job, body, url, headers, expect, suspect=suspect,
                                budget=budget)
        if isinstance(result, str) and result.startswith(("parser took", "parser needed",
                                                          "parser worker died")):
            if len(self._suspects) < MAX_SUSPECT_URLS:
                self._suspects.add(url)
        elif isinstance(result, ParsedFeed):
            self._suspects.discard(url)
        if isinstance(result, ParsedFeed | Failure):
            return result
        if isinstance(result, str):  # the pool's own reason: a time or memory overrun
            return Failure(FailureKind.PARSER, result)
        return Failure(FailureKind.PARSER,
                       f"parser failed: unexpected answer {type(result).__name__}")

    async def run(self, fn: Job, *args: Any, suspect: bool = False,
                  budget: asyncio.Timeout | None = None) -> object:
        """`fn(*args)` in a worker (fn importable by name); a reason string when it failed.

        `budget` (the caller's `asyncio.timeout`) stands still while this waits for a
        worker (a free slot, a worker's start): that wait is the pool's backlog, which a
        first run of thousands of feeds on a busy machine makes longer than any one feed's
        budget, not the slowness of this job. It runs on once the worker is there.
        """
        if self._closed:
            return "stopping"
        if self._free is None or self._suspect_free is None:
            self._free = asyncio.Semaphore(self._size * PIPELINE_DEPTH)
            self._suspect_free = asyncio.Semaphore(1)
        loop = asyncio.get_running_loop()
        resume = pause_budget(budget, loop)
        try:
            async with self._suspect_free if suspect else self._free:
                for _ in range(3):  # a job a worker left untouched (it retired) goes again
                    if self.closed:  # shut down meanwhile: no new worker
                        return "stopping"
                    try:
                        worker = await self._borrow(suspect)
                    except (OSError, EOFError) as exc:
                        return f"parser worker did not start: {exc}"
                    result = await self._run_on(worker, fn, args, suspect, loop, resume)
                    if result is not _UNTOUCHED:
                        return result
                return "parser worker died (out of memory?)"
        finally:
            resume()  # also when cancelled while waiting

    async def _run_on(self, worker: _Worker, fn: Job, args: tuple[Any, ...], suspect: bool,
                      loop: asyncio.AbstractEventLoop, resume: Callable[[], None]) -> object:
        """The job on a borrowed worker, within the time limit once the worker takes it;
        the worker given back. `_UNTOUCHED` when the worker went before taking it."""
        try:
            if self.closed:
                self._discard(worker)
                return "stopping"
            assert self._threads is not None
            try:
                job = await loop.run_in_executor(self._threads, worker.submit, (fn, args))
                # The job ahead of this one has its own time limit: waiting for it is
                # waiting for a worker, as in the queue (the caller's budget stands still).
                await asyncio.wrap_future(job.started)
            except (EOFError, OSError, ValueError):
                self._discard(worker)
                return _UNTOUCHED
            resume()
            try:
                result = await asyncio.wait_for(asyncio.wrap_future(job.done), self.time_limit)
            except TimeoutError:
                self._discard(worker)
                return f"parser took more than {self.time_limit:g} s"
            except (EOFError, OSError, ValueError):
                self._discard(worker)
                return "parser worker died (out of memory?)"
            return result
        except BaseException:
            self._discard(worker)  # cancelled mid-parse: its state is unknown
            raise
        finally:
            self._give_back(worker, suspect)

    def _give_back(self, worker: _Worker, suspect: bool) -> None:
        lane = self._lanes[suspect]
        if worker not in lane:
            return  # discarded already
        lane[worker] -= 1
        if lane[worker] <= 0 and (worker.retired or worker.dead or suspect):
            # A suspect's worker has just held a big or hostile parse: a fresh one
            # costs less than what it may keep.
            self._discard(worker)

    async def _borrow(self, suspect: bool) -> _Worker:
        if self._threads is None:
            self._threads = concurrent.futures.ThreadPoolExecutor(
                (self._size + 1) * PIPELINE_DEPTH, thread_name_prefix="parse-io")
        lane = self._lanes[suspect]
        depth = 1 if suspect else PIPELINE_DEPTH
        wanted = 1 if suspect else self._size
        while True:
            usable = [w for w, n in lane.items() if n < depth and not (w.retired or w.dead)]
            if usable:
                worker = min(usable, key=lambda w: lane[w])
                lane[worker] += 1
                return worker
            starting = self._starting[suspect]
            live = sum(1 for w in lane if not (w.retired or w.dead))
            if not starting or live + len(starting) < wanted:
                task = asyncio.create_task(self._start(suspect))
                task.add_done_callback(_retrieve)
                starting.add(task)
            # Wait for a start (ours or one under way) to end; a worker it placed may be
            # taken by another parse first, and then this one looks again.
            done, _ = await asyncio.wait(starting, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                failure = None if task.cancelled() else task.exception()
                if failure is not None:
                    raise failure

    async def _start(self, suspect: bool) -> None:
        """Start a worker and put it in its lane, idle. Starting a process imports the
        parser: seconds on a busy machine, so it runs on a thread, off the loop."""
        assert self._threads is not None
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        try:
            worker = await loop.run_in_executor(self._threads, _Worker, self.memory_limit)
        finally:
            if task is not None:
                self._starting[suspect].discard(task)
        if self._closed:
            worker.kill()
            return
        self._all.add(worker)
        self._lanes[suspect][worker] = 0

    def _discard(self, worker: _Worker) -> None:
        self._all.discard(worker)
        for lane in self._lanes.values():
            lane.pop(worker, None)
        worker.kill()

    @property
    def closed(self) -> bool:
        return self._closed

    def worker_pids(self) -> list[int]:
        return [w.process.pid for w in self._all]

    def shutdown(self) -> None:
        """Stop every worker now, a stuck one included: nothing they do needs finishing."""
        self._closed = True
        if self._roomy is not None:
            self._roomy.set()  # nobody waits for room in a pool that is gone
        # Killed, busy or idle: an idle one asked to exit spent 7-15 ms taking its
        # interpreter apart while the run waited for it, at the end of every `run --once`.
        for worker in list(self._all):
            worker.kill()
        self._all.clear()
        for lane in self._lanes.values():
            lane.clear()
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._threads = None
