"""One polling cycle, stage by stage; the delivery cycle is `notifier.deliver`.

    config -> discover -> due feeds -> fetch -> parse -> stored keys
           -> fill gaps / rescan (backfill; threads joins a site's recent posts) -> decide
           -> parents of replies (store, else REST) -> match
           -> record entries + queue notices (one transaction per batch)

Polling and delivery are separate so a slow or dead channel never delays detection: polling
only queues, delivery only drains. All SQL runs on one worker thread (`_db`, shared with
delivery), parsing runs in a process pool, and fetching is plain asyncio with per-host
limits, so one process handles thousands of feeds without a thread or process per feed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import email.utils
import hashlib
import logging
import multiprocessing
import os
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from notifier import backfill, redact, threads
from notifier.config import Config, Subscription
from notifier.delivery.channel import Channel
from notifier.delivery.cycle import Delivery, DeliveryReport
from notifier.diff import SubscriptionView, decide, validators_trustworthy
from notifier.discover import DiscoveryError, discover
from notifier.fetch import Fetcher
from notifier.match import match
from notifier.models import Entry, FetchResult, ParsedFeed
from notifier.parse import ParseError, parse_feed
from notifier.schedule import next_poll
from notifier.store import (
    FeedState,
    PollRecord,
    QueuedNotice,
    Store,
    SubscriptionState,
    ThreadUpdate,
)

log = logging.getLogger("notifier")
T = TypeVar("T")

WRITE_BATCH = 200
"""Polls written per transaction: large enough to amortise commits, small enough to bound
what a crash can make the next run fetch again."""
BATCH_LINGER = 0.25
"""Seconds the writer waits for more finished polls before writing a smaller batch."""
PARENT_LEVELS = 5
"""Ancestors fetched for `include_subthread`."""


@dataclass
class PollReport:
    feeds_polled: int = 0
    feeds_failed: int = 0
    not_modified: int = 0
    new_entries: int = 0
    queued: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Polled:
    feed: FeedState
    fetch: FetchResult
    parsed: ParsedFeed | None
    error: str | None
    body_hash: str | None = None
    unchanged: bool = False  # 200 with the very body parsed last time
    rescan: bool = False  # asked without validators; REST listing too (late approvals)
    missing: int = 0  # a gap no backfill could fill: at least this many may be missing
    quiet_keys: frozenset[str] = frozenset()  # found by a first REST listing: stored, not told
    listing_failed: bool = False  # the REST listing failed for now: keep its rescan due


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
        self.delivery = Delivery(config, store, channels, self._db, clock=clock, rng=self.rng)
        self._states: dict[str, SubscriptionState] = {}
        self._quiet: dict[int, set[str]] = {}
        """Thread feeds whose first poll is part of their subscription's baseline."""
        self._threads_changed = any(s.watch == "threads" for s in config.subscriptions)
        """A posts feed of `watch: threads` was read: which feeds to poll may have changed."""

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db_pool, fn, *args)

    def close(self) -> None:
        self._db_pool.shutdown(wait=True)

    async def start(self) -> None:
        """Open the state and forget delivery claims a killed process left behind."""
        await self._db(self.store.migrate)
        await self._db(self.store.release_claims)

    # --- polling ----------------------------------------------------------------------

    async def poll(self, *, force: bool = False) -> PollReport:
        """Poll every feed that is due (every feed with `force`) and queue what is new."""
        report = PollReport()
        # Read once per cycle: each feed is polled once per cycle, so no batch of this cycle
        # changes what another batch needs to know about its subscriptions.
        self._states = await self._resolve_subscriptions(report, force=force)
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

    async def _resolve_subscriptions(self, report: PollReport, *, force: bool
                                     ) -> dict[str, SubscriptionState]:
        """Turn what each subscription names (site, page, feed) into a feed to poll.

        Returns the subscriptions' stored state as it stands afterwards.
        """
        states = await self._db(self.store.subscription_states)
        now = self.clock()
        pending: list[Subscription] = []
        for sub in self.config.subscriptions:
            state = states.get(sub.name)
            fresh = (state is not None and state.feed_id is not None
                     and state.source_url == sub.url and state.watch == sub.watch)
            if not fresh and (force or self._discovery_retry.get(sub.name, 0) <= now):
                pending.append(sub)
        results = await asyncio.gather(
            *(discover(self.fetcher, s.url, "posts" if s.watch == "threads" else s.watch)
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
        if pending or not self._feed_subs or self._threads_changed:
            self._threads_changed = False
            states = await self._db(self.store.subscription_states)
            feed_subs: dict[int, list[Subscription]] = defaultdict(list)
            for sub in self.config.subscriptions:
                state = states.get(sub.name)
                if state is not None and state.feed_id is not None and state.source_url == sub.url:
                    feed_subs[state.feed_id].append(sub)
            # `watch: threads`: each followed post's comment feed is read for that subscription.
            self._quiet = {}
            for feed_id, followers in (await self._db(self.store.thread_feeds)).items():
                for name, quiet in followers.items():
                    follower = self._subs.get(name)
                    if follower is None or follower.watch != "threads" \
                            or follower in feed_subs[feed_id]:
                        continue
                    feed_subs[feed_id].append(follower)
                    if quiet:
                        self._quiet.setdefault(feed_id, set()).add(name)
            self._feed_subs = dict(feed_subs)
            intervals = {fid: min(self.config.interval(s) for s in subs)
                         for fid, subs in self._feed_subs.items()}
            await self._db(self.store.set_feed_intervals, intervals)
        return states

    def _rescan_every(self, feed_id: int) -> float | None:
        """The shortest `rescan` of the subscriptions reading a feed; None for posts only."""
        subs = [s for s in self._feed_subs.get(feed_id, []) if s.watch != "posts"]
        return min((self.config.rescan(s) for s in subs), default=None)

    async def _poll_one(self, feed: FeedState, queue: asyncio.Queue[_Polled | None]) -> None:
        # A rescan asks without validators: WordPress's are site-wide and a comment approved
        # late at an old date changes neither, so only a full answer can show it.
        rescan = (feed.rescan_due is not None and feed.rescan_due <= self.clock()
                  and self._rescan_every(feed.id) is not None)
        fetched = await self.fetcher.fetch(feed.url, etag=None if rescan else feed.etag,
                                           last_modified=None if rescan else feed.last_modified)
        parsed: ParsedFeed | None = None
        error = fetched.error
        digest = hashlib.sha256(fetched.body).hexdigest() if fetched.body is not None else None
        if fetched.ok and digest is not None and digest == feed.body_hash:
            await queue.put(_Polled(feed, fetched, None, None, digest, unchanged=True,
                                    rescan=rescan))
            return
        if fetched.ok and fetched.body is not None:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(
                self._parse_pool, _parse_job, fetched.body, fetched.final_url, fetched.headers)
            if isinstance(result, str):
                error = result
            else:
                parsed = result
        await queue.put(_Polled(feed, fetched, parsed, error, digest, rescan=rescan))

    async def _write_results(self, queue: asyncio.Queue[_Polled | None],
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
            await self._write_batch(batch, report)

    async def _write_batch(self, batch: Sequence[_Polled], report: PollReport) -> None:
        changed = [p for p in batch if p.parsed is not None]
        wanted = {p.feed.id: [e.key for e in p.parsed.entries] for p in changed if p.parsed}
        seen = await self._db(self.store.seen_entries, wanted) if wanted else {}
        had_entries = await self._db(self.store.has_entries, list(wanted)) if wanted else set()
        batch = await self._complete_threads(batch, seen, had_entries)
        states = self._states
        now = self.clock()
        records: list[PollRecord] = []
        decisions = []
        for polled in batch:
            subs = self._feed_subs.get(polled.feed.id, [])
            record, decision = self._record_for(polled, subs, seen.get(polled.feed.id, {}),
                                                polled.feed.id in had_entries, states, now)
            records.append(record)
            decisions.append((polled, record, decision))
        known, fetched_parents = await self._known_parents(decisions)
        for polled, record, decision in decisions:
            if decision is None or polled.parsed is None:
                continue
            batch_known = dict(known)
            batch_known.update({e.key: e for e in polled.parsed.entries})
            oldest_new = next(iter(decision.new_entries), None)
            missing = {oldest_new.key: polled.missing} if oldest_new and polled.missing else {}
            record.notices = [*match(decision.candidates, self._subs, batch_known, missing),
                              *await self._edit_notices(polled, decision, batch_known)]
            parents = fetched_parents.get(polled.feed.id, [])
            if parents:
                # Stored so the delivery can quote them; never offered: they are old.
                stored = {e.key for e in record.new_entries}
                record.new_entries = [*record.new_entries,
                                      *(e for e in parents if e.key not in stored)]
        queued = await self._db(self.store.record_polls, records)
        report.queued += queued
        self._threads_changed |= any(r.threads or r.settle_thread for r in records)
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
                if polled.fetch.not_modified or polled.unchanged:
                    report.not_modified += 1
                status = f"{polled.fetch.status}{' unchanged' if polled.unchanged else ''}"
                log.info("poll %s %s new=%d queued=%d%s (%.2fs)", url, status,
                         new, len(record.notices),
                         " baseline" if decision and decision.baselines else "",
                         polled.fetch.elapsed)
            if polled.parsed and polled.parsed.warning:
                log.debug("feed %s parsed leniently: %s", url, polled.parsed.warning)
            if record.new_url:
                log.info("feed %s moved permanently to %s", url, redact.feed_url(record.new_url))

    async def _complete_threads(self, batch: Sequence[_Polled], seen: dict[int, dict[str, str]],
                                had_entries: set[int]) -> list[_Polled]:
        """Backfill gaps and run due rescans (see `backfill`), adding what they find to polls.

        Runs in the writer, before the batch's transaction: backfills are rare (a gap, or a
        rescan every few hours) and bounded in pages and time, and the entries they find
        must be decided together with the window that revealed the gap.
        """
        jobs: dict[int, Any] = {}
        # Polls whose first REST listing met a feed stored before (by an older notifier):
        # what it finds beyond the window is old, not new.
        quiet: set[int] = set()
        for index, polled in enumerate(batch):
            if polled.error or (polled.parsed is None and not polled.rescan):
                continue
            if polled.fetch.not_modified:
                continue
            feed = polled.feed
            if self._rescan_every(feed.id) is None:
                continue
            post_id = feed.post_id or backfill.wordpress_post_id(polled.fetch.headers,
                                                                  polled.fetch.final_url)
            # The first poll of a WordPress post's feed lists its comments through REST once,
            # so that later rescans tell late approvals from comments that were always there.
            first_listing = feed.rescan_due is None and bool(feed.api_root and post_id)
            post_guid = ""
            if polled.rescan and feed.api_root and post_id:
                keys = await self._db(self.store.comment_keys, feed.id)
                post_guid = backfill.post_guid_of([Entry(key=k, kind="comment") for k in keys])
            since = None
            if polled.parsed is not None and backfill.gap_suspected(
                    polled.parsed.entries, seen.get(feed.id, {}),
                    had_entries=feed.id in had_entries):
                newest = await self._db(self.store.newest_entry_time, feed.id)
                since = datetime.fromtimestamp(newest, UTC) if newest is not None else None
            jobs[index] = backfill.complete(
                self.fetcher, self._parse_async, parsed=polled.parsed, api_root=feed.api_root,
                post_id=post_id, post_guid=post_guid, seen=seen.get(feed.id, {}),
                had_entries=feed.id in had_entries, stored=feed.entries_seen,
                rescan=polled.rescan or first_listing, since=since)
            if first_listing and feed.id in had_entries and polled.parsed is not None \
                    and not backfill.gap_suspected(polled.parsed.entries, seen.get(feed.id, {}),
                                                   had_entries=True):
                quiet.add(index)
        if not jobs:
            return list(batch)
        results = await asyncio.gather(*jobs.values(), return_exceptions=True)
        out = list(batch)
        added: dict[int, list[str]] = {}
        for index, result in zip(jobs, results, strict=True):
            polled = batch[index]
            url = redact.feed_url(polled.feed.url)
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                log.warning("follow-up of %s failed: %s: %s", url, type(result).__name__,
                            result)
                continue
            if result.note:
                log.info("poll %s %s", url, result.note)
            if result.listing_failed:
                out[index] = dataclasses.replace(polled, listing_failed=True)
            if not result.entries and not result.missing:
                continue
            window = polled.parsed.entries if polled.parsed else ()
            in_window = {e.key for e in window}
            extra = tuple(e for e in result.entries if e.key not in in_window)
            parsed = polled.parsed or ParsedFeed(title=polled.feed.title, link="",
                                                 kind="comments", entries=())
            out[index] = dataclasses.replace(
                out[index], parsed=dataclasses.replace(parsed, entries=(*window, *extra)),
                missing=result.missing,
                quiet_keys=frozenset(e.key for e in extra) if index in quiet else frozenset())
            added[polled.feed.id] = [e.key for e in extra]
        if added:
            more = await self._db(self.store.seen_entries, added)
            for feed_id, found in more.items():
                seen.setdefault(feed_id, {}).update(found)
        return out

    async def _parse_async(self, body: bytes, url: str, headers: dict[str, str]
                           ) -> ParsedFeed | str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._parse_pool, _parse_job, body, url, headers)

    async def _known_parents(self, decisions: Sequence[tuple[_Polled, PollRecord, Any]]
                             ) -> tuple[dict[str, Entry], dict[int, list[Entry]]]:
        """The comments that offered replies answer, from the batch, the store or REST.

        A reply is matched (`replies_to`) and shown with a quote of its parent; when the
        parent is in neither the window nor the store (it scrolled out before this feed was
        first polled) it is fetched from WordPress's REST API, and with `include_subthread`
        its ancestors too, a few levels up. Returns the parents by key, and per feed those
        that were fetched (to be stored with the poll).
        """
        in_batch: dict[str, Entry] = {}
        wanted: dict[str, int] = {}
        for polled, _, decision in decisions:
            if decision is None or polled.parsed is None:
                continue
            in_batch.update({e.key: e for e in polled.parsed.entries})
            for offered in decision.candidates.values():
                for entry in offered:
                    if entry.parent_key and entry.parent_key != entry.post_key:
                        wanted.setdefault(entry.parent_key, polled.feed.id)
        known = await self._db(self.store.entries_by_key, set(wanted)) if wanted else {}
        known.update({k: e for k, e in in_batch.items() if k in wanted})
        fetched: dict[int, list[Entry]] = defaultdict(list)
        feeds = {p.feed.id: p.feed for p, _, _ in decisions}
        deep = any(s.include_subthread for s in self._subs.values())
        for _ in range(PARENT_LEVELS if deep else 1):
            todo = {key: feeds[feed_id].api_root for key, feed_id in wanted.items()
                    if key not in known and key not in in_batch}
            found = await backfill.wordpress_parents(self.fetcher, todo)
            if not found:
                break
            for key, parent in found.items():
                known[key] = parent
                fetched[wanted[key]].append(parent)
            wanted = {p.parent_key: wanted[k] for k, p in found.items()
                      if p.parent_key and p.parent_key not in known}
            if wanted:
                known.update(await self._db(self.store.entries_by_key, set(wanted)))
        return known, dict(fetched)

    async def _edit_notices(self, polled: _Polled, decision: Any,
                            known: dict[str, Entry]) -> list[QueuedNotice]:
        """`notify_edits`: one notice per edit, numbered by the entry's stored revision."""
        editors = {s.name: decision.changed_entries for s in self._feed_subs.get(
            polled.feed.id, []) if s.notify_edits and s.name not in decision.baselines}
        if not decision.changed_entries or not editors:
            return []
        stored = await self._db(self.store.entry_revisions, polled.feed.id,
                                [e.key for e in decision.changed_entries])
        revisions = {key: count + 1 for key, count in stored.items()}
        return match(editors, self._subs, known, revisions=revisions)

    def _thread_updates(self, parsed: ParsedFeed, subs: Sequence[Subscription],
                        states: dict[str, Any], now: float) -> list[ThreadUpdate]:
        """For `watch: threads` subscriptions of a posts feed: the comment feeds to follow."""
        if parsed.kind != "posts":
            return []
        updates = []
        for sub in subs:
            if sub.watch != "threads" or self._subs.get(sub.name) is not sub:
                continue
            max_age = self.config.threads_max_age(sub)
            links = threads.followed_threads(sub.name, parsed.entries, now=now,
                                             max_age=max_age, generator=parsed.generator)
            baselined = bool(states.get(sub.name) and states[sub.name].baseline_at)
            updates.append(ThreadUpdate(sub.name, links, threads.retire_before(now, max_age),
                                        quiet=not baselined))
        return updates

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
            new_url=fetched.permanent_url if fetched.permanent_url != feed.url else None,
            body_hash=polled.body_hash)
        if polled.unchanged:
            # Same body as last time: keep the validators as they were judged then.
            record.etag, record.last_modified = feed.etag, feed.last_modified
        every = self._rescan_every(feed.id)
        # A listing that failed for now (no answer, 5xx) is tried again at the next poll: the
        # first one in particular, which tells later rescans what is old.
        if every is not None and not polled.error and not polled.listing_failed \
                and (polled.rescan or feed.rescan_due is None):
            record.rescan_due = now + every
        if polled.error or polled.parsed is None:
            # A 304 still completes a subscription's baseline: nothing it has not seen.
            if fetched.not_modified or polled.unchanged:
                record.baselines = [s.name for s in subs
                                    if states.get(s.name) and states[s.name].baseline_at is None
                                    and had_entries]
            return record, None
        quiet = self._quiet.get(feed.id, set())
        views = [SubscriptionView(
            name=s.name, baselined=bool(states.get(s.name) and states[s.name].baseline_at
                                        and s.name not in quiet),
            backfill=self.config.backfill(s)) for s in subs]
        record.settle_thread = bool(quiet)
        record.threads = self._thread_updates(polled.parsed, subs, states, now)
        decision = decide(polled.parsed.entries, seen, views)
        if polled.quiet_keys:
            decision = dataclasses.replace(decision, candidates={
                name: tuple(e for e in offered if e.key not in polled.quiet_keys)
                for name, offered in decision.candidates.items()})
        if not validators_trustworthy(polled.parsed.kind, _http_date(fetched.last_modified),
                                      polled.parsed.entries):
            record.etag = record.last_modified = None
        record.title = polled.parsed.title
        post_id = backfill.wordpress_post_id(fetched.headers, fetched.final_url)
        if post_id and post_id != feed.post_id:
            record.post_id = post_id
        record.new_entries = decision.new_entries
        record.changed_entries = decision.changed_entries
        record.baselines = decision.baselines
        return record, decision

    async def deliver(self, *, limit: int = 1000,
                      channels: Iterable[str] | None = None) -> DeliveryReport:
        """Send what is due, at most `limit` rows per channel: see `notifier.deliver`."""
        return await self.delivery.deliver(limit=limit, channels=channels)
