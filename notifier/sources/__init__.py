"""Platforms: one adapter per blog platform, behind one Protocol, asked in registry order.

The adapters today: `wordpress.py`, `blogger.py`, `disqus.py`, and `generic.py` (any
RSS/Atom, asked last). Each is a `Source` (`base.py`); the records they exchange with the
generic code are in `records.py`. Where the generic code asks them, by stage:

    discover: which feed to poll     -> is_comment_feed, own_post_feed, atom_twin, API_RELS
    parse: what the feed says        -> comment_document, post_title, post_key_of,
                                        reply_line, ref_names_post, related_parent,
                                        post_link (comment-page markers),
                                        comment_number (comment anchors)
    diff: same-second order          -> sequence (a comment's id, from its key)
    threads: which threads to follow -> source_for(hints).thread_feed
    poll.complete: what a window     -> post_id, fetch_parents (asked of all);
      does not show                     source_for(hints).list_thread / list_window
    poll.probe, poll.news:           -> source_for(hints).probe (I/O), .unexplained_change,
      what changed cheaply              .imported_posts (pure)

Why: platform rules (WordPress's `#comment-N` keys, "In reply to" line and REST API,
Blogger's ids and related links) used to be spread over five modules; one file per platform
keeps the generic algorithms (RFC 4685 threading, RFC 5005 paging, the diff) free of them,
and lets the next platform be added without touching those algorithms.

Two ways the generic code asks:
- a rule that shows in the thing itself (a key shape, a URL shape, a reply line) is asked of
  every adapter in `SOURCES` order, and the first answer that is not "not mine" wins (the
  helpers below): a WordPress feed whose generator was stripped is still read right;
- what needs the platform known (its API, its probe) goes to `source_for(hints)`, the first
  adapter that recognises the feed;
- facts that only add up (each platform's comment-page markers, its API `Link` rel) are
  joined over all adapters (`post_link`, `API_RELS`).

No URL shape of a platform is written outside this folder: `tests/test_shape.py` fails when a
pattern elsewhere matches one (a comment anchor, a comment page, a REST route).

To add a platform (Discourse, Reddit, Hacker News, Mastodon, Lemmy are planned):
1. Write one file, `notifier/sources/<name>.py`, with a class that subclasses `Source`
   (`notifier.sources.base`: every hook, each with its neutral answer) and overrides the
   hooks the platform answers; keep its URL shapes, key regexes and comment-page markers
   there as module constants, each fact defined once. Import only the layer below the
   adapters (`ADAPTER_IMPORTS`: `entrytext`, `failures`, `fetch`, `htmltext`,
   `httpheaders`, `models`, `sources.base/records`): never `parse`, `discover` or
   `backfill`, which ask the adapters. Failures of its I/O hooks are `Failure` values.
2. Add an instance to `SOURCES`, before `Generic()` (which recognises every feed).
3. Test it with real captured responses served by a loopback server (`tests/support/`);
   `tests/test_sources.py` shows a platform added as one class.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING

from notifier import entrytext
from notifier.sources.base import Source
from notifier.sources.blogger import Blogger
from notifier.sources.disqus import Disqus
from notifier.sources.generic import Generic
from notifier.sources.records import (
    Backfill,
    FeedFacts,
    Hints,
    ReplyLine,
    SiteProbe,
    ThreadRef,
)
from notifier.sources.wordpress import WordPress

if TYPE_CHECKING:
    from notifier.fetch import Fetcher
    from notifier.models import Entry

__all__ = [
    "ADAPTER_IMPORTS",
    "API_RELS",
    "SOURCES",
    "Backfill",
    "Blogger",
    "Disqus",
    "FeedFacts",
    "Generic",
    "Hints",
    "ReplyLine",
    "SiteProbe",
    "Source",
    "ThreadRef",
    "WordPress",
    "atom_twin",
    "comment_document",
    "comment_number",
    "fetch_parents",
    "is_comment_feed",
    "own_post_feed",
    "post_id",
    "post_key_of",
    "post_link",
    "post_title",
    "ref_names_post",
    "related_parent",
    "reply_line",
    "sequence",
    "source_for",
]

ADAPTER_IMPORTS: frozenset[str] = frozenset({
    "notifier.entrytext", "notifier.failures", "notifier.fetch", "notifier.htmltext",
    "notifier.httpheaders", "notifier.models", "notifier.sources.base",
    "notifier.sources.records"})
"""What an adapter may import of notifier: the layer below the generic algorithms."""

SOURCES: tuple[Source, ...] = (Disqus(), Blogger(), WordPress(), Generic())
"""Adapters in the order they are asked; the generic one last, because it says yes to all."""

API_RELS: frozenset[str] = frozenset(s.api_rel for s in SOURCES if s.api_rel)
"""`Link` rels that name a platform's API root, which discovery keeps with the feed."""


def source_for(hints: Hints, sources: Sequence[Source] | None = None) -> Source:
    """The first adapter that recognises the feed (the generic one if none does)."""
    ask = SOURCES if sources is None else sources
    return next((s for s in ask if s.recognises(hints)), ask[-1])


def is_comment_feed(url: str, title: str = "") -> bool:
    """Whether a feed URL (or its advertised title) is a comment feed: by URL first.

    A URL any platform calls a comment feed is one; a URL a platform calls its posts feed is
    not, whatever its title says; only other URLs are left to the title.
    """
    if any(s.comment_feed(url) for s in SOURCES):
        return True
    if not title or any(s.posts_feed(url) for s in SOURCES):
        return False
    return any(s.comment_feed(url, title) for s in SOURCES)


def own_post_feed(url: str, title: str, page_url: str) -> bool:
    """Whether a comment feed is the post's shown on `page_url` (False when nothing says)."""
    return next((a for s in SOURCES if (a := s.own_post_feed(url, title, page_url))
                 is not None), False)


def atom_twin(url: str) -> str | None:
    """The Atom version of an RSS feed URL, where a platform names one."""
    return next((t for s in SOURCES if (t := s.atom_twin(url)) is not None), None)


def comment_document(facts: FeedFacts) -> bool:
    """Whether any platform's conventions say this feed document holds comments."""
    return any(s.comment_document(facts) for s in SOURCES)


def post_title(feed_title: str, entry_title: str, author: str, hints: Hints) -> str:
    """The title of the post a comment is about, from the feed's and the item's titles."""
    return next((t for s in SOURCES if (t := s.post_title(feed_title, entry_title, author,
                                                          hints)) is not None), "")


def post_link(url: str) -> str:
    """A comment's link without what only locates the comment: its fragment, and every
    platform's comment-page markers (WordPress's `/comment-page-2/`, Blogger's
    `?showComment=`), so that comments on one post name one post page."""
    path, params = _page_markers(SOURCES)
    return entrytext.post_link(url, path, params)


@cache
def _page_markers(ask: tuple[Source, ...]) -> tuple[re.Pattern[str] | None, frozenset[str]]:
    """The adapters' comment-page markers, joined once per registry."""
    paths = [s.comment_page_path.pattern for s in ask if s.comment_page_path is not None]
    path = re.compile("|".join(f"(?:{p})" for p in paths)) if paths else None
    return path, frozenset().union(*(s.comment_page_params for s in ask))


def comment_number(url: str) -> str:
    """The comment number a URL's fragment names, in any platform's anchor shape
    (`...#comment-7`, `...#c7` -> "7"), or "" when no adapter reads it as a comment's."""
    return next((m["n"] for s in SOURCES if s.comment_anchor is not None
                 and (m := s.comment_anchor.search(url))), "")


def post_key_of(comment_key: str) -> str:
    """The post's key a comment key names, where a platform's key shape says it; else ""."""
    return next((p for s in SOURCES if (p := s.post_key_of(comment_key))), "")


def reply_line(content: str, post_link: str, key: str) -> ReplyLine | None:
    """A platform's "In reply to" line at the start of `content`, if one is there."""
    return next((r for s in SOURCES if (r := s.reply_line(content, post_link, key))), None)


def ref_names_post(key: str, ref: str) -> bool:
    """Whether a platform says its thr:in-reply-to `ref` names the post, not a comment."""
    return any(s.ref_names_post(key, ref) for s in SOURCES)


def related_parent(links: Sequence[tuple[str, str]], key: str) -> str:
    """A reply's parent key from its links, where a platform names parents that way."""
    return next((p for s in SOURCES if (p := s.related_parent(links, key))), "")


def sequence(key: str) -> int | None:
    """The running number a platform gave an entry (a comment's id), read from its key: the
    first adapter whose key shape it is answers (the generic one guesses from a trailing
    number). None: no order known beyond the feed's."""
    return next((n for s in SOURCES if (n := s.sequence(key)) is not None), None)


def post_id(headers: Mapping[str, str], url: str) -> str:
    """The post id a per-post comment feed answers for, where its platform's headers say."""
    return next((p for s in SOURCES if (p := s.post_id(headers, url))), "")


async def fetch_parents(fetcher: Fetcher, wanted: Mapping[str, str | None]) -> dict[str, Entry]:
    """Comments by key (key -> the API root of the feed that wants it), from the platforms
    whose key shapes and APIs allow it; the others are simply absent."""
    found: dict[str, Entry] = {}
    for source in SOURCES:
        todo = {key: root for key, root in wanted.items() if key not in found}
        if not todo:
            break
        found.update(await source.fetch_parents(fetcher, todo))
    return found
