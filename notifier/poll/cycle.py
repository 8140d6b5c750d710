"""The poll cycle: drives the stages of `notifier.poll` over every due feed.

Holds only what lives longer than a cycle (the store's worker thread, the parse pool, the
planner's discovery back-off); each cycle's facts travel as frozen values from stage to
stage. Polls are written in batches by one writer task while fetching goes on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import itertools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import fields, replace
from typing import Any, TypeVar

from notifier import redact
from notifier.budget import Budget
from notifier.cluster import Node
from notifier.config import Config
from notifier.failures import FailedFeed, Failure, FailureKind
from notifier.fetch import Fetcher, Withdrawn
from notifier.models import Entry, FeedKind, FetchResult
from notifier.poll.complete import Snapshot, complete_batch
from notifier.poll.decide import Outcome, decide_poll
from notifier.poll.news import SiteNews, rescan_now
from notifier.poll.parsepool import PARSE_TIME_LIMIT, ParsePool
from notifier.poll.plan import Plan, Planner
from notifier.poll.probe import probe_sites
from notifier.poll.record import PollReport, report_batch
from notifier.poll.retrieve import Polled, retrieve
from notifier.poll.shards import Share
from notifier.poll.waiting import wait_while_finishing
from notifier.store import FeedState, PollRecord, Store
from notifier.store.db import reason as db_reason
from notifier.store.statefile import unwritable
from notifier.textsafety import storable

T = TypeVar("T")

WRITE_BATCH = 200
"""Polls written per transaction: large enough to amortise commits, small enough to bound
what a crash can make the next run fetch again."""
BATCH_LINGER = 0.25
"""Seconds the writer waits for more finished polls before writing a smaller batch."""
NEWS_LINGER = 0.02
"""... once the batch holds a changed feed: its notifications are sent only once written
(in a `run --once` over 1,000 feeds with 100 changed, most mail waited for the last batch,
after the parses, instead of going out while they ran)."""
STRAGGLER_WAIT = 1.0
"""A daemon cycle stops waiting once no feed finished for this long: the rest are slow
(dripping servers, stuck parses) and finish in the background within their budget."""
CYCLE_WAIT = 3.0
"""... and after this long in any case; what is still in flight lands in a later cycle."""

log = logging.getLogger("notifier")

__all__ = ["BATCH_LINGER", "STRAGGLER_WAIT", "WRITE_BATCH", "Poller", "StoreThread",
           "claim_size"]


def claim_size(config: Config, store: Store) -> int:
    """Feeds a node holds claimed at once. One node (SQLite) takes large batches, as before
    there were claims; with several nodes a node claims only what it can fetch at once, so
    that every node gets a share and no claimed feed waits for a free connection."""
    if store.dialect == "sqlite":
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
    """Polls due feeds; a slow feed delays neither the cycle nor the next one.

    Each feed's fetch, parse and completion run as one task with its own time budget
    (`feed_budget`): one that overruns is recorded as failed and backs off like any failure.
    A cycle waits for its feeds while they keep finishing; once only stragglers remain (no
    feed finished for `STRAGGLER_WAIT`), it returns and they finish in the background, their
    results written by the same writer. A feed still in flight is not started again.
    """

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
        self.planner = Planner(config, store, fetcher, db, clock, self.node.name)
        self._retired: list[Planner] = []
        self.feed_budget = feed_budget(config)
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._running = 0
        """Fetch tasks not yet finished (`_inflight` also holds finished, unwritten ones)."""
        self._finished: asyncio.Future[None] | None = None
        self._covers: tuple[int, bool] = (-1, False)
        """(plan reading, whether its feeds are every feed in the state): see
        `_plan_covers_state`."""
        self._queue: asyncio.Queue[Polled | None] = asyncio.Queue()
        """Finished polls for the writer; None says the cycle has nothing more for now."""
        self._writer: asyncio.Task[None] | None = None
        self._report = PollReport()
        self._plan: Plan | None = None
        self._abandoned: set[int] = set()
        self._unwritable = False  # the last batch met a state it could not write
        self._strangers: dict[int, int] = {}
        """Claimed feeds this node's plan did not read, and the plan generation that first
        met them (see `poll`)."""
        self.on_queued: Callable[[], None] | None = None
        """Called whenever a written batch queued notifications (the daemon wakes delivery)."""
        self.share: Share | None = None
        """The feeds this process polls when a run is split between two (`shards`)."""
        self.on_polled: Callable[[PollReport], None] | None = None
        """Called with what each written batch (and each cycle's failed discoveries) adds
        to a report, also for polls that land after their cycle returned (the metrics)."""

    async def poll(self, *, force: bool = False) -> PollReport:
        """Poll every feed that is due (every feed with `force`) and queue what is new.

        With `force` (`run --once`) every feed's poll is waited for.
        """
        # Polls that landed after their own cycle returned (stragglers) were counted into
        # this report by the writer: the cycle reports them, so no poll goes uncounted.
        report = self._report
        # Planned once per cycle: each feed is polled once per cycle, so no batch of this
        # cycle changes what another batch needs to know about its subscriptions.
        plan = self._plan = await self.planner.plan(force=force)
        reading = self.planner.generation
        lost = PollReport()
        for failure in plan.failures:
            # A subscription with no feed must not vanish from the summary ("0 feeds
            # polled, 0 failed" while nothing works); it is counted apart from the feeds.
            lost.discovery_failed += 1
            lost.errors.append(FailedFeed(f"subscription {failure.subscription}",
                                          failure.reason))
        report.add(lost)
        if lost.discovery_failed and self.on_polled is not None:
            self.on_polled(lost)
        await self._release_abandoned()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="poll writer")

        async def one(feed: FeedState, news: SiteNews, now: float) -> None:
            def mine() -> bool:
                return self.node.holds(now, self.clock())

            rescan = rescan_now(feed, plan.rescan_every(self.config, feed.id), news, now)
            try:
                if not mine():
                    raise Withdrawn("claim ran out before the fetch began")
                # Asked again once the fetch has its slot: a node paused while its fetches
                # queued must not ask for feeds another node has polled meanwhile.
                polled = await self._retrieve(feed, rescan=rescan,
                                              conditional=not news.unconditional(feed),
                                              expect=plan.expected_kind(feed.id),
                                              proceed=mine)
            except Withdrawn:
                # Paused past the lease: another node polls it now. Given back (not left
                # in flight, or this node would never poll it again).
                report.fenced += 1
                self._inflight.pop(feed.id, None)
                self._abandoned.add(feed.id)
                return
            self._queue.put_nowait(polled)  # unbounded: `put` would only add a coroutine

        # Feeds are claimed (see `store.leases`) a batch at a time, the next batch when the
        # fetches of this cycle run low; each feed at most once per cycle. A feed still in
        # flight from an earlier cycle is not claimed again.
        share = self.share
        unclaimed = dict.fromkeys(i for i in plan.feed_subs if i not in self._inflight
                                  and (share is None or share.polls(i)))
        size = claim_size(self.config, self.store)
        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task[None]] = []
        seen: set[int] = set()
        # What the probes of this cycle's batches said, joined: a site's threads may be
        # claimed in any batch, and each is read as its site's probe asked.
        news = SiteNews()
        strange: list[int] = []
        while unclaimed:
            # Stragglers of earlier cycles count: claiming a full batch each cycle beside
            # them would pile up fetches and parses until they ran out of their budgets.
            if self._running > size // 2:
                if not await self._one_finished(STRAGGLER_WAIT) and not force:
                    break  # only stragglers: leave the rest to other nodes or next cycle
                continue
            active = self._running
            now = self.clock()
            # A daemon cycle claims any due feed (an index walk, however many feeds there
            # are) and gives back what it does not poll; `run --once` names its feeds.
            single = self.store.dialect == "sqlite"  # one node
            batch = force and single
            named: list[int] | None = None
            if batch:
                # Nobody else holds a claim on a SQLite state (one process holds its lock),
                # so the feeds named are the feeds taken: name a batch, not every feed left
                # (10,000 ids in each claim's statement cost more than the claim itself).
                named = list(itertools.islice(unclaimed, size - active))
            elif force or (single and not await self._plan_covers_state(plan, reading)):
                named = list(unclaimed)
            due = await self._db(self.store.claim_feeds, self.node.name, now, named,
                                 size - active, self.node.lease, not force)
            # A daemon's claim that took fewer than it asked for took all that is due: the
            # feeds that come due while this cycle runs are the next tick's. Claimed as they
            # came due, a dozen at a time, they cost a claim each (hundreds a cycle when due
            # times are spread, as after a restart).
            last = not force and len(due) < size - active
            if batch and len(due) < len(named or ()):
                # Not expected; a feed that cannot be claimed is not named again.
                taken = {f.id for f in due}
                for i in named or ():
                    if i not in taken:
                        unclaimed.pop(i, None)
                if not due:
                    continue
            if not due:
                break
            foreign = [f.id for f in due if f.id not in plan.feed_subs]
            again = [f.id for f in due if f.id in seen or f.id in self._inflight]
            # A feed this plan does not read may be a thread another node began following
            # (its posts-feed poll, not ours, added it): held to the end of the claims, given
            # back as it is, and the readers read again next cycle. Only a feed that a plan
            # read since still lacks is put off by an interval (read by no subscription here).
            unread = [i for i in foreign if self._strangers.get(i, reading) < reading]
            for i in foreign:
                if i in unread:
                    del self._strangers[i]
                else:
                    self._strangers.setdefault(i, reading)
                    strange.append(i)
            if unread:
                await self._db(self.store.release_feeds, self.node.name, unread, now)
            if again:
                await self._db(self.store.release_feeds, self.node.name, again)
            due = [f for f in due if f.id in unclaimed]
            if not due:
                break  # only feeds polled this cycle or read by no subscription are due
            for feed in due:
                seen.add(feed.id)
                unclaimed.pop(feed.id, None)
            self.node.feeds.update(feed.id for feed in due)
            news = await probe_sites(due, plan, self.config, store=self.store,
                                     fetcher=self.fetcher, db=self._db, now=now, force=force,
                                     known=news)
            for feed in due:
                task = loop.create_task(one(feed, news, now))  # not asyncio's: one call less
                self._inflight[feed.id] = task
                self._running += 1
                task.add_done_callback(functools.partial(self._landed, feed.id))
                tasks.append(task)
            if last:
                break
        if strange:
            self.planner.threads_moved()
            await self._db(self.store.release_feeds, self.node.name, strange)
        for i in [i for i in self._strangers if i in plan.feed_subs]:
            del self._strangers[i]
        if force:
            await asyncio.gather(*tasks, return_exceptions=True)
        else:
            await wait_while_finishing(tasks, STRAGGLER_WAIT, CYCLE_WAIT)
        # Everything finished so far is written before the cycle reports, at once: the
        # writer need not linger for more polls of this cycle.
        await self._queue.put(None)
        await self._queue.join()
        return self._take_report()

    async def _plan_covers_state(self, plan: Plan, reading: int) -> bool:
        """Whether every feed in the state is one this plan reads (asked once per reading).

        Then a daemon's claim on SQLite need not name its feeds: any due feed is one of
        them, and the claim walks the `next_due` index instead of matching 10,000 ids (15 ms
        of CPU per claim, at every tick). Feeds only this process adds (discoveries,
        followed threads) come with a new reading; a feed no subscription reads any more
        makes it name them, as before."""
        if self._covers[0] != reading:
            count = await self._db(self.store.feed_count)
            self._covers = (reading, count == len(plan.feed_subs))
        return self._covers[1]

    def _take_report(self) -> PollReport:
        report, self._report = self._report, PollReport()
        return report

    async def _one_finished(self, timeout: float) -> bool:
        """Whether a fetch task finished within `timeout` seconds.

        Counted, not `asyncio.wait` over the running tasks: that adds and removes a callback
        on each of up to thousands of tasks every time one finishes."""
        waiter = self._finished = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            return False
        finally:
            self._finished = None
        return True

    def _landed(self, feed_id: int, task: asyncio.Task[None]) -> None:
        """A feed stays in flight until its poll is written (the writer lets it go): a
        straggler done but not yet written is still due in the store, and must not be polled
        again by the next cycle. Only a task that ended without a result is let go here."""
        self._running -= 1
        if self._finished is not None and not self._finished.done():
            self._finished.set_result(None)
        if task.cancelled() or task.exception() is not None:
            self._inflight.pop(feed_id, None)
            self._abandoned.add(feed_id)

    async def _release_abandoned(self) -> None:
        """Give back claims whose poll was not written (a failed write, a lost lease, a
        stop): others may take them at once, and the heartbeat stops renewing them."""
        gone = [i for i in self._abandoned if i not in self._inflight]
        self._abandoned.difference_update(gone)
        self.node.feeds.difference_update(gone)
        if gone:
            await self._db(self.store.release_feeds, self.node.name, gone)

    async def _retrieve(self, feed: Any, *, rescan: bool, conditional: bool,
                        expect: FeedKind | None, proceed: Callable[[], bool]) -> Polled:
        try:
            async with Budget(self.feed_budget) as budget:
                # The budget starts when the request gets its slot and stands still while
                # a later hop waits for one and the body for a parse worker: a large claim
                # or a first run queues them for longer than a budget, and they must not
                # time out there (see `notifier.budget`).
                return await retrieve(self.fetcher, self.parser, feed, rescan=rescan,
                                      conditional=conditional, expect=expect, budget=budget,
                                      proceed=proceed)
        except TimeoutError:
            reason = f"fetch and parse took more than {self.feed_budget:g} s"
            return Polled(feed, FetchResult(url=feed.url, final_url=feed.url, status=None,
                                            error=reason, elapsed=self.feed_budget,
                                            error_kind=FailureKind.TIMEOUT),
                          None, Failure(FailureKind.TIMEOUT, reason), rescan=rescan)

    def reconfigure(self, config: Config) -> None:
        """A reload: plan by `config` from the next cycle on.

        The same poller goes on, so a feed in flight is never polled a second time beside
        it, and its result is written as any late poll is (against the newest plan). The old
        planner's discoveries under way finish on their own; it is closed with the poller.
        """
        self._retired = [p for p in self._retired if p.discovering] + [self.planner]
        self.config = config
        self.planner = Planner(config, self.store, self.fetcher, self._db, self.clock,
                               self.node.name)
        self.feed_budget = feed_budget(config)

    async def close(self) -> None:
        """Stop feeds still in flight and the writer: what they had not written is not lost,
        it is polled again next run."""
        for task in [*self._inflight.values(), *([self._writer] if self._writer else [])]:
            task.cancel()
        await asyncio.gather(*self._inflight.values(), return_exceptions=True)
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        self._abandoned.update(self.node.feeds)
        self._inflight.clear()
        await self._release_abandoned()
        for planner in [*self._retired, self.planner]:
            await planner.close()

    async def _write(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            if first is None:  # the cycle ended while nothing was waiting to be written
                self._queue.task_done()
                continue
            batch = [first]
            ends = 0
            # Linger briefly so that a batch, and so a transaction, covers many feeds; not
            # past the end of the cycle (nothing more is coming then). One deadline for the
            # batch, not `wait_for` per poll (a task and a timer each).
            # A batch with news (a changed feed) lingers less: its notifications, and the
            # channels sending them, wait for its transaction.
            news = first.parsed is not None
            try:
                linger = NEWS_LINGER if news else BATCH_LINGER
                async with asyncio.timeout_at(loop.time() + linger) as lingering:
                    while len(batch) < WRITE_BATCH:
                        more = (self._queue.get_nowait() if self._queue.qsize()
                                else await self._queue.get())
                        if more is None:
                            ends += 1
                            break
                        batch.append(more)
                        if not news and more.parsed is not None:
                            news = True
                            soon = loop.time() + NEWS_LINGER
                            if (lingering.when() or soon) > soon:
                                lingering.reschedule(soon)
            except TimeoutError:
                pass
            written = self._report.written
            try:
                assert self._plan is not None
                await self._write_batch(batch, self._plan, self._report)
            except Exception as exc:
                reason = unwritable(exc)
                if reason is None:
                    log.exception("writing %d polls failed; they are polled again", len(batch))
                else:  # disk full, read-only: one ERROR, no traceback; the daemon backs off
                    log.log(logging.DEBUG if self._unwritable else logging.ERROR,
                            "writing %d polls failed, the state cannot be written (%s); "
                            "they are polled again", len(batch), reason)
                    self._unwritable = True
            else:
                self._unwritable = False
            finally:
                for polled in batch:
                    self._inflight.pop(polled.feed.id, None)
                    self.node.feeds.discard(polled.feed.id)
                    if polled.feed.id not in written:
                        self._abandoned.add(polled.feed.id)
                    self._queue.task_done()
                for _ in range(ends):
                    self._queue.task_done()

    async def _write_batch(self, batch: list[Polled], plan: Plan, report: PollReport) -> None:
        snapshots = await complete_batch(batch, plan, config=self.config, store=self.store,
                                         fetcher=self.fetcher, parser=self.parser, db=self._db)
        now = self.clock()
        outcomes = [self._decide(s, plan, now) for s in snapshots]
        records = [storable_record(o.record) for o in outcomes]
        tokens = {s.polled.feed.id: s.polled.feed.lease_token for s in snapshots}
        try:
            queued, refused = await self._db(self.store.record_fenced, records,
                                             self.node.name, tokens)
            if refused:
                # Paused past the lease (or cut off): another node has these feeds now and
                # writes their polls; ours are stale and dropped whole, notifications too.
                log.warning("lost the lease on %d feed(s) before writing their polls (this "
                            "node was paused or slow for more than %.0f s); their results "
                            "are dropped, another node polls them", len(refused),
                            self.node.lease)
                report.fenced += len(refused)
                lost = set(refused)
                kept = [i for i, o in enumerate(outcomes) if o.record.feed_id not in lost]
                snapshots = [snapshots[i] for i in kept]
                outcomes = [outcomes[i] for i in kept]
                records = [records[i] for i in kept]
        except Exception as exc:
            # One poll the database still refuses must not lose the batch's others: each
            # is written on its own, and the refused one is recorded as a failed poll.
            log.error("writing %d polls together failed (%s); writing them one by one",
                      len(records), db_reason(exc))
            queued, records = await self._write_one_by_one(records, tokens)
            outcomes = [replace(o, record=r, decision=o.decision if r.failure is None else None)
                        for o, r in zip(outcomes, records, strict=True)]
            snapshots = [replace(s, polled=replace(s.polled, failure=r.failure))
                         if r.failure and not s.polled.failure else s
                         for s, r in zip(snapshots, records, strict=True)]
        report.written.update(r.feed_id for r in records)
        if queued and self.on_queued is not None:
            self.on_queued()  # also for polls that finish after their cycle returned
        if any(r.threads or r.settle_thread for r in records):
            self.planner.threads_moved()
        written = PollReport()
        report_batch([s.polled for s in snapshots], outcomes, queued, written)
        report.add(written)
        if self.on_polled is not None:
            self.on_polled(written)


    def _decide(self, snapshot: Snapshot, plan: Plan, now: float) -> Outcome:
        """`decide_poll`, and a failed poll instead of a failed batch if it raises (a bug
        that one feed's odd content found: logged with its traceback, the rest goes on)."""
        try:
            return decide_poll(snapshot, plan, self.config, now=now, rng=self.rng)
        except Exception as exc:
            feed = snapshot.polled.feed
            log.exception("feed %s: deciding what is new failed", redact.url(feed.url))
            reason = f"notifier failed on this feed's content ({type(exc).__name__})"
            failed = replace(snapshot.polled, parsed=None,
                             failure=Failure(FailureKind.PARSER, reason))
            return decide_poll(replace(snapshot, polled=failed), plan, self.config, now=now,
                               rng=self.rng)

    async def _write_one_by_one(self, records: list[PollRecord], tokens: dict[int, int]
                                ) -> tuple[int, list[PollRecord]]:
        queued = 0
        written = []
        for record in records:
            try:
                count, _ = await self._db(self.store.record_fenced, [record],
                                          self.node.name, tokens)
                queued += count
            except Exception as exc:
                reason = f"the state refused this poll's entries: {db_reason(exc)}"
                record = PollRecord(feed_id=record.feed_id, polled_at=record.polled_at,
                                    next_due=record.next_due, status=record.status,
                                    failure=Failure(FailureKind.STATE, reason))
                try:
                    await self._db(self.store.record_fenced, [record], self.node.name, tokens)
                except Exception as again:
                    log.error("feed %d: even its failure could not be stored: %s",
                              record.feed_id, db_reason(again))
            written.append(record)
        return queued, written


def storable_record(record: PollRecord) -> PollRecord:
    """The record with every text a feed supplied made storable (`textsafety.storable`)."""
    if not record.new_entries and not record.changed_entries and (
            record.title is None or storable(record.title) == record.title):
        return record  # most polls of a cycle (a 304): nothing to copy
    new = tuple(_storable_entry(e) for e in record.new_entries)
    changed = tuple(_storable_entry(e) for e in record.changed_entries)
    title = storable(record.title) if record.title is not None else None
    return replace(record, new_entries=new, changed_entries=changed, title=title)


def _storable_entry(entry: Entry) -> Entry:
    changes: dict[str, Any] = {f.name: storable(value) for f in fields(entry)
               if isinstance(value := getattr(entry, f.name), str) and storable(value) != value}
    return replace(entry, **changes) if changes else entry


def feed_budget(config: Config) -> float:
    """Seconds one feed's poll may take: its fetch (all hops), the parse, and a margin for
    the follow-up requests of a rescan."""
    return config.http.timeout + PARSE_TIME_LIMIT + 10.0
