"""Plan a poll cycle: which feed each subscription reads, and which feeds are due.

    subscriptions (config) + stored discoveries -> discover what is new or changed
                                                   (what no other node is discovering)
                          -> `Plan`: feed -> subscriptions reading it (threads included)
                          -> due feeds (stored `next_due`), in batches

Who reads what, and who needs a discovery, is decided by the pure functions of
`notifier.poll.readers`; this module runs the discoveries and reads the store.
Discovery runs here, before any feed is fetched, because only it turns what a subscription
names (a site, a page, a feed) into a feed to poll. The plan is rebuilt only when something
it depends on moved (a discovery, a `watch: threads` posts feed), and is frozen, so every
batch of a cycle decides against the same facts.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from notifier import redact
from notifier.config import Config, Subscription
from notifier.discover import Discovery, DiscoveryError, discover
from notifier.failures import Failure, FailureKind
from notifier.fetch import Fetcher
from notifier.models import FeedKind
from notifier.poll.readers import discovery_failed, has_feed, needs_discovery, readers
from notifier.poll.waiting import wait_while_finishing
from notifier.store import Store, SubscriptionState

log = logging.getLogger("notifier")
Db = Callable[..., Awaitable[Any]]
"""Runs a store method on the store's one thread (`cycle.StoreThread`)."""

__all__ = ["DISCOVERY_WAIT", "Db", "DiscoveryFailure", "Plan", "PlanMemo", "Planner",
           "discovery_budget"]

DISCOVERY_WAIT = 5.0
"""A daemon cycle waits at most this long for the discoveries it started (a first start
discovers every subscription), while they keep finishing; the rest land in a later cycle."""


_READINGS = itertools.count(1)

CLAIM_SPAN = 2
"""A node's claim on a discovery lasts this many discovery time limits: a discovery's
limit stands still while it waits for a request slot (a first start of thousands), and
another node asking the same site meanwhile is what the claim is for."""


def discovery_budget(config: Config) -> float:
    """Seconds one subscription's discovery may take: a page and a feed or two."""
    return 2 * config.http.timeout


@dataclass(frozen=True, slots=True)
class DiscoveryFailure:
    """A subscription whose feed could not be found this cycle: it counts as a failed feed."""

    subscription: str
    reason: Failure


class PlanMemo:
    """What a plan's methods worked out per feed, kept for the plan's later ticks.

    A daemon asks each due feed's rescan interval and watched kind at every poll (twice
    for the interval), always with the same answer while the readers, the states and the
    configuration stay the same objects: at 10,000 feeds, working them out again was a
    tenth of notifier's own CPU per poll. Dropped with its plan when the readers change;
    emptied when it meets another states reading or configuration.
    """

    __slots__ = ("awaiting", "awaiting_of", "config", "kinds", "rescans", "states")

    def __init__(self) -> None:
        self.config: object = None
        self.rescans: dict[int, float | None] = {}
        self.states: object = None
        self.kinds: dict[int, FeedKind | None] = {}
        self.awaiting_of: object = None
        self.awaiting = False


@dataclass(frozen=True, slots=True)
class Plan:
    """The facts of one cycle that every batch's decisions read."""

    subscriptions: Mapping[str, Subscription]
    states: Mapping[str, SubscriptionState]
    feed_subs: Mapping[int, tuple[Subscription, ...]]
    quiet: Mapping[int, frozenset[str]] = field(default_factory=dict)
    """Thread feeds whose first poll is part of their subscription's baseline."""
    failures: tuple[DiscoveryFailure, ...] = ()
    memo: PlanMemo = field(default_factory=PlanMemo, compare=False, repr=False)
    """Shared by the plans of the ticks that read the same readers (`Planner.plan`)."""

    def readers(self, feed_id: int) -> tuple[Subscription, ...]:
        return self.feed_subs.get(feed_id, ())

    def readings(self, feed_id: int) -> dict[str, FeedKind]:
        """Each subscription reading the feed -> the kind of feed it watches there.

        `watch: threads` reads its site's posts feed as posts and each followed post's feed
        as comments.
        """
        kinds: dict[str, FeedKind] = {}
        for sub in self.readers(feed_id):
            if sub.watch == "threads":
                state = self.states.get(sub.name)
                own = state is not None and state.feed_id == feed_id
                kinds[sub.name] = "posts" if own else "comments"
            else:
                kinds[sub.name] = "posts" if sub.watch == "posts" else "comments"
        return kinds

    def expected_kind(self, feed_id: int) -> FeedKind | None:
        """The kind of feed every subscription reading it watches, or None if they differ.

        The watch is what the person asked for, so it decides how the feed is read: a
        Mastodon timeline whose newest entry answers another toot still holds posts for a
        `watch: posts` subscription. When subscriptions of one feed watch different kinds,
        the document decides, and `decide` says in the log who is told nothing.
        """
        memo = self.memo
        if memo.states is not self.states:
            memo.states, memo.kinds = self.states, {}
        try:
            return memo.kinds[feed_id]
        except KeyError:
            pass
        kinds = set(self.readings(feed_id).values())
        kind = memo.kinds[feed_id] = kinds.pop() if len(kinds) == 1 else None
        return kind

    def awaiting_baseline(self) -> bool:
        """Whether any subscription in the states read has no baseline yet: once each has
        one (nearly every tick of a daemon), no unchanged poll is anyone's first look, and
        the writer need not ask each poll's readers (once per states reading)."""
        memo = self.memo
        if memo.awaiting_of is not self.states:
            memo.awaiting_of = self.states
            memo.awaiting = any(state.baseline_at is None for state in self.states.values())
        return memo.awaiting

    def rescan_every(self, config: Config, feed_id: int) -> float | None:
        """The shortest `rescan` of the subscriptions reading a feed; None for posts only."""
        memo = self.memo
        if memo.config is not config:
            memo.config, memo.rescans = config, {}
        try:
            return memo.rescans[feed_id]
        except KeyError:
            pass
        subs = [s for s in self.readers(feed_id) if s.watch != "posts"]
        every = memo.rescans[feed_id] = min((config.rescan(s) for s in subs), default=None)
        return every


def _same(read: object, states: object) -> bool:
    """Whether `states` is the very reading `read` (not just equal to it)."""
    return read is states


class Planner:
    """Builds each cycle's `Plan`; discoveries run in the background, their failures stored
    with when to try again (the same backoff as a failed poll, Retry-After and 410 included)."""

    def __init__(self, config: Config, store: Store, fetcher: Fetcher, db: Db,
                 clock: Callable[[], float], node: str) -> None:
        self.config = config
        self.store = store
        self.fetcher = fetcher
        self._db = db
        self._clock = clock
        self._node = node
        self._subs = {s.name: s for s in config.subscriptions}
        self._discovering: dict[str, asyncio.Task[Discovery]] = {}
        self._harvested: list[str] = []
        self._plan: Plan | None = None
        self._stale = True
        self._steady: Mapping[str, SubscriptionState] | None = None
        self._lacking: list[Subscription] = []
        self._lacking_read: Mapping[str, SubscriptionState] | None = None
        """The last states read, while every subscription had its feed and its baseline."""
        self.generation = 0
        """Which reading of the feeds' readers the current plan holds (it grows with each,
        across planners): a feed missing from a plan read after the feed was first met is
        read by no subscription of this node."""

    def threads_moved(self) -> None:
        """A posts feed of `watch: threads` changed which thread feeds are followed."""
        self._stale = True

    async def plan(self, *, force: bool) -> Plan:
        # Read once per tick, this was the largest cost of a daemon's tick over 10,000
        # subscriptions. Once each has its feed and its baseline, only a discovery (which
        # reads again below) or a restart with another configuration changes what a plan
        # needs from it: a baseline is recorded only for a subscription that has none.
        states = self._steady
        if states is None or force:
            states = await self._db(self.store.subscription_states)
        now = self._clock()
        started = []
        if not _same(self._lacking_read, states):
            # Which subscriptions lack their feed changes only with the states read: not
            # walked again over every subscription at each tick of the daemon.
            self._lacking = [sub for sub in self.config.subscriptions
                             if not has_feed(sub, states.get(sub.name))]
            self._lacking_read = states
        wanted = [sub.name for sub in self._lacking if sub.name not in self._discovering
                  and needs_discovery(sub, states.get(sub.name), now, force=force)]
        # Only those no other node is discovering: nodes that start together with the same
        # subscriptions ask each site once between them; the others' states show the feed
        # once found (read again at every tick while a subscription lacks its feed).
        mine = await self._db(self.store.claim_discoveries, wanted, self._node, now,
                              now + CLAIM_SPAN * discovery_budget(self.config)) if wanted else ()
        for name in wanted:
            if name in mine:
                sub = self._subs[name]
                task = asyncio.create_task(self._discover_one(sub), name=f"discover {name}")
                self._discovering[name] = task
                started.append(task)
        # Discoveries run beside the cycle: it waits while they keep finishing, then moves
        # on; a slow one lands in a later cycle (each is bounded by `discovery_budget`).
        if force:
            await asyncio.gather(*self._discovering.values(), return_exceptions=True)
        elif started:
            await wait_while_finishing(started, 1.0, DISCOVERY_WAIT)
        failures = await self._harvest(states, self._clock())
        landed = bool(self._harvested)
        if landed:
            states = await self._db(self.store.subscription_states)
        steady = _same(self._steady, states)  # checked when it was read, and unchanged since
        self._steady = states if not landed and not self._discovering and (steady or all(
            (state := states.get(sub.name)) is not None and state.feed_id is not None
            and state.baseline_at is not None for sub in self.config.subscriptions)) else None
        if landed or self._plan is None or self._stale:
            self._stale = False
            self.generation = next(_READINGS)
            feed_subs, quiet = await self._readers(states)
            intervals = {fid: min(self.config.interval(s) for s in subs)
                         for fid, subs in feed_subs.items()}
            await self._db(self.store.set_feed_intervals, intervals)
            self._plan = Plan(self._subs, states, feed_subs, quiet)
        return Plan(self._subs, states, self._plan.feed_subs, self._plan.quiet,
                    tuple(failures), self._plan.memo)

    async def _discover_one(self, sub: Subscription) -> Discovery:
        budget = discovery_budget(self.config)
        try:
            async with asyncio.timeout(budget) as deadline:
                return await discover(self.fetcher, sub.url,
                                      "posts" if sub.watch == "threads" else sub.watch,
                                      budget=deadline)
        except TimeoutError:
            raise DiscoveryError(f"discovery took more than {budget:g} s",
                                 kind=FailureKind.TIMEOUT) from None

    async def _harvest(self, states: Mapping[str, SubscriptionState], now: float
                       ) -> list[DiscoveryFailure]:
        """Record the discoveries that finished since the last cycle."""
        done = {name: task for name, task in self._discovering.items() if task.done()}
        self._harvested = list(done)
        failures = []
        for name, task in done.items():
            del self._discovering[name]
            sub = self._subs[name]
            if task.cancelled():
                continue
            error = task.exception()
            if isinstance(error, DiscoveryError):
                failure, due = discovery_failed(
                    sub, states.get(sub.name), self.config, kind=error.kind,
                    message=str(error), status=error.status, retry_after=error.retry_after,
                    now=now)
                log.warning("discovery failed: subscription %s: %s", sub.name, failure)
                failures.append(DiscoveryFailure(sub.name, failure))
                await self._db(self.store.record_discovery_error, sub.name, sub.url,
                               sub.watch, failure, now, due)
            elif error is not None:
                raise error
            else:
                result = task.result()
                log.info("subscription %s: polling %s", sub.name,
                         redact.url(result.feed_url))
                await self._db(self.store.save_discovery, sub.name, sub.url, sub.watch,
                               result.feed_url, result.api_root, self.config.interval(sub), now)
        return failures

    @property
    def discovering(self) -> bool:
        """Whether discoveries it started are still under way."""
        return bool(self._discovering)

    async def close(self) -> None:
        for task in self._discovering.values():
            task.cancel()
        await asyncio.gather(*self._discovering.values(), return_exceptions=True)
        if self._discovering:  # cut short, or finished but not recorded: asked again
            # by another node now, not when the claims run out.
            await self._db(self.store.release_discoveries, list(self._discovering),
                           self._node)
        self._discovering.clear()

    async def _readers(self, states: Mapping[str, SubscriptionState]
                       ) -> tuple[dict[int, tuple[Subscription, ...]], dict[int, frozenset[str]]]:
        # `watch: threads`: each followed post's comment feed is read for that subscription.
        followed: dict[int, dict[str, bool]] = await self._db(self.store.thread_feeds)
        return readers(self.config.subscriptions, states, followed)
