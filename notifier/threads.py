"""`watch: threads`: a site's posts feed plus the comment feed of every recent post.

    posts feed parsed -> posts younger than `threads_max_age` with a comment feed
                      -> ThreadLinks stored with the poll (new posts join, old ones retire)
                      -> each thread feed is polled like a `watch: comments` feed

Why not the site-wide comment feed: it holds the newest 10 comments of the whole site, so a
busy site pushes a quiet thread's comment out before it is seen, and nothing can page it.
Each post's own feed holds that post's newest 10, and WordPress's REST API can backfill
each one by post id.

A post's comment feed comes from RSS2's `wfw:commentRss` or Atom's `link rel="replies"`
(RFC 4685); the platform's adapter may name a better one to follow (WordPress links the RSS2
comment feed from RSS2 posts, and its Atom twin says who answered whom). Pure: `now` is given.
"""

from __future__ import annotations

from collections.abc import Sequence

from notifier.models import Entry
from notifier.sources import Hints, source_for
from notifier.store import ThreadLink

__all__ = ["followed_threads", "retire_before"]

MAX_THREADS = 200
"""Thread feeds one subscription follows at most: the newest posts win."""


def retire_before(now: float, max_age: float) -> float:
    """Posts published before this moment are no longer followed."""
    return now - max_age


def followed_threads(subscription: str, posts: Sequence[Entry], *, now: float,
                     max_age: float, generator: str = "") -> list[ThreadLink]:
    """The comment feeds of the posts in this window that are young enough to follow.

    A post without a date is followed while it is in the window: there is no age to judge.
    `comment_count` is not used to skip posts: WordPress counts pingbacks and not held
    comments, so a zero says nothing certain about tomorrow.
    """
    cutoff = retire_before(now, max_age)
    links: dict[str, ThreadLink] = {}
    source = source_for(Hints(generator=generator))
    for entry in posts:
        if entry.kind != "post" or not entry.comments_feed:
            continue
        published = entry.published.timestamp() if entry.published else None
        if published is not None and published < cutoff:
            continue
        url = source.thread_feed(entry.comments_feed)
        links.setdefault(url, ThreadLink(subscription=subscription, url=url,
                                         post_key=entry.key, published=published))
    newest = sorted(links.values(), key=lambda link: link.published or now, reverse=True)
    return newest[:MAX_THREADS]
