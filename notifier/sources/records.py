"""The small records adapters and their callers exchange, apart from any one platform.

    feed URL, generator, feed id, headers -> Hints -> Source.recognises
    a feed document's title, id, URLs, items -> FeedFacts -> Source.comment_document
    a comment's opening line -> Source.reply_line -> ReplyLine (its parent, the rest)
    Source.list_thread / list_window -> Backfill -> backfill merges it into the poll
    Source.probe -> SiteProbe | Failure -> Source.unexplained_change, Source.imported_posts

Why its own module: the registry in `notifier.sources` imports every adapter, and every
adapter needs these records, so they sit below both and import neither.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from notifier.failures import Failure
from notifier.models import Entry

__all__ = [
    "MAX_PAGES",
    "MAX_SECONDS",
    "Backfill",
    "FeedFacts",
    "Hints",
    "ReplyLine",
    "SiteProbe",
    "ThreadRef",
]

MAX_PAGES = 30
"""Pages fetched for one backfill: 3,000 WordPress comments, 750 Blogger ones."""
MAX_SECONDS = 60.0
"""Time for one backfill, all pages together; what arrived by then is used."""


@dataclass(frozen=True, slots=True)
class Hints:
    """What a fetched feed says about the software behind it; any field may be empty."""

    feed_url: str = ""
    generator: str = ""
    feed_id: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    api_root: str = ""  # an API root discovery found through an adapter's `api_rel`


@dataclass(frozen=True, slots=True)
class FeedFacts:
    """What a parsed feed document says about itself, to tell a comment feed from a posts one."""

    title: str = ""
    feed_id: str = ""
    urls: Sequence[str] = ()  # the URL fetched and the feed's own `rel="self"` links
    entry_titles: Sequence[str] = ()
    entry_links: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class ReplyLine:
    """A platform's own "In reply to X" line at the start of a comment, read and cut off.

    `parent_key` is the parent's key where the platform's key shape lets it be built from
    the reply's own key, else the linked URL; `english` says the exact wording matched (a
    translated one is looser, so it is trusted less).
    """

    href: str
    name: str
    rest: str
    english: bool
    parent_key: str


@dataclass(frozen=True, slots=True)
class ThreadRef:
    """One post's thread as a platform API knows it: what a full listing needs."""

    api_root: str
    post_id: str
    post_guid: str = ""
    post_title: str = ""
    post_link: str = ""


@dataclass(frozen=True, slots=True)
class Backfill:
    """What a backfill found: entries (oldest first where the source says), and how it went.

    A listing that stopped early says why as a `Failure` (a kind and a message, as a poll's
    own failure), so the log and the caller tell "no answer" from "not REST JSON".
    """

    entries: tuple[Entry, ...] = ()
    complete: bool = False  # the source was read to its end (or to entries already known)
    pages: int = 0
    failure: Failure | None = None
    transient: bool = False  # the failure may pass (no answer, 5xx): worth trying again soon


@dataclass(frozen=True, slots=True)
class SiteProbe:
    """One cheap look at a site's approved comments: how many, the newest ids, and (only
    where someone wants edits) a digest of each of those comments' text."""

    total: int  # approved comments site-wide (WordPress: X-WP-Total)
    newest_id: int
    ids: tuple[int, ...]  # newest first, at most one page
    posts: Mapping[int, int] = field(default_factory=dict)  # comment id -> its post's id
    texts: Mapping[int, str] = field(default_factory=dict)
    """Comment id -> a short digest of its text; empty when the probe did not ask for text."""
    dates: Mapping[int, float] = field(default_factory=dict)
    """Comment id -> its date (POSIX seconds), where the platform gives one: a new id with
    an old date (an import) is news a conditional read of its thread may not show."""

    def posts_since(self, previous: SiteProbe | None) -> frozenset[str]:
        """The posts that got comments newer (by id) than `previous` saw, as id strings.

        A new comment's thread is read without validators: an imported comment has a new
        id but an old date, so it does not move the site's Last-Modified either.
        """
        if previous is None:
            return frozenset()
        return frozenset(str(self.posts[i]) for i in self.ids
                         if i > previous.newest_id and i in self.posts)

    def edited_since(self, previous: SiteProbe | None) -> frozenset[str]:
        """The posts of comments whose text changed since `previous`, as id strings.

        Only comments both probes saw with text count: a comment new to this probe is found
        as new, and the first probe with text (or one after a probe without) is a baseline.
        """
        if previous is None or not previous.texts:
            return frozenset()
        return frozenset(str(self.posts[i]) for i, digest in self.texts.items()
                         if i in self.posts and previous.texts.get(i, digest) != digest)
