"""Who reads which feed, and which subscriptions need a discovery: the pure half of `plan`.

    subscriptions + stored states + now -> needs_discovery -> (plan discovers them, I/O)
    a failed discovery + its stored count + now -> discovery_failed -> when to ask again
    subscriptions + stored states + followed thread feeds -> readers -> feed -> its readers

Why apart from `plan`: that module asks the store and the sites and keeps the discoveries
under way; this one decides from values only, so "a subscription whose URL changed is
discovered again", "a 410 is asked again once a day" and "a thread feed's first poll is its
follower's quiet baseline" are tested without a server, a store or a clock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from notifier import redact
from notifier.config import Config, Subscription
from notifier.failures import Failure, FailureKind
from notifier.schedule import next_poll, server_delay
from notifier.store import SubscriptionState

__all__ = ["discovery_failed", "has_feed", "needs_discovery", "readers"]


def has_feed(sub: Subscription, state: SubscriptionState | None) -> bool:
    """Whether the stored discovery still answers for the subscription as configured."""
    return (state is not None and state.feed_id is not None
            and state.source_url == sub.url and state.watch == sub.watch)


def needs_discovery(sub: Subscription, state: SubscriptionState | None, now: float, *,
                    force: bool) -> bool:
    """Whether to discover the subscription's feed now: it has none for its URL and watch,
    and its last failed discovery's back-off is over (or `run --once` forces it)."""
    if has_feed(sub, state):
        return False
    due = state.discovery_due if state is not None and state.source_url == sub.url else None
    return force or due is None or due <= now


def discovery_failed(sub: Subscription, state: SubscriptionState | None, config: Config, *,
                     kind: FailureKind, message: str, status: int | None,
                     retry_after: float | None, now: float) -> tuple[Failure, float]:
    """What a failed discovery stores: the failure as shown (URLs redacted), and when to try
    again, backing off like a failed poll (Retry-After and 410 honoured)."""
    errors = (state.discovery_errors if state is not None and state.source_url == sub.url
              else 0) + 1
    due = next_poll(now, config.interval(sub), config.defaults.jitter, errors=errors,
                    retry_after=server_delay(status, retry_after))
    reason = redact.urls_in(message)
    if status == 410:
        reason += "; asked again once a day (remove the subscription if it is gone)"
    return Failure(kind, reason), due


def readers(subscriptions: Sequence[Subscription], states: Mapping[str, SubscriptionState],
            followed: Mapping[int, Mapping[str, bool]]
            ) -> tuple[dict[int, tuple[Subscription, ...]], dict[int, frozenset[str]]]:
    """Feed id -> the subscriptions reading it, and per thread feed the followers whose
    first poll of it is part of their baseline (`quiet`).

    A subscription reads the feed its discovery found for its current URL; a `watch:
    threads` subscription also reads each followed post's comment feed (`followed`: feed
    id -> follower name -> quiet).
    """
    by_name = {s.name: s for s in subscriptions}
    feed_subs: dict[int, list[Subscription]] = defaultdict(list)
    for sub in subscriptions:
        state = states.get(sub.name)
        if state is not None and state.feed_id is not None and state.source_url == sub.url:
            feed_subs[state.feed_id].append(sub)
    quiet: dict[int, set[str]] = {}
    for feed_id, followers in followed.items():
        for name, is_quiet in followers.items():
            follower = by_name.get(name)
            if follower is None or follower.watch != "threads" \
                    or follower in feed_subs[feed_id]:
                continue
            feed_subs[feed_id].append(follower)
            if is_quiet:
                quiet.setdefault(feed_id, set()).add(name)
    return ({fid: tuple(subs) for fid, subs in feed_subs.items()},
            {fid: frozenset(names) for fid, names in quiet.items()})
