"""Typed records that the pipeline stages hand to each other.

The stages never pass dicts: a fetch produces a `FetchResult`, parsing turns its body into a
`ParsedFeed` of `Entry` records, the diff decides which entries are new, matching pairs them
with subscriptions and channels as `Delivery` rows, and rendering turns a `Notice` into the
text a channel sends. Every record is frozen so a stage cannot change what another one sees,
and every one of them pickles, so parsing can run in another process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from notifier.failures import Failure, FailureKind
from notifier.frozen import quick_init

EntryKind = Literal["post", "comment"]
FeedKind = Literal["posts", "comments"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One post or comment, normalised from whatever format the source used.

    `key` is the stable identity used to tell new from seen: the feed's guid/id, else the
    link, else a hash of the content. `content_html` is the source's HTML as served:
    untrusted, it is sanitised at render time and never stored sanitised, so a stricter
    sanitiser later applies to old entries too.
    """

    key: str
    kind: EntryKind
    title: str = ""
    author: str = ""
    author_url: str = ""
    published: datetime | None = None  # aware, UTC
    updated: datetime | None = None  # aware, UTC
    link: str = ""
    content_html: str = ""
    content_text: str = ""
    post_key: str = ""  # the post a comment belongs to (its id or permalink)
    post_title: str = ""
    post_link: str = ""
    parent_key: str = ""  # the comment this one replies to, when the source says so
    parent_author: str = ""  # the parent's author, when the source names it
    content_hash: str = ""  # digest of title+content, to notice edits
    author_hash: str = ""  # md5 of the commenter's email (Gravatar's), when the source shows it
    comments_feed: str = ""  # a post's own comment feed (wfw:commentRss, Atom rel="replies")
    comment_count: int | None = None  # a post's comment count (slash:comments, thr:total): a hint


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """What one feed document said, after normalisation."""

    title: str
    link: str  # the site or post page the feed describes
    kind: FeedKind
    entries: tuple[Entry, ...]
    generator: str = ""
    warning: str = ""  # feedparser's bozo reason when it parsed leniently
    next_url: str = ""  # the next (older) page: Blogger's and RFC 5005's `link rel="next"`
    total: int | None = None  # entries the source says exist (openSearch:totalResults)
    kind_note: str = ""  # why `kind` differs from what the document looks like (see parse)
    kind_reason: str = ""  # why the document, by itself, looks like comments or posts (parse)


@quick_init
@dataclass(frozen=True, slots=True)
class FetchResult:
    """The outcome of one HTTP fetch; failures are carried as data, never raised.

    `status` is None when no HTTP answer arrived (DNS, connection, timeout, size cap).
    `body` is None on 304 and on failure. `headers` keys are lower-case.
    """

    url: str  # what was asked for
    final_url: str  # where the body came from after redirects
    status: int | None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    permanent_url: str | None = None  # set when every redirect on the way was permanent
    error: str | None = None
    retry_after: float | None = None  # seconds, from Retry-After on 429/503
    elapsed: float = 0.0
    error_kind: FailureKind | None = None  # None with an error: HTTP if a status, else network

    @property
    def failure(self) -> Failure | None:
        """The error as a typed value: its kind and its message."""
        if self.error is None:
            return None
        kind = self.error_kind or (FailureKind.HTTP if self.status is not None
                                   else FailureKind.NETWORK)
        return Failure(kind, self.error)

    @property
    def problem(self) -> Failure:
        """Why this answer gives no body to read: its failure, else its unwanted status."""
        return self.failure or Failure(FailureKind.HTTP, f"HTTP {self.status}")

    @property
    def transient(self) -> bool:
        """Whether asking again soon may help: no answer, or a server error (5xx)."""
        return self.status is None or self.status >= 500

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300


FLOOD_ID_PREFIX = "flood-"
"""The id of a flood's summary message (a digest written by the poll that saw the flood)."""


@dataclass(frozen=True, slots=True)
class Notice:
    """Everything a template may show about one notification; see the README's table.

    Built at delivery time from stored rows, so a notification rendered after a restart
    reads the same as one rendered at once.
    """

    notification_id: str  # stable across retries: Message-ID, webhook-id
    subscription: str
    channel: str
    entry: Entry
    feed_title: str
    feed_url: str
    is_reply: bool
    parent: Entry | None  # the comment answered, when known
    missing: int = 0  # comments that may have been missed before this one
    revision: int = 0  # 0 for the first report; 1, 2, ... for each reported edit
    digest: tuple[Notice, ...] = ()
    """The notifications this one message gathers (a digest), or () for a single one.

    A digest is a Notice so that every channel kind sends it the way it sends anything: the
    renderer swaps each slot for its `digest_` variant. `entry` is then the first member's."""
