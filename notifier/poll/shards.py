"""A large `run --once` polls on both cores: its feeds shared between two processes by host.

One process polls at most one core's worth: at 10,000 unchanged feeds the main thread
(HTTP client, event loop) and the store's thread take turns under one interpreter lock for
~1.8 s while the other core idles. So a run with many feeds forks a second process after
the configuration is loaded (nothing imported or parsed again) and before any event loop,
thread or connection exists; each polls its share, the first also delivers.

    config + stored states -> `split`: every feed known? enough of them? -> two `Share`s
      parent: polls its share, delivers as the run goes   \\
      helper: polls its share, says "queued" (and "alive" at the heartbeat's rate), and
              at the end its `PollReport`                            -> one summary

Why by host: politeness is per host (`fetch.host_key`: `per_host`, Retry-After, a site's
probe), and a host's feeds all in one process keep every limit exactly as one process
would; a feed's host and its site's API root's host count as one (`hosts`). A run whose
feeds sit on too few hosts to split evenly runs in one process.
Why only when every subscription has its feed: discovery and the first look at a new site
write what the other process's plan would need; a first run (where they happen) stays in
one process. Each process claims its feeds under its own node name (`store.leases`), and
the shares are disjoint, so no feed is polled by both; what keeps a feed from being
recorded twice is that, not the lease token (on SQLite its check is not inside the write's
transaction). If the helper dies or falls silent, the parent polls the feeds of its share
it had not written before it reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from notifier.config import Config
from notifier.fetch import host_key
from notifier.poll.readers import has_feed, readers
from notifier.poll.record import PollReport
from notifier.store import Store

log = logging.getLogger("notifier")

__all__ = ["SHARD_MIN_FEEDS", "Helper", "Link", "Share", "Split", "hosts", "partition", "split"]

SHARD_MIN_FEEDS = 2_000
"""Feeds below which a run stays in one process: the helper's own start (its engine, its
connections, its parse worker) costs more than half of a small run saves. The environment
variable NOTIFIER_SPLIT_MIN_FEEDS sets another threshold (a very large one: never split)."""
SMALLEST_SHARE = 0.25
"""A split whose smaller share is less than this of the feeds is not worth a process."""

_HEADER = struct.Struct("!cI")
_QUEUED, _ALIVE, _PART, _REPORT = b"q", b"a", b"p", b"r"


@dataclass(frozen=True, slots=True)
class Share:
    """The feeds one process of a split run polls.

    Only feeds known at the split: one met later is a thread the other process began to
    follow on a site of its own (its posts feed was polled there), so polling it here
    would ask that host from both processes past `per_host` and its Retry-After. It is
    polled by the next run, as one process leaves a thread it began to follow in a cycle
    to the next cycle (each cycle's plan is read once)."""

    feeds: frozenset[int]

    def polls(self, feed_id: int) -> bool:
        return feed_id in self.feeds


@dataclass(frozen=True, slots=True)
class Split:
    parent: Share
    helper: Share


def partition(hosts: Mapping[int, str], count: int) -> list[frozenset[int]]:
    """Feed id -> host, split into `count` shares of nearly equal size, no host in two.

    Largest host first into the smallest share so far (ties: host name, share order), so
    the same feeds always give the same split."""
    by_host: dict[str, list[int]] = {}
    for feed_id, host in hosts.items():
        by_host.setdefault(host, []).append(feed_id)
    shares: list[list[int]] = [[] for _ in range(count)]
    for host in sorted(by_host, key=lambda h: (-len(by_host[h]), h)):
        smallest = min(range(count), key=lambda i: len(shares[i]))
        shares[smallest].extend(by_host[host])
    return [frozenset(s) for s in shares]


def hosts(urls: Mapping[int, tuple[str, str | None]], ids: Iterable[int]) -> dict[int, str]:
    """Feed id -> the host that decides its share: its URL's, or, when its site's API root
    (the WordPress probe's address) is on another host, one name for every host joined so.

    A site probe's answer is read once per site: a site whose thread feeds sat on two hosts
    (`example.com` typed, `www.example.com` found) was probed by both processes, and the
    one that stored its answer first took the news ("count moved: rescan") from the other's
    threads; its probe also went to a host the other process was polling."""
    parent: dict[str, str] = {}

    def root(host: str) -> str:
        parent.setdefault(host, host)
        while parent[host] != host:
            parent[host] = parent[parent[host]]
            host = parent[host]
        return host

    found = {i: urls.get(i, ("", None)) for i in ids}
    for url, api_root in found.values():
        if api_root:
            a, b = root(host_key(url)), root(host_key(api_root))
            if a != b:
                parent[max(a, b)] = min(a, b)
    return {i: root(host_key(url)) for i, (url, _) in found.items()}


def split(config: Config, store: Store, cpus: int | None = None) -> Split | None:
    """Whether and how to split this run between two processes (None: one process).

    Reads the state once, before the fork; when it splits, also gives back every claim
    left in the state (what a single process's start would do), so that neither process
    gives back what the other has just claimed."""
    if (cpus if cpus is not None else os.cpu_count() or 1) < 2 or not hasattr(os, "fork"):
        return None
    if store.dialect != "sqlite":
        return None  # several nodes on PostgreSQL already share the feeds between them
    if config.http.concurrency < 2:
        return None  # each process needs a connection: two would break the limit
    least = max(_least_feeds(), 2)
    if len(config.subscriptions) < least // 10 or store.feed_count() < least:
        return None  # far too few for any split: the run's usual case, read cheaply
    states = store.subscription_states()
    if not all(has_feed(sub, states.get(sub.name)) for sub in config.subscriptions):
        return None  # discoveries to run: see the module's docstring
    feed_subs, _ = readers(config.subscriptions, states, store.thread_feeds())
    if len(feed_subs) < least:
        return None
    first, second = partition(hosts(store.feed_urls(), feed_subs), 2)
    if min(len(first), len(second)) < SMALLEST_SHARE * len(feed_subs):
        return None
    store.release_node("", time.time(), everyone=True)
    return Split(parent=Share(first), helper=Share(second))


def _least_feeds() -> int:
    raw = os.environ.get("NOTIFIER_SPLIT_MIN_FEEDS")
    if raw is None:
        return SHARD_MIN_FEEDS
    try:
        return int(raw)
    except ValueError:
        log.warning("NOTIFIER_SPLIT_MIN_FEEDS=%r is not a whole number of feeds; using "
                    "%d", raw, SHARD_MIN_FEEDS)
        return SHARD_MIN_FEEDS


class Link:
    """The second process's side of the pipe: what it tells the first."""

    def __init__(self, fd: int, lease: float) -> None:
        self._fd = fd
        self.every = lease / 3
        """Seconds between "alive" messages: the node heartbeat's rate (`cluster.Node`)."""

    def queued(self) -> None:
        """Notifications were queued: the first process delivers them now."""
        _send(self._fd, _QUEUED, b"")

    def alive(self) -> None:
        """Still polling: the first process ends a second one silent for a whole lease."""
        _send(self._fd, _ALIVE, b"")

    def polled(self, part: PollReport) -> None:
        """A batch of polls was written: what it adds to the report (`Poller.on_polled`),
        so that if this process dies the first still counts what it had done."""
        _send(self._fd, _PART, pickle.dumps(part))


class Helper:
    """The second process of a split run, seen from the first: its messages and its end.

    It never outlives the first: it reads a pipe that only the first writes to, and ends
    itself when that pipe closes, which the kernel does when the first process ends however
    it ends (SIGTERM to the first alone, SIGKILL, a crash); otherwise it would poll on with
    nobody to deliver, holding the state's lock (inherited) against the next run. And the
    first never waits for it for ever: one silent for a whole `cluster.lease` (stopped,
    hung) is killed, and its feeds polled by the first, as for one that died."""

    def __init__(self, pid: int, fd: int, node: str, share: Share, lease: float,
                 lifeline: int, started: float) -> None:
        self.pid = pid
        self.node = node
        self.share = share
        self.lease = lease
        self.started = started
        """When it was forked: every poll it wrote since is of this run."""
        self.partial = PollReport()
        """What its written batches added to the report: its count if it dies."""
        self._fd = fd
        self._lifeline = lifeline

    @classmethod
    def start(cls, config: Config, share: Share, node: str,
              poll: Callable[[Config, Share, str, Link], PollReport]) -> Helper:
        """Fork the helper; it runs `poll(config, share, node, link)` and reports.

        Called with no event loop, thread or connection open. The child never returns
        from here: it leaves with `os._exit`, so nothing of the parent's (the state's lock,
        buffered output, exit handlers) runs twice."""
        lease = config.cluster.lease
        read, write = os.pipe()
        watched, lifeline = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        started = time.time()
        try:
            pid = os.fork()
        except OSError:
            for fd in (read, write, watched, lifeline):
                os.close(fd)
            raise
        if pid == 0:  # pragma: no cover - runs in the forked child; its report is tested
            code = 70
            try:
                os.close(read)
                os.close(lifeline)
                _end_with_parent(watched)
                signal.signal(signal.SIGINT, signal.SIG_DFL)  # a Ctrl-C ends both at once
                report = poll(config, share, node, Link(write, lease))
                _send(write, _REPORT, pickle.dumps(report))
                code = 0
            except BaseException:
                log.exception("the second poll process failed")
            finally:
                os._exit(code)
        os.close(write)
        os.close(watched)
        return cls(pid, read, node, share, lease, lifeline, started)

    async def follow(self, on_queued: Callable[[], None]) -> PollReport | None:
        """Pass on its "queued" messages until it ends; its report, or None if it died
        without one or fell silent for a lease (then it is killed, and its end logged)."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 26)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(self._fd, "rb", 0))
        report: PollReport | None = None
        silent = False
        try:
            with contextlib.suppress(asyncio.IncompleteReadError):
                while True:
                    try:
                        async with asyncio.timeout(self.lease):
                            kind, size = _HEADER.unpack(
                                await reader.readexactly(_HEADER.size))
                            body = await reader.readexactly(size)
                    except TimeoutError:
                        silent = True
                        os.kill(self.pid, signal.SIGKILL)
                        break
                    if kind == _QUEUED:
                        on_queued()
                    elif kind == _PART:
                        self.partial.add(pickle.loads(body))  # our own child's
                    elif kind == _REPORT:
                        report = pickle.loads(body)  # our own child's report
        except BaseException:
            # SIGKILL: a stopped process would keep a SIGTERM pending, and the reap below
            # wait for ever (a poll batch is one transaction: nothing is half written).
            os.kill(self.pid, signal.SIGKILL)
            raise
        finally:
            transport.close()
            status = await asyncio.to_thread(_reap, self.pid)
            os.close(self._lifeline)
        if report is None:
            why = (f"sent nothing for {self.lease:.0f} s and was ended" if silent
                   else f"ended without its report ({_describe(status)})")
            log.error("the second poll process %s; this process polls those of its %d "
                      "feeds it had not polled", why, len(self.share.feeds))
        return report


def _end_with_parent(fd: int) -> None:
    """In the child: end this process as soon as the parent has (`fd` reads end of file:
    the parent held the only other end)."""
    def watch() -> None:
        while os.read(fd, 1):
            pass
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="end with the first process", daemon=True).start()


def _send(fd: int, kind: bytes, body: bytes) -> None:
    data = memoryview(_HEADER.pack(kind, len(body)) + body)
    while data:
        data = data[os.write(fd, data):]


def _reap(pid: int) -> int:
    return os.waitpid(pid, 0)[1]


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
