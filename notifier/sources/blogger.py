"""Blogger: its feed URLs, entry ids and how a reply names its parent.

    posts `/feeds/posts/default`, all comments `/feeds/comments/default`,
    one post's comments `/feeds/POSTID/comments/default` (Atom; RSS with `?alt=rss`)
    every comment's thr:in-reply-to names the post; a reply's parent is its
    `<link rel="related" href=".../feeds/BLOG/POST/comments/default/PARENT"/>`
    a gap: older pages through `link rel="next"` (generic RFC 5005 paging, in `backfill`)

Blogger numbers posts and comments from one sequence and gives both ids of one shape,
`tag:blogger.com,1999:blog-BLOG.post-ITEM`, so a parent's key can be built from its number.
The feed format is documented (GData); the test fixtures follow it, they are not captures.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from notifier.sources.base import Source
from notifier.sources.records import FeedFacts, Hints

__all__ = ["Blogger"]

ID_PREFIX = "tag:blogger.com,1999:"
_ID = re.compile(r"\Atag:blogger\.com,1999:blog-(?P<blog>\d+)\.post-(?P<item>\d+)\Z")
_COMMENT_URL = re.compile(
    r"/feeds/(?:(?P<blog>\d+)/)?(?P<post>\d+)/comments/(?:default|full|summary)/(?P<item>\d+)"
    r"(?:[?#]|\Z)"
)
_FEED_ID = re.compile(r"\Atag:blogger\.com,1999:blog-\d+(?:\.post-?\d+)?\.+comments\Z")
_COMMENT_FEED_PATH = re.compile(r"/comments/(?:default|full|summary)\b")
_POST_COMMENTS = re.compile(r"/feeds/\d+/comments/")
_FEED_TITLE_POST = re.compile(r"\AComments on:?\s+(?P<title>.+)\Z", re.S)
COMMENT_PAGE_PARAMS = frozenset({"showComment"})
COMMENT_ANCHOR = re.compile(r"#c(?P<n>\d+)\Z")
"""A comment's permalink fragment: `?showComment=<ms>#c<comment id>`."""
"""A comment's link is its post's page + `?showComment=<id>#c<id>`."""


def recognises(hints: Hints) -> bool:
    return hints.generator.lower().startswith("blogger") or hints.feed_id.startswith(ID_PREFIX)


def comment_feed_url(url: str) -> bool:
    try:
        path = urlsplit(url).path
    except ValueError:
        return False
    return bool(_COMMENT_FEED_PATH.search(path) or "/feeds/comments/" in path
                or _POST_COMMENTS.search(path))


def atom_twin(url: str) -> str | None:
    """Blogger feeds are Atom unless `?alt=rss` asks otherwise: drop it."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if "/feeds/" not in parts.path or dict(pairs).get("alt") != "rss" \
            or any(key == "feed" for key, _ in pairs):
        return None
    query = urlencode([(k, v) for k, v in pairs if k != "alt"], safe="/:")
    return urlunsplit(parts._replace(query=query))


def comment_document(facts: FeedFacts) -> bool:
    """A comment feed's id (`blog-B.comments`, `blog-B.post-P..comments`), or items most of
    which link `?showComment=`."""
    if _FEED_ID.match(facts.feed_id):
        return True
    anchored = sum(1 for link in facts.entry_links
                   if any(f"{key}=" in link for key in COMMENT_PAGE_PARAMS))
    return bool(facts.entry_links) and anchored * 2 > len(facts.entry_links)


def post_title(feed_title: str, hints: Hints) -> str | None:
    """"Comments on Blog: Post" (unverified against a live feed): cut at the first ": ", as
    post titles hold colons more often than blog names do. None: ask the next adapter."""
    if not recognises(hints):
        return None
    match = _FEED_TITLE_POST.match(feed_title)
    if match is None:
        return None
    _, colon, post = match["title"].strip().partition(": ")
    return post.strip() if colon else ""


def related_parent(links: Sequence[tuple[str, str]], key: str) -> str:
    """Blogger's `rel="related"` comment link, mapped to the parent comment's entry id.

    `https://www.blogger.com/feeds/BLOG/POST/comments/default/PARENT` becomes
    `tag:blogger.com,1999:blog-BLOG.post-PARENT`. The blog id comes from this entry's own
    id, else from the link; with neither the link itself is the best key there is.
    """
    own = _ID.match(key)
    for rel, href in links:
        if rel != "related":
            continue
        match = _COMMENT_URL.search(href)
        if match is None:
            continue
        blog = own["blog"] if own else match["blog"]
        if own and match["item"] == own["item"]:
            continue
        return f"{ID_PREFIX}blog-{blog}.post-{match['item']}" if blog else href
    return ""


class Blogger(Source):
    """The Blogger adapter: the hooks of `notifier.sources.Source` it answers."""

    name = "blogger"
    comment_page_params = COMMENT_PAGE_PARAMS
    comment_anchor = COMMENT_ANCHOR

    def recognises(self, hints: Hints) -> bool:
        return recognises(hints)

    def comment_feed(self, url: str, title: str = "") -> bool:
        return comment_feed_url(url)

    def posts_feed(self, url: str) -> bool:
        try:
            return "/feeds/posts/" in urlsplit(url).path
        except ValueError:
            return False

    def own_post_feed(self, url: str, title: str, page_url: str) -> bool | None:
        try:
            path = urlsplit(url).path
        except ValueError:
            return None
        return True if _POST_COMMENTS.search(path) else None

    def atom_twin(self, url: str) -> str | None:
        return atom_twin(url)

    def comment_document(self, facts: FeedFacts) -> bool:
        return comment_document(facts)

    def post_title(self, feed_title: str, entry_title: str, author: str,
                   hints: Hints) -> str | None:
        return post_title(feed_title, hints)

    def ref_names_post(self, key: str, ref: str) -> bool:
        return bool(_ID.match(key) and _ID.match(ref))  # Blogger always names the post here

    def related_parent(self, links: Sequence[tuple[str, str]], key: str) -> str:
        return related_parent(links, key)

    def sequence(self, key: str) -> int | None:
        # Posts and comments share one sequence of item ids: `...blog-B.post-<item>`.
        match = _ID.match(key)
        return int(match["item"]) if match and len(match["item"]) <= 18 else None
