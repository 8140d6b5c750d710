"""The poll cycle: drives the stages of `notifier.poll` over every due feed.

Holds only what lives longer than a cycle (the store's worker thread, the parse pool, the
planner's discovery back-off); each cycle's facts travel as frozen values from stage to
stage. Polls are written in batches by one writer task while fetching goes on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from notifier.cluster import Node
from notifier.config import Config
from notifier.fetch import Fetcher
from notifier.poll.complete import complete_batch
from notifier.poll.decide import decide_poll
from notifier.poll.plan import Plan, Planner
from notifier.poll.probe import probe_sites
from notifier.poll.record import PollReport, report_batch
from notifier.poll.retrieve import ParsePool, Polled, retrieve
from notifier.store import Store

T = TypeVar("T")

WRITE_BATCH = 200
"""Polls written per transaction: large enough to amortise commits, small enough to bound
what a crash can make the next run fetch again."""
BATCH_LINGER = 0.25
"""Seconds the writer waits for more finished polls before writing a smaller batch."""

__all__ = ["BATCH_LINGER", "WRITE_BATCH", "Poller", "StoreThread", "claim_size"]

log = logging.getLogger("notifier")


def claim_size(config: Config, store: Store) -> int:
    """Feeds a node holds claimed at once. One node (SQLite) takes large batches, as before
    there were claims; with several nodes a node claims only what it can fetch at once, so
    that every node gets a share and no claimed feed waits for a free connection."""
    if store.engine.dialect.name == "sqlite":
        return 10 * WRITE_BATCH
    return max(config.http.concurrency, 2)


class StoreThread:
    """Runs every store call on one worker thread: the store is synchronous, the daemon not.

    Polling and delivery share it, so SQLite sees one writer and PostgreSQL one connection
    at a time per process.
    """

    def __init__(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="store")

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class Poller:
    def __init__(self, config: Config, store: Store, fetcher: Fetcher, db: StoreThread, *,
                 parser: ParsePool, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None, node: Node | None = None) -> None:
        self.config = config
        self.node = node or Node.of(config)
        self.store = store
        self.fetcher = fetcher
        self.parser = parser
        self.clock = clock
        self.rng = rng or random.Random()
        self._db = db
        self.planner = Planner(config, store, fetcher, db, clock)

    async def poll(self, *, force: bool = False) -> PollReport:
        """Poll every feed that is due (every feed with `force`) and queue what is new."""
        report = PollReport()
        # Planned once per cycle: each feed is polled once per cycle, so no batch of this
        # cycle changes what another batch needs to know about its subscriptions.
        plan = await self.planner.plan(force=force)
        for failure in plan.failures:
            # Tried and failed like a fetch: a subscription with no feed must not vanish
            # from the summary ("0 feeds polled, 0 failed" while nothing works).
            report.feeds_polled += 1
            report.feeds_failed += 1
            report.errors.append(f"subscription {failure.subscription}: {failure.reason}")
        queue: asyncio.Queue[Polled | None] = asyncio.Queue()
        writer = asyncio.create_task(self._write(queue, plan, report))

        async def one(feed: Any, news: Any, now: float) -> None:
            if not self.node.holds(now, self.clock()):
                report.fenced += 1  # paused past the lease: another node polls it now
                return
            every = plan.rescan_every(self.config, feed.id)
            rescan = every is not None and (
                (feed.rescan_due is not None and feed.rescan_due <= now)
                or (feed.api_root is not None and feed.api_root in news.moved))
            await queue.put(await retrieve(self.fetcher, self.parser, feed, rescan=rescan,
                                           conditional=not news.unconditional(feed),
                                           expect=plan.expected_kind(feed.id)))

        # Feeds are claimed a batch at a time (see `claim_size`), the next batch when the
        # fetches in flight run low; each feed at most once per cycle.
        unclaimed = dict.fromkeys(plan.feed_subs)
        size = claim_size(self.config, self.store)
        in_flight: set[asyncio.Task[None]] = set()
        claimed: list[int] = []
        try:
            while unclaimed:
                now = self.clock()
                due = await self._db(self.store.claim_feeds, self.node.name, now,
                                     list(unclaimed), size - len(in_flight), self.node.lease,
                                     not force)
                if not due:
                    break
                for feed in due:
                    unclaimed.pop(feed.id, None)
                    claimed.append(feed.id)
                self.node.feeds.update(claimed[-len(due):])
                news = await probe_sites(due, plan, self.config, store=self.store,
                                         fetcher=self.fetcher, db=self._db, now=now,
                                         force=force)
                in_flight.update(asyncio.create_task(one(feed, news, now)) for feed in due)
                while len(in_flight) > size // 2:
                    done, in_flight = await asyncio.wait(
                        in_flight, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        task.result()
            await asyncio.gather(*in_flight)
        finally:
            for task in in_flight:
                task.cancel()
            try:
                await queue.put(None)
                await writer
            finally:
                # Whatever was claimed and not written (a failed write, a stop, a lost
                # lease) is given back now and no longer renewed by the heartbeat.
                self.node.feeds.difference_update(claimed)
                left = [i for i in claimed if i not in report.written]
                if left:
                    await self._db(self.store.release_feeds, self.node.name, left)
        return report

    async def _write(self, queue: asyncio.Queue[Polled | None], plan: Plan,
                     report: PollReport) -> None:
        loop = asyncio.get_running_loop()
        done = False
        while not done:
            item = await queue.get()
            if item is None:
                break
            batch = [item]
            # Linger briefly so that a batch, and so a transaction, covers many feeds.
            deadline = loop.time() + BATCH_LINGER
            while len(batch) < WRITE_BATCH:
                try:
                    more = await asyncio.wait_for(queue.get(), max(deadline - loop.time(), 0))
                except TimeoutError:
                    break
                if more is None:
                    done = True
                    break
                batch.append(more)
            await self._write_batch(batch, plan, report)

    async def _write_batch(self, batch: list[Polled], plan: Plan, report: PollReport) -> None:
        snapshots = await complete_batch(batch, plan, config=self.config, store=self.store,
                                         fetcher=self.fetcher, parser=self.parser, db=self._db)
        now = self.clock()
        outcomes = [decide_poll(s, plan, self.config, now=now, rng=self.rng) for s in snapshots]
        records = [o.record for o in outcomes]
        tokens = {s.polled.feed.id: s.polled.feed.lease_token for s in snapshots}
        queued, refused = await self._db(self.store.record_fenced, records, self.node.name,
                                         tokens)
        if refused:
            # Paused past the lease (or cut off): another node has these feeds now and
            # writes their polls; ours are stale and dropped whole, notifications included.
            log.warning("lost the lease on %d feed(s) before writing their polls (this node "
                        "was paused or slow for more than %.0f s); their results are dropped, "
                        "another node polls them", len(refused), self.node.lease)
            report.fenced += len(refused)
            lost = set(refused)
            kept = [i for i, o in enumerate(outcomes) if o.record.feed_id not in lost]
            snapshots = [snapshots[i] for i in kept]
            outcomes = [outcomes[i] for i in kept]
            records = [o.record for o in outcomes]
        report.written.update(r.feed_id for r in records)
        if any(r.threads or r.settle_thread for r in records):
            self.planner.threads_moved()
        report_batch([s.polled for s in snapshots], outcomes, queued, report)
