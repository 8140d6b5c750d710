"""The `Source` Protocol: every question the generic code asks a platform, with the neutral answer.

    discover  comment_feed, own_post_feed, atom_twin, api_rel    which feed to poll
    parse     comment_document, post_title, post_key_of,          what a feed and its
              reply_line, ref_names_post, related_parent,         comments are, who answers
              comment_page_path, comment_page_params,             whom, which post a link names,
              comment_anchor                                      which links are comments
    diff      sequence                                           same-second entries' order
    threads   thread_feed                                        which comment feed to follow
    complete  post_id, list_thread, list_window, fetch_parents   what a window does not show
    probe     probe, unexplained_change, imported_posts          something old changed, cheaply

Why defaults: an adapter subclasses `Source` and overrides only what its platform does
differently, so a new platform is one file of its own rules. Every default says "not mine"
(False, None, "" or nothing found); the generic code asks the adapters in registry order
and takes the first answer that is not "not mine" (`notifier.sources` has those helpers).
The hooks that take a `Fetcher` do I/O and never raise for it; all others are pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from notifier.failures import Failure
from notifier.models import Entry
from notifier.sources.records import (
    Backfill,
    FeedFacts,
    Hints,
    ReplyLine,
    SiteProbe,
    ThreadRef,
)

if TYPE_CHECKING:
    from notifier.fetch import Fetcher

__all__ = ["Source"]


class Source(Protocol):
    """A platform's rules. Subclass it; override the hooks your platform answers."""

    name: str
    api_rel: str = ""
    """The `Link` rel (header or `<link>`) naming the platform's API root, if it has one."""
    comment_page_path: re.Pattern[str] | None = None
    """The path suffix the platform adds to a post's URL for one page of its comments
    (WordPress: `/comment-page-2/`); a comment's link without it is its post's page."""
    comment_page_params: frozenset[str] = frozenset()
    """Query keys that only locate a comment on its post's page (WordPress: `cpage`)."""
    comment_anchor: re.Pattern[str] | None = None
    """The URL fragment that locates one of the platform's comments on its post's page,
    the comment's number as group `n`, anchored at the end (WordPress: `#comment-7`)."""

    def recognises(self, hints: Hints) -> bool:
        """Whether this feed (URL, generator, feed id, headers) is this platform's."""
        return False

    # -- feeds: discover and parse -----------------------------------------------------------

    def comment_feed(self, url: str, title: str = "") -> bool:
        """Whether a feed URL (or the title a page gives its `<link>`) is a comment feed's."""
        return False

    def posts_feed(self, url: str) -> bool:
        """Whether a feed URL is, by the platform's convention, a posts feed: then no title
        can make it a comment feed ("Comment Central » Feed" at a site's `/feed/`)."""
        return False

    def own_post_feed(self, url: str, title: str, page_url: str) -> bool | None:
        """Whether comment feed `url` is the one post's shown on `page_url` (None: no sign)."""
        return None

    def atom_twin(self, url: str) -> str | None:
        """The Atom version of an RSS feed URL, preferred for its reply structure (RFC 4685)."""
        return None

    def thread_feed(self, url: str) -> str:
        """Which URL to follow for a post's comment feed, as a posts feed names it."""
        return url

    def comment_document(self, facts: FeedFacts) -> bool:
        """Whether a fetched feed's own title, id or items say it holds comments (its URL is
        asked of `comment_feed`)."""
        return False

    def post_title(self, feed_title: str, entry_title: str, author: str,
                   hints: Hints) -> str | None:
        """The post a comment is about, from the titles the platform writes around it."""
        return None

    # -- threads: who answers whom -------------------------------------------------------------

    def post_key_of(self, comment_key: str) -> str:
        """The post's key a comment key of this platform names, or "" if not its shape."""
        return ""

    def reply_line(self, content: str, post_link: str, key: str) -> ReplyLine | None:
        """The platform's "In reply to" line opening a comment's content, if there is one."""
        return None

    def ref_names_post(self, key: str, ref: str) -> bool:
        """Whether this platform's `thr:in-reply-to ref` always names the post, never a reply."""
        return False

    def related_parent(self, links: Sequence[tuple[str, str]], key: str) -> str:
        """A reply's parent key from the entry's (rel, href) links, or ""."""
        return ""

    def sequence(self, key: str) -> int | None:
        """The platform's own running number of an entry (a comment's id) from its key,
        which orders entries that share a timestamp; None: not this platform's key shape."""
        return None

    # -- completing a window: I/O where a Fetcher is taken -------------------------------------

    def post_id(self, headers: Mapping[str, str], url: str) -> str:
        """The post id a per-post comment feed answers for, from its response, or ""."""
        return ""

    async def list_thread(self, fetcher: Fetcher, thread: ThreadRef) -> Backfill | None:
        """Every comment of one post from the platform's API (None: no such listing)."""
        return None

    async def list_window(self, fetcher: Fetcher, api_root: str, window: Sequence[Entry],
                          since: datetime | None) -> Sequence[Backfill] | None:
        """A site-wide feed's gap: list the threads its window names (None: cannot)."""
        return None

    async def fetch_parents(self, fetcher: Fetcher, wanted: Mapping[str, str | None]
                            ) -> dict[str, Entry]:
        """The comments with these keys (key -> API root), those the API will show."""
        return {}

    async def probe(self, fetcher: Fetcher, api_root: str, *, edits: bool = False
                    ) -> SiteProbe | Failure | None:
        """One small request saying how many comments a site has (None: no such probe);
        with `edits`, also a digest of its newest comments' texts (`SiteProbe.texts`), so
        that an edit, which moves no count or validator, is found within one interval."""
        return None

    def unexplained_change(self, previous: SiteProbe | None, current: SiteProbe) -> bool:
        """Pure: whether two probes differ by more than new comments explain."""
        return False

    def imported_posts(self, previous: SiteProbe | None, current: SiteProbe) -> frozenset[str]:
        """Pure: the posts (ids) of new comments that their thread's feed may not show,
        read conditionally or not (WordPress: an imported comment, a new id at an old date);
        their threads are rescanned."""
        return frozenset()
