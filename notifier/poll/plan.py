"""Plan a poll cycle: which feed each subscription reads, and which feeds are due.

    subscriptions (config) + stored discoveries -> discover what is new or changed
                          -> `Plan`: feed -> subscriptions reading it (threads included)
                          -> due feeds (stored `next_due`), in batches

Discovery runs here, before any feed is fetched, because only it turns what a subscription
names (a site, a page, a feed) into a feed to poll. The plan is rebuilt only when something
it depends on moved (a discovery, a `watch: threads` posts feed), and is frozen, so every
batch of a cycle decides against the same facts.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from notifier import redact
from notifier.config import Config, Subscription
from notifier.discover import DiscoveryError, discover
from notifier.fetch import Fetcher
from notifier.models import FeedKind
from notifier.store import Store, SubscriptionState

log = logging.getLogger("notifier")
Db = Callable[..., Awaitable[Any]]
"""Runs a store method on the store's one thread (`cycle.StoreThread`)."""

__all__ = ["Db", "DiscoveryFailure", "Plan", "Planner"]


@dataclass(frozen=True, slots=True)
class DiscoveryFailure:
    """A subscription whose feed could not be found this cycle: it counts as a failed feed."""

    subscription: str
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    """The facts of one cycle that every batch's decisions read."""

    subscriptions: Mapping[str, Subscription]
    states: Mapping[str, SubscriptionState]
    feed_subs: Mapping[int, tuple[Subscription, ...]]
    quiet: Mapping[int, frozenset[str]] = field(default_factory=dict)
    """Thread feeds whose first poll is part of their subscription's baseline."""
    failures: tuple[DiscoveryFailure, ...] = ()

    def readers(self, feed_id: int) -> tuple[Subscription, ...]:
        return self.feed_subs.get(feed_id, ())

    def expected_kind(self, feed_id: int) -> FeedKind | None:
        """The kind of feed every subscription reading it watches, or None if they differ.

        The watch is what the person asked for, so it decides how the feed is read: a
        Mastodon timeline whose newest entry answers another toot still holds posts for a
        `watch: posts` subscription. `watch: threads` reads its site's posts feed as posts
        and each followed post's feed as comments.
        """
        kinds: set[FeedKind] = set()
        for sub in self.readers(feed_id):
            state = self.states.get(sub.name)
            if sub.watch == "threads":
                own = state is not None and state.feed_id == feed_id
                kinds.add("posts" if own else "comments")
            else:
                kinds.add("posts" if sub.watch == "posts" else "comments")
        return kinds.pop() if len(kinds) == 1 else None

    def rescan_every(self, config: Config, feed_id: int) -> float | None:
        """The shortest `rescan` of the subscriptions reading a feed; None for posts only."""
        subs = [s for s in self.readers(feed_id) if s.watch != "posts"]
        return min((config.rescan(s) for s in subs), default=None)


class Planner:
    """Builds each cycle's `Plan`; remembers when a failed discovery may be tried again."""

    def __init__(self, config: Config, store: Store, fetcher: Fetcher, db: Db,
                 clock: Callable[[], float]) -> None:
        self.config = config
        self.store = store
        self.fetcher = fetcher
        self._db = db
        self._clock = clock
        self._subs = {s.name: s for s in config.subscriptions}
        self._discovery_retry: dict[str, float] = {}
        self._plan: Plan | None = None
        self._stale = True

    def threads_moved(self) -> None:
        """A posts feed of `watch: threads` changed which thread feeds are followed."""
        self._stale = True

    async def plan(self, *, force: bool) -> Plan:
        states: dict[str, SubscriptionState] = await self._db(self.store.subscription_states)
        now = self._clock()
        pending = []
        for sub in self.config.subscriptions:
            state = states.get(sub.name)
            fresh = (state is not None and state.feed_id is not None
                     and state.source_url == sub.url and state.watch == sub.watch)
            if not fresh and (force or self._discovery_retry.get(sub.name, 0) <= now):
                pending.append(sub)
        failures = await self._discover(pending, now)
        if pending:
            states = await self._db(self.store.subscription_states)
        if pending or self._plan is None or self._stale:
            self._stale = False
            feed_subs, quiet = await self._readers(states)
            intervals = {fid: min(self.config.interval(s) for s in subs)
                         for fid, subs in feed_subs.items()}
            await self._db(self.store.set_feed_intervals, intervals)
            self._plan = Plan(self._subs, states, feed_subs, quiet)
        return Plan(self._subs, states, self._plan.feed_subs, self._plan.quiet,
                    tuple(failures))

    async def _discover(self, pending: list[Subscription], now: float
                        ) -> list[DiscoveryFailure]:
        results = await asyncio.gather(
            *(discover(self.fetcher, s.url, "posts" if s.watch == "threads" else s.watch)
              for s in pending), return_exceptions=True)
        failures = []
        for sub, result in zip(pending, results, strict=True):
            if isinstance(result, DiscoveryError):
                log.warning("discovery failed: subscription %s: %s", sub.name, result)
                failures.append(DiscoveryFailure(sub.name, str(result)))
                self._discovery_retry[sub.name] = now + self.config.interval(sub)
                await self._db(self.store.record_discovery_error, sub.name, sub.url,
                               sub.watch, str(result), now)
            elif isinstance(result, BaseException):
                raise result
            else:
                log.info("subscription %s: polling %s", sub.name,
                         redact.url(result.feed_url))
                await self._db(self.store.save_discovery, sub.name, sub.url, sub.watch,
                               result.feed_url, result.api_root, self.config.interval(sub), now)
        return failures

    async def _readers(self, states: Mapping[str, SubscriptionState]
                       ) -> tuple[dict[int, tuple[Subscription, ...]], dict[int, frozenset[str]]]:
        feed_subs: dict[int, list[Subscription]] = defaultdict(list)
        for sub in self.config.subscriptions:
            state = states.get(sub.name)
            if state is not None and state.feed_id is not None and state.source_url == sub.url:
                feed_subs[state.feed_id].append(sub)
        # `watch: threads`: each followed post's comment feed is read for that subscription.
        quiet: dict[int, set[str]] = {}
        followed: dict[int, dict[str, bool]] = await self._db(self.store.thread_feeds)
        for feed_id, followers in followed.items():
            for name, is_quiet in followers.items():
                follower = self._subs.get(name)
                if follower is None or follower.watch != "threads" \
                        or follower in feed_subs[feed_id]:
                    continue
                feed_subs[feed_id].append(follower)
                if is_quiet:
                    quiet.setdefault(feed_id, set()).add(name)
        return ({fid: tuple(subs) for fid, subs in feed_subs.items()},
                {fid: frozenset(names) for fid, names in quiet.items()})
