"""Backfill: the comments a feed window no longer shows, fetched from where the source keeps them.

    poll says "gap" or "rescan due" -> WordPress REST listing of the post, page by page
                                    | the feed's own `rel="next"` pages (Blogger, RFC 5005)
                                 -> entries keyed exactly like the feed's -> merged into the poll
    a reply whose parent is unknown -> WordPress REST `comments/<id>` -> the parent, to quote

Why this exists: a WordPress comment feed shows only the newest 10 comments and cannot be
paged (`?paged=2` answers an empty channel), so 11 comments between two polls would lose one
without a word. Its validators are site-wide, so a comment approved late at an old position
hides behind a 304. The REST API lists every approved comment; Blogger and RFC 5005 feeds
page with `link rel="next"`.

The decisions (is there a gap, how many may be missing, which post a feed is about) are pure
functions; the fetching functions are bounded in pages and time and never raise for I/O: a
failure comes back as `Backfill.error`, and the poll goes on with what the feed showed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from notifier.fetch import Fetcher
from notifier.models import Entry, ParsedFeed
from notifier.sources import wordpress
from notifier.sources.records import MAX_PAGES, MAX_SECONDS, Backfill
from notifier.sources.wordpress import (
    COMMENT_KEY,
    JSON_ACCEPT,
    rest_url,
    wordpress_comment,
    wordpress_comments,
    wordpress_parents,
    wordpress_post_id,
    wp_rest_comment_post,
)

__all__ = [
    "MAX_PAGES",
    "Backfill",
    "Completion",
    "complete",
    "feed_pages",
    "gap_suspected",
    "missing_estimate",
    "post_guid_of",
    "rest_url",
    "wordpress_comment",
    "wordpress_comments",
    "wordpress_parents",
    "wordpress_post_id",
]


ParseFeed = Callable[[bytes, str, dict[str, str]], Awaitable[ParsedFeed | str]]


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
    """The post's guid as WordPress keys its comments (`<guid>#comment-N`), or ""."""
    for entry in entries:
        if post := wordpress.post_key_of(entry.key):
            return post
    return ""


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
            return Backfill(tuple(found.values()), False, pages, "backfill took too long")
        visited.add(url)
        fetched = await fetcher.fetch(url)
        pages += 1
        if not fetched.ok or fetched.body is None:
            problem = fetched.error or f"HTTP {fetched.status}"
            return Backfill(tuple(found.values()), False, pages, f"next page: {problem}")
        parsed = await parse(fetched.body, fetched.final_url, fetched.headers)
        if isinstance(parsed, str):
            return Backfill(tuple(found.values()), False, pages, parsed)
        reached_known = False
        for entry in parsed.entries:
            if entry.key in known or not _after(entry, since):
                reached_known = True
            else:
                found.setdefault(entry.key, entry)
        if reached_known or not parsed.entries:
            return Backfill(tuple(found.values()), True, pages)
        url = parsed.next_url
    return Backfill(tuple(found.values()), not url, pages,
                    "" if not url else f"stopped after {pages} pages")


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


async def complete(fetcher: Fetcher, parse: ParseFeed, *, parsed: ParsedFeed | None,
                   api_root: str | None, post_id: str | None, post_guid: str,
                   seen: Collection[str], had_entries: bool, stored: int, rescan: bool,
                   since: datetime | None = None) -> Completion:
    """Fill a comment feed's gap, or rescan it, from whatever the source offers.

    WordPress with a known post: the REST listing (gap or rescan); its feed was listed in
    full at its first poll, so whatever the listing shows that is not stored is new. A
    site-wide WordPress feed: the listings of the posts in its window, and a feed that pages
    with `rel="next"`: older pages; both only back to `since`, the newest entry stored
    before the gap, because older comments never stored were there before the subscription.
    Neither: only the warning that some may be missing.
    """
    entries = parsed.entries if parsed is not None else ()
    if parsed is not None and parsed.kind != "comments":
        return Completion()
    gap = gap_suspected(entries, seen, had_entries=had_entries)
    if not gap and not rescan:
        return Completion()
    new = sum(1 for e in entries if e.key not in seen)
    estimate = missing_estimate(parsed.total if parsed else None, stored, new) if gap else 0
    if api_root and not post_id and gap:
        return await _site_wide(fetcher, api_root, entries, estimate, since)
    if api_root and post_id:
        first = entries[0] if entries else None
        result = await wordpress_comments(
            fetcher, api_root, post_id, post_guid=post_guid_of(entries) or post_guid,
            post_title=first.post_title if first else "",
            post_link=first.post_link if first else "")
        note = f"REST {'rescan' if rescan and not gap else 'backfill'}: " \
               f"{len(result.entries)} comments in {result.pages} pages"
        if result.error:
            note += f"; {result.error}"
        return Completion(result.entries, 0 if result.complete else estimate, note,
                          listing_failed=result.transient)
    if gap and parsed is not None and parsed.next_url:
        result = await feed_pages(fetcher, parsed.next_url, parse, seen, since=since)
        note = f"backfill: {len(result.entries)} entries in {result.pages} older pages"
        if result.error:
            note += f"; {result.error}"
        return Completion(result.entries, 0 if result.complete else estimate, note)
    if gap:
        return Completion((), estimate, "possible gap; this source offers no backfill")
    return Completion()


MAX_POSTS = 10
"""Posts of a site-wide feed's window backfilled after a gap; a burst is rarely wider."""


async def _site_wide(fetcher: Fetcher, api_root: str, window: Sequence[Entry],
                     estimate: int, since: datetime | None) -> Completion:
    """A site-wide feed's gap: backfill each post that has a comment in the window.

    The REST API lists comments per post id; one comment of each post tells its id. Comments
    of the gap on posts that have none in the window are not found this way, which is why
    `watch: threads` follows each post's own feed.
    """
    samples: dict[str, Entry] = {}
    for entry in window:
        if COMMENT_KEY.match(entry.key):
            samples.setdefault(entry.post_key, entry)
    chosen = list(samples.values())[:MAX_POSTS]

    async def one(sample: Entry) -> Backfill:
        match = COMMENT_KEY.match(sample.key)
        assert match is not None
        fetched = await fetcher.fetch(rest_url(api_root, f"wp/v2/comments/{match['n']}"),
                                      accept=JSON_ACCEPT)
        post_id = wp_rest_comment_post(fetched.body) if fetched.ok and fetched.body else ""
        if not post_id:
            return Backfill(error=f"REST API: no post id for {sample.link or sample.key}")
        return await wordpress_comments(fetcher, api_root, post_id, post_guid=match["post"],
                                        post_title=sample.post_title,
                                        post_link=sample.post_link)

    results = await gather_bounded([one(sample) for sample in chosen])
    found = tuple(e for result in results for e in result.entries if _after(e, since))
    complete = bool(results) and all(r.complete for r in results)
    errors = "; ".join(r.error for r in results if r.error)
    note = f"REST backfill of {len(results)} posts: {len(found)} comments" + \
        (f"; {errors}" if errors else "")
    return Completion(found, 0 if complete else estimate, note)


def _after(entry: Entry, since: datetime | None) -> bool:
    """Published at or after `since` (same-second comments are told apart by key later)."""
    return since is None or entry.published is None or entry.published >= since


async def gather_bounded(jobs: Sequence[Awaitable[Backfill]]) -> list[Backfill]:
    """Run backfills together; one that raises becomes an error result, not a lost batch."""
    results = await asyncio.gather(*jobs, return_exceptions=True)
    out: list[Backfill] = []
    for result in results:
        if isinstance(result, Backfill):
            out.append(result)
        elif isinstance(result, Exception):
            out.append(Backfill(error=f"backfill failed: {type(result).__name__}: {result}"))
        else:
            raise result
    return out
