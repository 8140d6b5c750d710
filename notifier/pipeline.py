"""One polling cycle and one delivery cycle, stage by stage.

    config -> discover -> due feeds -> fetch -> parse -> stored keys -> decide -> match
           -> record entries + queue notices (one transaction per batch)
    outbox -> claim due -> render -> send -> mark sent / schedule retry / dead-letter

Polling and delivery are separate so a slow or dead channel never delays detection: polling
only queues, delivery only drains. All SQL runs on one worker thread (`_db`), parsing runs in
a process pool, and fetching is plain asyncio with per-host limits, so one process handles
thousands of feeds without a thread or process per feed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import logging
import multiprocessing
import os
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from notifier import redact
from notifier.channels.base import Channel, DeliveryError, PermanentFailure, TemporaryFailure
from notifier.config import Config, Subscription
from notifier.diff import SubscriptionView, decide, validators_trustworthy
from notifier.discover import DiscoveryError, discover
from notifier.fetch import Fetcher
from notifier.match import match
from notifier.models import Entry, FetchResult, Notice, ParsedFeed
from notifier.outbox import after_failure
from notifier.parse import ParseError, parse_feed
from notifier.schedule import next_poll
from notifier.store import FeedState, OutboxItem, PollRecord, Store

log = logging.getLogger("notifier")
T = TypeVar("T")

WRITE_BATCH = 200
"""Polls written per transaction: large enough to amortise commits, small enough to bound
what a crash can make the next run fetch again."""
DELIVERY_BATCH = 50


@dataclass
class PollReport:
    feeds_polled: int = 0
    feeds_failed: int = 0
    not_modified: int = 0
    new_entries: int = 0
    queued: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Polled:
    feed: FeedState
    fetch: FetchResult
    parsed: ParsedFeed | None
    error: str | None


def _parse_job(body: bytes, url: str, headers: dict[str, str]) -> ParsedFeed | str:
    """Runs in a worker process: returns the parsed feed or the reason it is not one."""
    try:
        return parse_feed(body, url, headers)
    except ParseError as exc:
        return str(exc)
    except Exception as exc:
        return f"parser failed: {type(exc).__name__}: {exc}"


def make_parse_pool(workers: int | None = None) -> concurrent.futures.Executor:
    """Processes when there are cores to spare; feedparser holds the GIL while it works."""
    count = workers if workers is not None else min(os.cpu_count() or 1, 4)
    if count <= 1:
        return concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="parse")
    return concurrent.futures.ProcessPoolExecutor(
        count, mp_context=multiprocessing.get_context("spawn"))


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Pipeline:
    def __init__(self, config: Config, store: Store, fetcher: Fetcher,
                 channels: dict[str, Channel], *, parse_pool: concurrent.futures.Executor,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None
                 ) -> None:
        self.config = config
        self.store = store
        self.fetcher = fetcher
        self.channels = channels
        self.clock = clock
        self.rng = rng or random.Random()
        self._parse_pool = parse_pool
        self._db_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="store")
        self._subs = {s.name: s for s in config.subscriptions}
        self._feed_subs: dict[int, list[Subscription]] = {}
        self._discovery_retry: dict[str, float] = {}
        self._disabled: dict[str, str] = {}

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db_pool, fn, *args)

    def close(self) -> None:
        self._db_pool.shutdown(wait=True)

    async def start(self) -> None:
        """Open the state and forget delivery claims a killed process left behind."""
        await self._db(self.store.migrate)
        await self._db(self.store.release_claims)
        self._disabled = await self._db(self.store.disabled_channels)

    # --- polling ----------------------------------------------------------------------

    async def poll(self, *, force: bool = False) -> PollReport:
        """Poll every feed that is due (every feed with `force`) and queue what is new."""
        report = PollReport()
        await self._resolve_subscriptions(report, force=force)
        now = self.clock()
        feed_ids = list(self._feed_subs)
        if force:
            due = list((await self._db(self.store.feeds_by_id, feed_ids)).values())
        else:
            due = await self._db(self.store.due_feeds, now, feed_ids, 10 * WRITE_BATCH)
        if not due:
            return report
        queue: asyncio.Queue[_Polled | None] = asyncio.Queue()
        writer = asyncio.create_task(self._write_results(queue, report))
        try:
            await asyncio.gather(*(self._poll_one(feed, queue) for feed in due))
        finally:
            await queue.put(None)
            await writer
        return report

    async def _resolve_subscriptions(self, report: PollReport, *, force: bool) -> None:
        """Turn what each subscription names (site, page, feed) into a feed to poll."""
        states = await self._db(self.store.subscription_states)
        now = self.clock()
        pending: list[Subscription] = []
        for sub in self.config.subscriptions:
            state = states.get(sub.name)
            fresh = (state is not None and state.feed_id is not None
                     and state.source_url == sub.url and state.watch == sub.watch)
            if not fresh and (force or self._discovery_retry.get(sub.name, 0) <= now):
                pending.append(sub)
        results = await asyncio.gather(*(discover(self.fetcher, s.url, s.watch)
                                         for s in pending), return_exceptions=True)
        for sub, result in zip(pending, results, strict=True):
            if isinstance(result, DiscoveryError):
                message = f"subscription {sub.name}: {result}"
                log.warning("discovery failed: %s", message)
                report.errors.append(message)
                self._discovery_retry[sub.name] = now + self.config.interval(sub)
                await self._db(self.store.record_discovery_error, sub.name, sub.url,
                               sub.watch, str(result), now)
            elif isinstance(result, BaseException):
                raise result
            else:
                log.info("subscription %s: polling %s", sub.name,
                         redact.feed_url(result.feed_url))
                await self._db(self.store.save_discovery, sub.name, sub.url, sub.watch,
                               result.feed_url, result.api_root, self.config.interval(sub), now)
        if pending or not self._feed_subs:
            states = await self._db(self.store.subscription_states)
            feed_subs: dict[int, list[Subscription]] = defaultdict(list)
            for sub in self.config.subscriptions:
                state = states.get(sub.name)
                if state is not None and state.feed_id is not None and state.source_url == sub.url:
                    feed_subs[state.feed_id].append(sub)
            self._feed_subs = dict(feed_subs)
            intervals = {fid: min(self.config.interval(s) for s in subs)
                         for fid, subs in self._feed_subs.items()}
            await self._db(self.store.set_feed_intervals, intervals)

    async def _poll_one(self, feed: FeedState, queue: asyncio.Queue[_Polled | None]) -> None:
        fetched = await self.fetcher.fetch(feed.url, etag=feed.etag,
                                           last_modified=feed.last_modified)
        parsed: ParsedFeed | None = None
        error = fetched.error
        if fetched.ok and fetched.body is not None:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(
                self._parse_pool, _parse_job, fetched.body, fetched.final_url, fetched.headers)
            if isinstance(result, str):
                error = result
            else:
                parsed = result
        await queue.put(_Polled(feed, fetched, parsed, error))

    async def _write_results(self, queue: asyncio.Queue[_Polled | None],
                             report: PollReport) -> None:
        done = False
        while not done:
            item = await queue.get()
            batch: list[_Polled] = []
            if item is None:
                break
            batch.append(item)
            while len(batch) < WRITE_BATCH and not queue.empty():
                more = queue.get_nowait()
                if more is None:
                    done = True
                    break
                batch.append(more)
            await self._write_batch(batch, report)

    async def _write_batch(self, batch: Sequence[_Polled], report: PollReport) -> None:
        changed = [p for p in batch if p.parsed is not None]
        wanted = {p.feed.id: [e.key for e in p.parsed.entries] for p in changed if p.parsed}
        seen = await self._db(self.store.seen_entries, wanted) if wanted else {}
        had_entries = await self._db(self.store.has_entries, list(wanted)) if wanted else set()
        states = await self._db(self.store.subscription_states)
        now = self.clock()
        records: list[PollRecord] = []
        decisions = []
        for polled in batch:
            subs = self._feed_subs.get(polled.feed.id, [])
            record, decision = self._record_for(polled, subs, seen.get(polled.feed.id, {}),
                                                polled.feed.id in had_entries, states, now)
            records.append(record)
            decisions.append((polled, record, decision))
        parent_keys = {e.parent_key for _, _, d in decisions if d
                       for entries in d.candidates.values() for e in entries if e.parent_key}
        known = await self._db(self.store.entries_by_key, parent_keys) if parent_keys else {}
        for polled, record, decision in decisions:
            if decision is None or polled.parsed is None:
                continue
            batch_known = dict(known)
            batch_known.update({e.key: e for e in polled.parsed.entries})
            record.notices = match(decision.candidates, self._subs, batch_known)
        queued = await self._db(self.store.record_polls, records)
        report.queued += queued
        for polled, record, decision in decisions:
            report.feeds_polled += 1
            new = len(decision.new_entries) if decision else 0
            report.new_entries += new
            url = redact.feed_url(polled.feed.url)
            if polled.error:
                report.feeds_failed += 1
                report.errors.append(f"{url}: {polled.error}")
                log.warning("poll %s failed: %s (%.2fs)", url, polled.error,
                            polled.fetch.elapsed)
            else:
                if polled.fetch.not_modified:
                    report.not_modified += 1
                log.info("poll %s %s new=%d queued=%d%s (%.2fs)", url, polled.fetch.status,
                         new, len(record.notices),
                         " baseline" if decision and decision.baselines else "",
                         polled.fetch.elapsed)
            if polled.parsed and polled.parsed.warning:
                log.debug("feed %s parsed leniently: %s", url, polled.parsed.warning)
            if record.new_url:
                log.info("feed %s moved permanently to %s", url, redact.feed_url(record.new_url))

    def _record_for(self, polled: _Polled, subs: Sequence[Subscription], seen: dict[str, str],
                    had_entries: bool, states: dict[str, Any], now: float
                    ) -> tuple[PollRecord, Any]:
        feed, fetched = polled.feed, polled.fetch
        jitter = self.config.defaults.jitter
        errors = feed.error_count + 1 if polled.error else 0
        record = PollRecord(
            feed_id=feed.id, polled_at=now, status=fetched.status, error=polled.error,
            next_due=next_poll(now, feed.interval, jitter, errors=errors,
                               retry_after=fetched.retry_after, rng=self.rng),
            etag=fetched.etag, last_modified=fetched.last_modified,
            new_url=fetched.permanent_url if fetched.permanent_url != feed.url else None)
        if polled.error or polled.parsed is None:
            # A 304 still completes a subscription's baseline: nothing it has not seen.
            if fetched.not_modified:
                record.baselines = [s.name for s in subs
                                    if states.get(s.name) and states[s.name].baseline_at is None
                                    and had_entries]
            return record, None
        views = [SubscriptionView(
            name=s.name, baselined=bool(states.get(s.name) and states[s.name].baseline_at),
            backfill=self.config.backfill(s)) for s in subs]
        decision = decide(polled.parsed.entries, seen, views, feed_had_entries=had_entries)
        if not validators_trustworthy(polled.parsed.kind, _http_date(fetched.last_modified),
                                      polled.parsed.entries):
            record.etag = record.last_modified = None
        record.title = polled.parsed.title
        record.new_entries = decision.new_entries
        record.changed_entries = decision.changed_entries
        record.baselines = decision.baselines
        return record, decision

    # --- delivery ---------------------------------------------------------------------

    async def deliver(self, *, limit: int = 1000) -> DeliveryReport:
        """Send queued notifications whose time has come, at most `limit` of them."""
        report = DeliveryReport()
        remaining = limit
        while remaining > 0:
            usable = [n for n in self.channels if n not in self._disabled]
            items = await self._db(self.store.claim_due, self.clock(),
                                   min(DELIVERY_BATCH, remaining), 300.0, usable)
            if not items:
                break
            remaining -= len(items)
            await self._deliver_items(items, report)
        return report

    async def _deliver_items(self, items: Sequence[OutboxItem], report: DeliveryReport) -> None:
        parents = await self._db(self.store.entries_by_key,
                                 {i.entry.parent_key for i in items if i.entry.parent_key})
        by_channel: dict[str, list[OutboxItem]] = defaultdict(list)
        for item in items:
            by_channel[item.channel].append(item)
        await asyncio.gather(*(self._deliver_channel(name, group, parents, report)
                               for name, group in by_channel.items()))

    async def _deliver_channel(self, name: str, items: Sequence[OutboxItem],
                               parents: dict[str, Entry], report: DeliveryReport) -> None:
        channel = self.channels[name]
        notices = {item.notification_id: (item, self._notice(item, parents)) for item in items}
        attempted: set[int] = set()
        try:
            async for result in channel.send_batch([n for _, n in notices.values()]):
                item, _ = notices[result.notification_id]
                attempted.add(item.id)
                await self._settle(channel, item, result.error, report)
        finally:
            leftover = [i.id for i, _ in notices.values() if i.id not in attempted]
            if leftover:
                await self._db(self.store.release, leftover)

    async def _settle(self, channel: Channel, item: OutboxItem, error: DeliveryError | None,
                      report: DeliveryReport) -> None:
        now = self.clock()
        if error is None:
            await self._db(self.store.mark_sent, item.id, now)
            report.sent += 1
            log.info("sent %s to %s (%s)", item.entry.link or item.entry.key, channel.name,
                     item.subscription)
            return
        permanent = isinstance(error, PermanentFailure)
        retry_after = error.retry_after if isinstance(error, TemporaryFailure) else None
        verdict = after_failure(channel.retry_policy, attempts=item.attempts + 1,
                                created=item.created, now=now, retry_after=retry_after,
                                permanent=permanent, rng=self.rng)
        message = f"{error} ({verdict.reason})"
        await self._db(self.store.mark_failed, item.id, message, verdict.retry_at, now)
        report.errors.append(f"channel {channel.name}: {message}")
        if verdict.retry_at is None:
            report.dead += 1
        else:
            report.failed += 1
        log.warning("delivery to %s failed: %s", channel.name, message)
        if isinstance(error, PermanentFailure) and error.disable:
            self._disabled[channel.name] = str(error)
            await self._db(self.store.disable_channel, channel.name, str(error), now)
            log.error("channel %s disabled: %s; fix it, then run `notifier retry --channel %s`",
                      channel.name, error, channel.name)

    def _notice(self, item: OutboxItem, parents: dict[str, Entry]) -> Notice:
        entry = item.entry
        parent = parents.get(entry.parent_key) if entry.parent_key else None
        return Notice(
            notification_id=item.notification_id, subscription=item.subscription,
            channel=item.channel, entry=entry, feed_title=item.feed_title,
            feed_url=item.feed_url,
            is_reply=bool(entry.parent_key) and entry.parent_key != entry.post_key,
            parent=parent, missing=item.missing)
