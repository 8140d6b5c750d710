"""Backfill: the comments a feed window no longer shows, fetched from where the source keeps them.

    poll says "gap" or "rescan due" -> plan_follow_up (pure) -> FollowUp: how, and how many
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
(`notifier.sources`); which way to go, and what is reported, is decided here.

The decisions (is there a gap, how many may be missing, which way to fill it) are pure
functions; the fetching functions are bounded in pages and time and never raise for I/O: a
failure comes back as `Backfill.failure` (a typed `Failure`), and the poll goes on with what
the feed showed.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from notifier import sources
from notifier.failures import Failure, FailureKind
from notifier.fetch import Fetcher
from notifier.models import Entry, ParsedFeed
from notifier.sources import Source, ThreadRef
from notifier.sources.records import MAX_PAGES, MAX_SECONDS, Backfill

__all__ = [
    "MAX_PAGES",
    "Backfill",
    "Completion",
    "FollowUp",
    "feed_pages",
    "follow_up",
    "gap_suspected",
    "missing_estimate",
    "plan_follow_up",
    "post_guid_of",
]


ParseFeed = Callable[[bytes, str, dict[str, str]], Awaitable[ParsedFeed | Failure]]


# --- pure decisions ----------------------------------------------------------------------


def gap_suspected(entries: Sequence[Entry], seen: Collection[str], *, had_entries: bool
                  ) -> bool:
    """Whether comments may have arrived that this window does not show.

    Every entry new while the feed had entries before: the window moved past everything
    known, so something between may be missing -- more arrived than the window holds. A
    source's total (`openSearch:totalResults`) is not compared with what is stored: the
    store holds only what arrived since the subscription began, so they never agree.
    """
    if not entries or not had_entries:
        return False
    return all(e.key not in seen for e in entries)


def missing_estimate(total: int | None, stored: int, new: int) -> int:
    """"At least N may be missing": from the source's own count when it gives one, else 1."""
    if total is None:
        return 1
    return max(total - stored - new, 1)


def post_guid_of(entries: Sequence[Entry]) -> str:
    """The post's key as a platform's comment keys name it (WordPress: `<guid>#comment-N`)."""
    for entry in entries:
        if post := sources.post_key_of(entry.key):
            return post
    return ""


@dataclass(frozen=True, slots=True)
class FollowUp:
    """How to complete one comment-feed poll: the write-free half of `follow_up`."""

    how: Literal["none", "thread", "window", "pages", "warn"] = "none"
    estimate: int = 0  # at least this many may be missing, if nothing fills the gap
    rescan: bool = False  # a rescan with no gap: the listing finds late approvals


def plan_follow_up(parsed: ParsedFeed | None, *, api_root: str | None, post_id: str | None,
                   seen: Collection[str], had_entries: bool, stored: int,
                   rescan: bool) -> FollowUp:
    """Which way a comment feed's gap is filled, or its rescan done; pure.

    A platform API with a known post: its listing (gap or rescan); the feed was listed in
    full at its first poll, so whatever the listing shows that is not stored is new. A
    site-wide feed with an API: the listings of the posts in its window. A feed that pages
    with `rel="next"`: older pages. Neither: only the warning that some may be missing.
    """
    entries = parsed.entries if parsed is not None else ()
    if parsed is not None and parsed.kind != "comments":
        return FollowUp()
    gap = gap_suspected(entries, seen, had_entries=had_entries)
    if not gap and not rescan:
        return FollowUp()
    new = sum(1 for e in entries if e.key not in seen)
    estimate = missing_estimate(parsed.total if parsed else None, stored, new) if gap else 0
    if api_root and not post_id and gap:
        return FollowUp("window", estimate)
    if api_root and post_id:
        return FollowUp("thread", estimate, rescan=rescan and not gap)
    if gap and parsed is not None and parsed.next_url:
        return FollowUp("pages", estimate)
    if gap:
        return FollowUp("warn", estimate)
    return FollowUp()


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
