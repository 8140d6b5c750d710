"""A large `run --once` polls on both cores: its feeds shared between two processes by host.

One process polls at most one core's worth: at 10,000 unchanged feeds the main thread
(HTTP client, event loop) and the store's thread take turns under one interpreter lock for
~1.8 s while the other core idles. So a run with many feeds forks a second process after
the configuration is loaded (nothing imported or parsed again) and before any event loop,
thread or connection exists; each polls its share, the first also delivers.

    config + stored states -> `split`: every feed known? enough of them? -> two `Share`s
      parent: polls its share, delivers as the run goes   \\
      helper: polls its share, says "queued" and at the end its `PollReport`  -> one summary

Why by host: politeness is per host (`fetch.host_key`: `per_host`, Retry-After, a site's
probe), and a host's feeds all in one process keep every limit exactly as one process
would. A run whose feeds sit on too few hosts to split evenly runs in one process.
Why only when every subscription has its feed: discovery and the first look at a new site
write what the other process's plan would need; a first run (where they happen) stays in
one process. Each process claims its feeds under its own node name, and every write is
fenced as between nodes (`store.leases`): a share polled twice is never recorded twice.
If the helper dies, the parent polls the helper's share itself before it reports.
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
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from notifier.config import Config
from notifier.fetch import host_key
from notifier.poll.readers import has_feed, readers
from notifier.poll.record import PollReport
from notifier.store import Store

log = logging.getLogger("notifier")

__all__ = ["SHARD_MIN_FEEDS", "Helper", "Share", "Split", "partition", "split"]

SHARD_MIN_FEEDS = 2_000
"""Feeds below which a run stays in one process: the helper's own start (its engine, its
connections, its parse worker) costs more than half of a small run saves. The environment
variable NOTIFIER_SPLIT_MIN_FEEDS sets another threshold (a very large one: never split)."""
SMALLEST_SHARE = 0.25
"""A split whose smaller share is less than this of the feeds is not worth a process."""

_HEADER = struct.Struct("!cI")
_QUEUED, _REPORT = b"q", b"r"


@dataclass(frozen=True, slots=True)
class Share:
    """The feeds one process of a split run polls: those in `feeds`, or every feed but
    those (`others`) for the parent, which also takes any feed met after the split."""

    feeds: frozenset[int]
    others: bool = False

    def polls(self, feed_id: int) -> bool:
        return (feed_id in self.feeds) != self.others


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


def split(config: Config, store: Store, cpus: int | None = None) -> Split | None:
    """Whether and how to split this run between two processes (None: one process).

    Reads the state once, before the fork; when it splits, also gives back every claim
    left in the state (what a single process's start would do), so that neither process
    gives back what the other has just claimed."""
    if (cpus if cpus is not None else os.cpu_count() or 1) < 2 or not hasattr(os, "fork"):
        return None
    if store.engine.dialect.name != "sqlite":
        return None  # several nodes on PostgreSQL already share the feeds between them
    least = max(_least_feeds(), 2)
    if len(config.subscriptions) < least // 10 or store.feed_count() < least:
        return None  # far too few for any split: the run's usual case, read cheaply
    states = store.subscription_states()
    if not all(has_feed(sub, states.get(sub.name)) for sub in config.subscriptions):
        return None  # discoveries to run: see the module's docstring
    feed_subs, _ = readers(config.subscriptions, states, store.thread_feeds())
    if len(feed_subs) < least:
        return None
    urls = store.feed_urls()
    first, second = partition({i: host_key(urls.get(i, "")) for i in feed_subs}, 2)
    if min(len(first), len(second)) < SMALLEST_SHARE * len(feed_subs):
        return None
    store.release_node("", time.time(), everyone=True)
    return Split(parent=Share(second, others=True), helper=Share(second))


def _least_feeds() -> int:
    try:
        return int(os.environ.get("NOTIFIER_SPLIT_MIN_FEEDS", SHARD_MIN_FEEDS))
    except ValueError:
        return SHARD_MIN_FEEDS


class Helper:
    """The second process of a split run, seen from the first: its messages and its end."""

    def __init__(self, pid: int, fd: int, node: str, share: Share) -> None:
        self.pid = pid
        self.node = node
        self.share = share
        self._fd = fd

    @classmethod
    def start(cls, config: Config, share: Share, node: str,
              poll: Callable[[Config, Share, str, Callable[[], None]], PollReport]) -> Helper:
        """Fork the helper; it runs `poll(config, share, node, queued)` and reports.

        Called with no event loop, thread or connection open. The child never returns
        from here: it leaves with `os._exit`, so nothing of the parent's (the state's lock,
        buffered output, exit handlers) runs twice."""
        read, write = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the forked child; its report is tested
            code = 70
            try:
                os.close(read)
                signal.signal(signal.SIGINT, signal.SIG_DFL)  # a Ctrl-C ends both at once

                def queued() -> None:
                    _send(write, _QUEUED, b"")

                report = poll(config, share, node, queued)
                _send(write, _REPORT, pickle.dumps(report))
                code = 0
            except BaseException:
                log.exception("the second poll process failed")
            finally:
                os._exit(code)
        os.close(write)
        return cls(pid, read, node, share)

    async def follow(self, on_queued: Callable[[], None]) -> PollReport | None:
        """Pass on its "queued" messages until it ends; its report, or None if it died
        without one (then its exit is logged)."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 26)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(self._fd, "rb", 0))
        report: PollReport | None = None
        try:
            with contextlib.suppress(asyncio.IncompleteReadError):
                while True:
                    kind, size = _HEADER.unpack(await reader.readexactly(_HEADER.size))
                    body = await reader.readexactly(size)
                    if kind == _QUEUED:
                        on_queued()
                    elif kind == _REPORT:
                        report = pickle.loads(body)  # our own child's report
        except BaseException:
            os.kill(self.pid, signal.SIGTERM)
            raise
        finally:
            transport.close()
            status = await asyncio.to_thread(_reap, self.pid)
        if report is None:
            log.error("the second poll process ended without its report (%s); this process "
                      "polls its %d feeds", _describe(status), len(self.share.feeds))
        return report


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
