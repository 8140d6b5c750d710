"""The poll cycle: drives the stages of `notifier.poll` over every due feed.

Holds only what lives longer than a cycle (the store's worker thread, the parse pool, the
planner's discovery back-off); each cycle's facts travel as frozen values from stage to
stage. Polls are written in batches by one writer task while fetching goes on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

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

__all__ = ["BATCH_LINGER", "WRITE_BATCH", "Poller", "StoreThread"]


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
                 rng: random.Random | None = None) -> None:
        self.config = config
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
        feed_ids = list(plan.feed_subs)
        if force:
            due = list((await self._db(self.store.feeds_by_id, feed_ids)).values())
        else:
            due = await self._db(self.store.due_feeds, self.clock(), feed_ids, 10 * WRITE_BATCH)
        if not due:
            return report
        now = self.clock()
        news = await probe_sites(due, plan, self.config, store=self.store,
                                 fetcher=self.fetcher, db=self._db, now=now, force=force)
        queue: asyncio.Queue[Polled | None] = asyncio.Queue()
        writer = asyncio.create_task(self._write(queue, plan, report))

        async def one(feed: Any) -> None:
            every = plan.rescan_every(self.config, feed.id)
            rescan = every is not None and (
                (feed.rescan_due is not None and feed.rescan_due <= now)
                or (feed.api_root is not None and feed.api_root in news.moved))
            await queue.put(await retrieve(self.fetcher, self.parser, feed, rescan=rescan,
                                           conditional=not news.unconditional(feed),
                                           expect=plan.expected_kind(feed.id)))

        try:
            await asyncio.gather(*(one(feed) for feed in due))
        finally:
            await queue.put(None)
            await writer
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
        queued = await self._db(self.store.record_polls, records)
        if any(r.threads or r.settle_thread for r in records):
            self.planner.threads_moved()
        report_batch([s.polled for s in snapshots], outcomes, queued, report)
