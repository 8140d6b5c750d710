"""Complete a batch of polls with what their windows do not show, before deciding.

    polls + stored keys -> gaps and due rescans -> backfill (REST listing, older pages)
                        -> parents of replies not in the window (store, else REST)
                        -> stored revisions of edited entries (`notify_edits`)
                        -> `Snapshot` per feed: everything `decide` needs, frozen

Runs in the writer, before the batch's transaction: backfills are rare (a gap, or a rescan
every few hours) and bounded in pages and time, and what they find must be decided
together with the window that revealed it. Every fact `decide` needs is read here, in one
batch read per kind, so the decision itself does no I/O.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from notifier import backfill, diff, gaps, redact, sources
from notifier.config import Config
from notifier.fetch import Fetcher
from notifier.frozen import quick_init
from notifier.models import Entry, ParsedFeed
from notifier.poll.plan import Db, Plan
from notifier.poll.retrieve import ParsePool, Polled
from notifier.store import Store

log = logging.getLogger("notifier")

PARENT_LEVELS = 5
"""Ancestors fetched for `include_subthread`."""

__all__ = ["PARENT_LEVELS", "Snapshot", "complete_batch"]


@quick_init
@dataclass(frozen=True, slots=True)
class Snapshot:
    """What is stored about one polled feed, as far as its decision needs it."""

    polled: Polled
    seen: Mapping[str, str]  # key -> stored content hash, for the keys in the window
    had_entries: bool
    revisions: Mapping[str, int]  # stored edit count of entries that changed
    known: Mapping[str, Entry]  # parents (and the window) by key, to match and quote replies
    fetched_parents: tuple[Entry, ...] = ()  # parents read from REST: stored, never offered


def _first_look_unchanged(polled: Polled, plan: Plan) -> bool:
    """An unchanged poll of a feed one of whose subscriptions has no baseline yet (added for
    a feed already polled for another one)."""
    if polled.parsed is not None or polled.failure is not None:
        return False
    if not (polled.fetch.not_modified or polled.unchanged) or not plan.awaiting_baseline():
        return False
    return any((state := plan.states.get(sub.name)) is not None and state.baseline_at is None
               for sub in plan.readers(polled.feed.id))


async def complete_batch(batch: Sequence[Polled], plan: Plan, *, config: Config, store: Store,
                         fetcher: Fetcher, parser: ParsePool, db: Db) -> list[Snapshot]:
    """Backfill, rescan, find parents and revisions: one `Snapshot` per poll of `batch`."""
    changed = [p for p in batch if p.parsed is not None]
    wanted = {p.feed.id: [e.key for e in p.parsed.entries] for p in changed if p.parsed}
    seen: dict[int, dict[str, str]] = await db(store.seen_entries, wanted) if wanted else {}
    batch = await _stored_keys(batch, seen, store=store, db=db)
    # A subscription still waiting for its first look at a feed that answered 304 (or the
    # body parsed last time) takes what is stored as that look (`decide`): whether the feed
    # has entries is read for those feeds too, not only for the changed ones.
    asked = [*wanted, *(p.feed.id for p in batch if _first_look_unchanged(p, plan))]
    had: set[int] = await db(store.has_entries, asked) if asked else set()
    polls = await _backfill(batch, plan, seen, had, config=config, store=store,
                            fetcher=fetcher, parser=parser, db=db)
    known, fetched = await _known_parents(polls, plan, store=store, fetcher=fetcher, db=db)
    snapshots = []
    for polled in polls:
        feed_seen = seen.get(polled.feed.id, {})
        revisions: dict[str, int] = {}
        if polled.parsed is not None and any(s.notify_edits for s in plan.readers(
                polled.feed.id)):
            edited = [e.key for e in polled.parsed.entries
                      if e.key in feed_seen and e.content_hash
                      and feed_seen[e.key] != e.content_hash]
            if edited:
                revisions = await db(store.entry_revisions, polled.feed.id, edited)
        window = {e.key: e for e in polled.parsed.entries} if polled.parsed else {}
        snapshots.append(Snapshot(polled, feed_seen, polled.feed.id in had, revisions,
                                  {**known, **window},
                                  tuple(fetched.get(polled.feed.id, ()))))
    return snapshots


async def _stored_keys(batch: Sequence[Polled], seen: dict[int, dict[str, str]], *,
                       store: Store, db: Db) -> list[Polled]:
    """Entries whose key says new or edited but which the store may hold under another key
    (`diff.earlier_keys`): one more batch read, only when there are such entries (rare),
    and each found one takes its stored key (`diff.rekeyed`)."""
    ask = {p.feed.id: keys for p in batch if p.parsed is not None
           if (keys := [k for e in p.parsed.entries
                        for k in diff.earlier_keys(e, seen.get(p.feed.id, {}))])}
    if not ask:
        return list(batch)
    found: dict[int, dict[str, str]] = await db(store.seen_entries, ask)
    out = []
    for polled in batch:
        more = found.get(polled.feed.id)
        if not more or polled.parsed is None:
            out.append(polled)
            continue
        feed_seen = seen.setdefault(polled.feed.id, {})
        feed_seen.update(more)
        entries = diff.rekeyed(polled.parsed.entries, feed_seen)
        out.append(dataclasses.replace(
            polled, parsed=dataclasses.replace(polled.parsed, entries=entries)))
    return out


async def _backfill(batch: Sequence[Polled], plan: Plan, seen: dict[int, dict[str, str]],
                    had_entries: set[int], *, config: Config, store: Store, fetcher: Fetcher,
                    parser: ParsePool, db: Db) -> list[Polled]:
    """Fill gaps and run due rescans, adding what they find to the polls: how is decided by
    `gaps.completing` (pure), the listing or the pages are read by `backfill`."""
    jobs: dict[int, Any] = {}
    # Polls whose first REST listing met a feed stored before (by an older notifier):
    # what it finds beyond the window is old, not new.
    quiet: set[int] = set()
    for index, polled in enumerate(batch):
        feed, parsed, fetch = polled.feed, polled.parsed, polled.fetch
        if not gaps.needs_completing(
                failed=polled.failure is not None, not_modified=fetch.not_modified,
                has_body=parsed is not None, rescan=polled.rescan) \
                or plan.rescan_every(config, feed.id) is None:
            continue
        source = sources.source_for(sources.Hints(
            feed_url=feed.url, generator=parsed.generator if parsed else "",
            headers=fetch.headers, api_root=feed.api_root or ""))
        post_id = feed.post_id or source.post_id(fetch.headers, fetch.final_url)
        feed_seen = seen.get(feed.id, {})
        how = gaps.completing(
            parsed, rescan=polled.rescan, api_root=feed.api_root, post_id=post_id,
            rescan_due=feed.rescan_due, seen=feed_seen, had_entries=feed.id in had_entries,
            stored=feed.entries_seen)
        post_guid = ""
        if how.wants_guid:
            keys = await db(store.comment_keys, feed.id)
            post_guid = gaps.post_guid_of([Entry(key=k, kind="comment") for k in keys])
        since = None
        if how.gap:
            newest = await db(store.newest_entry_time, feed.id)
            since = datetime.fromtimestamp(newest, UTC) if newest is not None else None
        jobs[index] = backfill.follow_up(
            how.plan, source, fetcher, parser.parse, parsed=parsed, api_root=feed.api_root,
            post_id=post_id, post_guid=post_guid, seen=feed_seen, since=since)
        if how.baseline:
            quiet.add(index)
    if not jobs:
        return list(batch)
    results = await asyncio.gather(*jobs.values(), return_exceptions=True)
    out = list(batch)
    added: dict[int, list[str]] = {}
    for index, result in zip(jobs, results, strict=True):
        polled = batch[index]
        url = redact.url(polled.feed.url)
        if isinstance(result, BaseException):
            if not isinstance(result, Exception):
                raise result
            log.warning("follow-up of %s failed: %s: %s", url, type(result).__name__,
                        redact.urls_in(str(result)))  # its text may quote a URL, token and all
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
        more = await db(store.seen_entries, added)
        for feed_id, found in more.items():
            seen.setdefault(feed_id, {}).update(found)
    return out


async def _known_parents(polls: Sequence[Polled], plan: Plan, *, store: Store,
                         fetcher: Fetcher, db: Db
                         ) -> tuple[dict[str, Entry], dict[int, list[Entry]]]:
    """The comments that new replies answer, from the batch, the store or REST.

    A reply is matched (`replies_to`) and shown with a quote of its parent; when the parent
    is in neither the window nor the store (it scrolled out before this feed was first
    polled) it is fetched from WordPress's REST API, and with `include_subthread` its
    ancestors too, a few levels up. Returns the parents by key, and per feed those that were
    fetched (to be stored with the poll).
    """
    in_batch: dict[str, Entry] = {}
    wanted: dict[str, int] = {}
    for polled in polls:
        if polled.parsed is None:
            continue
        in_batch.update({e.key: e for e in polled.parsed.entries})
        for entry in polled.parsed.entries:
            if entry.parent_key and entry.parent_key != entry.post_key:
                wanted.setdefault(entry.parent_key, polled.feed.id)
    # A parent in another feed of this batch (the site-wide feed beside a post's) is known.
    known: dict[str, Entry] = {k: in_batch[k] for k in wanted if k in in_batch}
    wanted = {k: v for k, v in wanted.items() if k not in in_batch}
    if not wanted:
        return known, {}
    known.update(await db(store.entries_by_key, set(wanted)))
    fetched: dict[int, list[Entry]] = defaultdict(list)
    feeds = {p.feed.id: p.feed for p in polls}
    deep = any(s.include_subthread for s in plan.subscriptions.values())
    for _ in range(PARENT_LEVELS if deep else 1):
        todo = {key: feeds[feed_id].api_root for key, feed_id in wanted.items()
                if key not in known and key not in in_batch}
        found = await sources.fetch_parents(fetcher, todo)
        if not found:
            break
        for key, parent in found.items():
            known[key] = parent
            fetched[wanted[key]].append(parent)
        wanted = {p.parent_key: wanted[k] for k, p in found.items()
                  if p.parent_key and p.parent_key not in known}
        if wanted:
            known.update(await db(store.entries_by_key, set(wanted)))
    return known, dict(fetched)
