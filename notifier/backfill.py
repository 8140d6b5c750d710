"""Backfill: the comments a feed window no longer shows, fetched from where the source keeps them.

    poll says "gap" or "rescan due" -> gaps.plan_follow_up (pure) -> FollowUp: how, how many
        thread  -> the platform's listing of the post (WordPress: REST, page by page)
        window  -> the listings of the posts a site-wide feed's window names
        pages   -> the feed's own `rel="next"` pages (Blogger, RFC 5005)
        warn    -> nothing to read: "at least N comments may be missing"
    -> follow_up (I/O) -> entries keyed exactly like the feed's -> merged into the poll

Why this exists: a WordPress comment feed shows only the newest 10 comments and cannot be
paged (`?paged=2` answers an empty channel), so 11 comments between two polls would lose one
without a word. Its validators are site-wide, so a comment approved late at an old position
hides behind a 304. The REST API lists every approved comment; Blogger and RFC 5005 feeds
page with `link rel="next"`. How a platform lists a thread is its adapter's
(`notifier.sources`).

Which way to go (is there a gap, how many may be missing, which way to fill it) is decided
by the pure functions of `notifier.gaps`; this module only does it, bounded in pages and
time, and never raises for I/O: a failure comes back as `Backfill.failure` (a typed
`Failure`), and the poll goes on with what the feed showed.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime

from notifier.failures import Failure, FailureKind
from notifier.fetch import Fetcher
from notifier.gaps import FollowUp, post_guid_of
from notifier.models import Entry, ParsedFeed
from notifier.sources import Source, ThreadRef
from notifier.sources.records import MAX_PAGES, MAX_SECONDS, Backfill

__all__ = [
    "MAX_PAGES",
    "Backfill",
    "Completion",
    "feed_pages",
    "follow_up",
]


ParseFeed = Callable[[bytes, str, dict[str, str]], Awaitable[ParsedFeed | Failure]]


# --- fetching ---------------------------------------------------------------------------


async def feed_pages(fetcher: Fetcher, next_url: str, parse: ParseFeed,
                     known: Collection[str], *, since: datetime | None = None,
                     max_pages: int = MAX_PAGES, max_seconds: float = MAX_SECONDS
                     ) -> Backfill:
    """Older pages of a feed through `link rel="next"` (Blogger's openSearch, RFC 5005).

    Stops at the first page that reaches an entry already known or one published before
    `since` (the newest entry stored before the gap): everything older was seen, or was
    there before the subscription began, and is not news.
    """
    found: dict[str, Entry] = {}
    deadline = time.monotonic() + max_seconds
    pages = 0
    url = next_url
    visited: set[str] = set()
    while url and pages < max_pages and url not in visited:
        if time.monotonic() > deadline:
            return Backfill(tuple(found.values()), False, pages, Failure(
                FailureKind.TIMEOUT, f"backfill took longer than {max_seconds:g} s"))
        visited.add(url)
        fetched = await fetcher.fetch(url)
        pages += 1
        if not fetched.ok or fetched.body is None:
            return Backfill(tuple(found.values()), False, pages,
                            fetched.problem.about("next page"), fetched.transient)
        parsed = await parse(fetched.body, fetched.final_url, fetched.headers)
        if isinstance(parsed, Failure):
            return Backfill(tuple(found.values()), False, pages, parsed.about("next page"))
        reached_known = False
        for entry in parsed.entries:
            if entry.key in known or not _after(entry, since):
                reached_known = True
            else:
                found.setdefault(entry.key, entry)
        if reached_known or not parsed.entries:
            return Backfill(tuple(found.values()), True, pages)
        url = parsed.next_url
    return Backfill(tuple(found.values()), not url, pages, None if not url else Failure(
        FailureKind.REFUSED, f"stopped after {pages} pages, the most one backfill reads"))


@dataclass(frozen=True, slots=True)
class Completion:
    """What following up one comment-feed poll added: entries beyond its window, and a warning.

    `missing` > 0 means a gap was seen and could not be filled: the oldest new comment's
    notification says "at least N comments may be missing; see the thread".
    """

    entries: tuple[Entry, ...] = ()
    missing: int = 0
    note: str = ""
    listing_failed: bool = False  # a REST listing failed in a way that may pass


async def follow_up(plan: FollowUp, source: Source, fetcher: Fetcher, parse: ParseFeed, *,
                    parsed: ParsedFeed | None, api_root: str | None, post_id: str | None,
                    post_guid: str, seen: Collection[str],
                    since: datetime | None = None) -> Completion:
    """Do what `plan` says: read the listing or the pages, and report how it went.

    Listings and pages reach back only to `since`, the newest entry stored before the gap,
    because older comments never stored were there before the subscription began.
    """
    entries = parsed.entries if parsed is not None else ()
    if plan.how == "window" and api_root:
        listed = await source.list_window(fetcher, api_root, entries, since)
        if listed is not None:
            found = tuple(e for r in listed for e in r.entries if _after(e, since))
            complete = bool(listed) and all(r.complete for r in listed)
            errors = "; ".join(_said(r.failure) for r in listed if r.failure)
            note = f"REST backfill of {len(listed)} posts: {len(found)} comments" + \
                (f"; {errors}" if errors else "")
            return Completion(found, 0 if complete else plan.estimate, note)
    if plan.how == "thread" and api_root and post_id:
        first = entries[0] if entries else None
        result = await source.list_thread(fetcher, ThreadRef(
            api_root, post_id, post_guid=post_guid_of(entries) or post_guid,
            post_title=first.post_title if first else "",
            post_link=first.post_link if first else ""))
        if result is not None:
            note = f"REST {'rescan' if plan.rescan else 'backfill'}: " \
                   f"{len(result.entries)} comments in {result.pages} pages"
            if result.failure:
                note += f"; {_said(result.failure)}"
            return Completion(result.entries, 0 if result.complete else plan.estimate, note,
                              listing_failed=result.transient)
    if plan.how == "pages" and parsed is not None:
        result = await feed_pages(fetcher, parsed.next_url, parse, seen, since=since)
        note = f"backfill: {len(result.entries)} entries in {result.pages} older pages"
        if result.failure:
            note += f"; {_said(result.failure)}"
        return Completion(result.entries, 0 if result.complete else plan.estimate, note)
    if plan.estimate:
        return Completion((), plan.estimate, "possible gap; this source offers no backfill")
    return Completion()


def _said(failure: Failure) -> str:
    """A backfill's failure in a log line, with its kind, as `status` shows a feed's."""
    return f"{failure.message} [{failure.kind}]"


def _after(entry: Entry, since: datetime | None) -> bool:
    """Published at or after `since` (same-second comments are told apart by key later)."""
    return since is None or entry.published is None or entry.published >= since
