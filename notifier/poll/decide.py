"""Decide what one poll of one feed means: the pure step between reading and writing.

    Snapshot (stored state) + parsed feed + the subscriptions reading it + now
        -> which entries are new or edited (`diff`) -> who is told (`match`)
        -> thread feeds to follow (`threads`) -> when to poll next (`schedule`)
        -> one frozen `PollRecord`: the write intent

Nothing here does I/O or keeps state between calls: everything stored that the decision
needs arrives in the `Snapshot` (read in one batch by `complete`), and the clock and random
source are arguments, so the tests of this module need no server and no clock patching.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from notifier import sources, threads
from notifier.config import Config, Subscription
from notifier.diff import Decision, SubscriptionView, decide
from notifier.frozen import quick_init
from notifier.match import match
from notifier.models import FLOOD_ID_PREFIX, Entry, FeedKind, ParsedFeed
from notifier.poll.complete import Snapshot
from notifier.poll.plan import Plan
from notifier.schedule import MAX_BACKOFF_FACTOR, next_poll, server_delay
from notifier.store import FeedState, PollRecord, QueuedNotice, SubscriptionState, ThreadUpdate

__all__ = ["Outcome", "decide_poll", "unread_intervals"]


@quick_init
@dataclass(frozen=True, slots=True)
class Outcome:
    """A poll's write intent, and the diff it came from (for the cycle's report)."""

    record: PollRecord
    decision: Decision | None
    deaf_note: str = ""
    """Subscriptions told nothing because the feed was read as another kind than they watch."""


def _baselined(states: Mapping[str, SubscriptionState], name: str) -> bool:
    state = states.get(name)
    return bool(state and state.baseline_at)


def decide_poll(snapshot: Snapshot, plan: Plan, config: Config, *, now: float,
                rng: random.Random) -> Outcome:
    """The write intent for one polled feed; see the module docstring."""
    polled = snapshot.polled
    feed, fetched = polled.feed, polled.fetch
    subs = plan.readers(feed.id)
    errors = feed.error_count + 1 if polled.failure else 0
    next_due = next_poll(now, feed.interval, config.defaults.jitter, errors=errors,
                         retry_after=server_delay(fetched.status, fetched.retry_after), rng=rng)
    every = plan.rescan_every(config, feed.id)
    # A listing that failed for now (no answer, 5xx) is tried again at the next poll: the
    # first one in particular, which tells later rescans what is old.
    rescan_due = None
    if every is not None and not polled.failure and not polled.listing_failed \
            and (polled.rescan or feed.rescan_due is None):
        rescan_due = now + every
    etag, last_modified = fetched.etag, fetched.last_modified
    if polled.unchanged:
        # Same body as last time: keep the validators as they were judged then.
        etag, last_modified = feed.etag, feed.last_modified
    # By position, in the order of its fields: called with keywords, the class is handed a
    # dict of them to take apart again (0.7 us of each poll's 2 us for this record).
    base = PollRecord(
        feed.id,  # feed_id
        now,  # polled_at
        next_due,
        fetched.status,  # status
        polled.failure,  # failure
        etag,
        last_modified,
        not fetched.not_modified  # validators_changed
        or (etag, last_modified) != (feed.etag, feed.last_modified),
        polled.body_hash,  # body_hash
        fetched.permanent_url if fetched.permanent_url != feed.url else None,  # new_url
        None, (), (), (), (), None,  # title, new and changed entries, baselines, notices, post_id
        rescan_due)
    if polled.failure or polled.parsed is None:
        baselines: list[str] = []
        # A 304 still completes a subscription's baseline: nothing it has not seen.
        if (fetched.not_modified or polled.unchanged) and snapshot.had_entries:
            baselines = [s.name for s in subs if plan.states.get(s.name)
                         and plan.states[s.name].baseline_at is None]
        # `replace` costs more than the rest of an unchanged feed's decision: only if needed.
        return Outcome(dataclasses.replace(base, baselines=baselines) if baselines else base,
                       None)
    parsed = polled.parsed
    quiet = plan.quiet.get(feed.id, frozenset())
    views = [SubscriptionView(name=s.name,
                              baselined=_baselined(plan.states, s.name) and s.name not in quiet,
                              backfill=config.backfill(s)) for s in subs]
    decision = decide(parsed.entries, snapshot.seen, views)
    if polled.quiet_keys:
        decision = Decision(decision.new_entries, decision.changed_entries, {
            name: tuple(e for e in offered if e.key not in polled.quiet_keys)
            for name, offered in decision.candidates.items()}, decision.baselines)
    oldest_new = next(iter(decision.new_entries), None)
    missing = {oldest_new.key: polled.missing} if oldest_new and polled.missing else {}
    notices = [*_unflooded(match(decision.candidates, plan.subscriptions, snapshot.known,
                                 missing), decision.new_entries, config, plan,
                           intervals=unread_intervals(feed, now), rng=rng),
               *_edit_notices(snapshot, subs, decision, plan)]
    stored = {e.key for e in decision.new_entries}
    # Parents read from REST are stored so the delivery can quote them; never offered.
    new_entries = (*decision.new_entries,
                   *(e for e in snapshot.fetched_parents if e.key not in stored))
    post_id = sources.post_id(fetched.headers, fetched.final_url)
    record = dataclasses.replace(
        base, title=parsed.title, new_entries=new_entries,
        changed_entries=decision.changed_entries, baselines=decision.baselines,
        notices=notices, post_id=post_id if post_id and post_id != feed.post_id else None,
        threads=_thread_updates(parsed.kind, parsed.entries, parsed.generator, subs, plan,
                                config, now),
        settle_thread=bool(quiet))
    return Outcome(record, decision, deaf_note(plan.readings(feed.id), parsed))


def deaf_note(readings: Mapping[str, FeedKind], parsed: ParsedFeed) -> str:
    """Who is told nothing from a feed read as another kind than they watch, and why.

    The watch wins when every subscription of a feed watches the same kind (`parse`'s
    `expect`); when they differ, the document decides, and a subscription watching the
    other kind matches none of its entries. That must not be silent.
    """
    deaf = sorted(name for name, kind in readings.items() if kind != parsed.kind)
    if not deaf:
        return ""
    other = "posts" if parsed.kind == "comments" else "comments"
    one = len(deaf) == 1
    return (f"read as {parsed.kind}: {parsed.kind_reason}. Its subscriptions watch different "
            f"kinds, so the document decides: {', '.join(deaf)} "
            f"{'watches' if one else 'watch'} {other} here and {'is' if one else 'are'} told "
            f"nothing from it; give {'it' if one else 'them'} a feed of {other}, or watch "
            f"{parsed.kind}")


FLOOD_SHOWN = 5
"""Of a flood, each channel gets one summary message holding this many of the newest."""


def unread_intervals(feed: FeedState, now: float) -> float:
    """How many poll intervals of this feed's news the poll at `now` reads at once.

    One for a poll on time; more after the daemon was down (its last poll is that long ago)
    or after failed polls (each failure read nothing, and backed off as `next_poll` does).
    """
    if feed.last_polled is None or feed.interval <= 0:
        return 1.0
    unread = max(now - feed.last_polled, 0.0)
    unread += sum(feed.interval * min(1 << min(k, 8), MAX_BACKOFF_FACTOR)
                  for k in range(min(feed.error_count, 1000)))
    return max(unread / feed.interval, 1.0)


def _unflooded(notices: list[QueuedNotice], new_entries: Sequence[Entry], config: Config,
               plan: Plan, *, intervals: float, rng: random.Random) -> list[QueuedNotice]:
    """A flood becomes one summary message per channel; everything else is reported as is.

    A flood is more new entries for one channel from one poll than `flood_limit` for each
    interval the poll covers: 1,200 comments appearing between two polls on time (an import,
    a spam wave). The same count read after a day of downtime, or after failed polls, is
    news that piled up while nobody looked, and every entry of it is reported, as is every
    reply matched by a `replies_to` subscription, flood or not. The summary is a digest of
    the newest `FLOOD_SHOWN` whose oldest member counts the rest (`missing`), so it says
    "1,200 new comments on ...; the newest 5 follow"; every entry is stored and none is
    reported again.
    """
    order = {entry.key: index for index, entry in enumerate(new_entries)}  # oldest first
    by_channel: dict[str, list[QueuedNotice]] = {}
    for notice in notices:
        by_channel.setdefault(notice.channel, []).append(notice)
    kept: list[QueuedNotice] = []
    for offered in by_channel.values():
        # A reply to someone a subscription follows (`replies_to`) is never summarised
        # away: it is what the reader is here for, and a flood holds few of them.
        replies = [n for n in offered if (sub := plan.subscriptions.get(n.subscription))
                   is not None and sub.replies_to]
        kept += replies
        taken = {id(n) for n in replies}
        channel_notices = [n for n in offered if id(n) not in taken] if replies else offered
        subs = {n.subscription for n in channel_notices}
        limit = min(config.flood_limit(plan.subscriptions[name]) for name in subs
                    if name in plan.subscriptions) if subs & plan.subscriptions.keys() else None
        if limit is None or len(channel_notices) <= limit * intervals:
            kept += channel_notices
            continue
        ordered = sorted(channel_notices, key=lambda n: order.get(n.entry_key, -1))
        newest = ordered[-min(FLOOD_SHOWN, limit):]
        skipped = len(ordered) - len(newest)
        summary = f"{FLOOD_ID_PREFIX}{rng.getrandbits(128):032x}"
        kept += [dataclasses.replace(notice, digest_id=summary,
                                     missing=notice.missing + (skipped if i == 0 else 0))
                 for i, notice in enumerate(newest)]
    return kept


def _edit_notices(snapshot: Snapshot, subs: Sequence[Subscription], decision: Decision,
                  plan: Plan) -> list[QueuedNotice]:
    """`notify_edits`: one notice per edit, numbered by the entry's stored revision."""
    editors = {s.name: decision.changed_entries for s in subs
               if s.notify_edits and s.name not in decision.baselines}
    if not decision.changed_entries or not editors:
        return []
    revisions = {key: count + 1 for key, count in snapshot.revisions.items()}
    return match(editors, plan.subscriptions, snapshot.known, revisions=revisions)


def _thread_updates(kind: str, entries: Sequence[Entry], generator: str,
                    subs: Sequence[Subscription], plan: Plan, config: Config, now: float
                    ) -> list[ThreadUpdate]:
    """For `watch: threads` subscriptions of a posts feed: the comment feeds to follow."""
    if kind != "posts":
        return []
    updates = []
    for sub in subs:
        if sub.watch != "threads" or plan.subscriptions.get(sub.name) is not sub:
            continue
        max_age = config.threads_max_age(sub)
        links = threads.followed_threads(sub.name, entries, now=now, max_age=max_age,
                                         generator=generator)
        updates.append(ThreadUpdate(sub.name, links, threads.retire_before(now, max_age),
                                    quiet=not _baselined(plan.states, sub.name)))
    return updates
