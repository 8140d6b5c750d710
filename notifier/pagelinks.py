"""What a fetched page or body says about feeds: which it links, which to poll. Pure.

    a page's bytes -> its <head> (bounded, hostile-safe) -> <link rel="alternate"> feeds
                   (the body too, bounded, when the head names none) -> find_feed_links
                   -> choose_feed(watch): the post's own comment feed, the site's, or posts
    a body + its Content-Type -> looks_like_feed (the first element decides, not the label)
    a page's Link header or <link> with an adapter's `api_rel` -> find_api_root

Why apart from `discover`, which fetches: these rules are decided from bytes and headers
only, so they are tested on captured pages without a server, and `discover` holds only the
order of requests. What marks a comment feed, which is a post's own, and where a feed's Atom
twin lives are each platform's conventions, asked of the adapters in `notifier.sources`.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Literal
from urllib.parse import urljoin, urlsplit

from notifier.httpheaders import parse_link_header
from notifier.sources import API_RELS
from notifier.sources import atom_twin as _atom_twin
from notifier.sources import is_comment_feed as _is_comment_feed
from notifier.sources import own_post_feed as _own_post_feed

Watch = Literal["posts", "comments"]

FEED_TYPES = ("application/atom+xml", "application/rss+xml", "application/feed+json")
# Enough for any real <head>; hostile pages cannot make the parser work longer than this.
HEAD_LIMIT = 512 * 1024
# A page whose <head> names no feed is read this far for a feed <link> in its body: YouTube
# puts its channel feed's after 400 KB of inline script.
PAGE_LIMIT = 2 * 1024 * 1024
SNIFF_LIMIT = 16 * 1024

_FEED_CONTENT_TYPES = frozenset(
    {"application/rss+xml", "application/atom+xml", "application/rdf+xml"}
)
_FEED_ROOTS = frozenset({"rss", "feed", "rdf:rdf"})


@dataclass(frozen=True)
class FeedLink:
    """One feed a page advertises with `<link rel="alternate">`."""

    url: str
    type: str
    title: str


@dataclass(frozen=True)
class _LinkElement:
    """One `<link>` of a page, with the attributes that say whether it names a feed."""

    rel: tuple[str, ...]
    type: str
    title: str
    href: str


class _TagParser(HTMLParser):
    """Parses one start tag's attributes: quoting rules and entity decoding come from stdlib."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.attrs: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attrs = {}
        for name, value in attrs:
            self.attrs.setdefault(name, value or "")

    def attributes(self, tag_text: str) -> dict[str, str]:
        self.reset()
        self.attrs = {}
        self.feed(tag_text)
        return self.attrs


@dataclass(frozen=True)
class _Head:
    """The `<link>`s read from a page and the base URL they are resolved against."""

    links: tuple[_LinkElement, ...]
    base_url: str
    end: int = 0  # where reading stopped, in characters


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_TAG_NAME = re.compile(r"[a-z][a-z0-9:_-]*")
_MARKUP_START = re.compile(r"<[a-z!/?]")
# Inside a tag, only a quote right after "=" opens a value that may hide a ">".
_TAG_STOP = re.compile(r"""=[ \t\n\r\f]*(["'])|>""")
_RAW_TEXT = frozenset({"script", "style", "textarea", "title", "xmp", "iframe", "noembed"})
MAX_TAG = 16 * 1024
MAX_LINKS = 500


def _tag_end(text: str, pos: int) -> int:
    """Index of the ">" closing the tag whose attributes start at `pos`, or -1."""
    while True:
        match = _TAG_STOP.search(text, pos)
        if match is None:
            return -1
        quote = match.group(1)
        if quote is None:
            return match.start()
        close = text.find(quote, match.end())
        if close < 0:
            return -1
        pos = close + 1


def _join(base: str, href: str) -> str | None:
    """An absolute http(s) URL for `href`, or None for garbage and javascript:/data: links."""
    try:
        url = urljoin(base, href)
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return None
    return url if scheme in ("http", "https") else None


def _decode(html: bytes | str, limit: int) -> str:
    if isinstance(html, str):
        return html[:limit]
    # Link hrefs and feed titles in a <head> are nearly always UTF-8 or ASCII; a wrong guess
    # only garbles a title, never a URL (they are percent-encoded or ASCII in practice).
    return html[:limit].decode("utf-8", errors="replace")


def _link_element(tags: _TagParser, tag_text: str) -> _LinkElement | None:
    attrs = tags.attributes(tag_text)
    href = attrs.get("href", "").strip()
    if not href:
        return None
    return _LinkElement(
        rel=tuple(attrs.get("rel", "").lower().split()),
        type=attrs.get("type", "").split(";")[0].strip().lower(),
        title=" ".join(attrs.get("title", "").split()),
        href=href,
    )


def _parse_head(html: bytes | str, base_url: str) -> _Head:
    """Reads `<link>` and `<base>` up to `</head>` or `<body>`, in linear time.

    Not `HTMLParser.feed()` on the whole page: on Python 3.11 it is quadratic on unclosed
    comments, `<?`, `</` or `<a` runs (measured: 20 s to 150 s for 2 MB; CPython gh-135462,
    CVE-2025-6069, and CVE-2026-15308 is still open). This scanner jumps with `find()` and
    gives up at the first construct that never closes, so every byte is looked at a bounded
    number of times. HTMLParser still parses each wanted tag, one bounded tag at a time.
    `end` is where reading stopped, for `_body_links` to go on from.
    """
    text = _decode(html, HEAD_LIMIT)
    lower = text.translate(_ASCII_LOWER)  # same length as text, unlike str.lower()
    tags = _TagParser()
    links: list[_LinkElement] = []
    base: str | None = None
    i, n = 0, len(text)
    while i < n:
        markup = _MARKUP_START.search(lower, i)  # skips runs of "<" that start nothing, in C
        if markup is None:
            i = n
            break
        j = markup.start()
        i = j  # where to go on from if this construct does not close within the window
        if lower.startswith("<!--", j):
            k = lower.find("-->", j + 4)
            if k < 0:
                break
            i = k + 3
            continue
        if lower.startswith("</", j):
            name_match = _TAG_NAME.match(lower, j + 2)
            if name_match is not None and name_match.group() == "head":
                break
            k = lower.find(">", j + 2)
            if k < 0:
                break
            i = k + 1
            continue
        if lower.startswith(("<!", "<?"), j):
            k = lower.find(">", j + 2)
            if k < 0:
                break
            i = k + 1
            continue
        name_match = _TAG_NAME.match(lower, j + 1)
        if name_match is None:
            i = j + 1
            continue
        name = name_match.group()
        if name == "body":
            break
        end = _tag_end(text, name_match.end())
        if end < 0:
            break
        i = end + 1
        wanted = name == "base" or (name == "link" and len(links) < MAX_LINKS)
        if wanted and end - j <= MAX_TAG:
            element = _link_element(tags, text[j : end + 1])
            if element is not None and name == "link":
                links.append(element)
            elif element is not None and name == "base" and base is None:
                base = element.href
        if name in _RAW_TEXT:
            close = lower.find("</" + name, i)
            if close < 0:
                break
            i = close
    resolved_base = (_join(base_url, base) if base else None) or base_url
    return _Head(tuple(links), resolved_base, i)


# In the body only feed <link>s matter, and what may hide one: comments and raw text.
_BODY_STOP = re.compile(r"<(?:!--|(link|script|style|textarea|title|xmp|iframe|noembed)"
                        r"(?=[ \t\n\r\f/>]))")


def _body_links(html: bytes | str, start: int) -> list[_LinkElement]:
    """`<link>` elements after the head, up to `PAGE_LIMIT`: HTML allows them in the body.

    Jumps from one construct that matters to the next with one regular-expression search
    (no backtracking: a literal prefix and a fixed set of names), so a page costs time in
    proportion to its length, like `_parse_head`.
    """
    text = _decode(html, PAGE_LIMIT)
    lower = text.translate(_ASCII_LOWER)
    tags = _TagParser()
    links: list[_LinkElement] = []
    i, n = start, len(text)
    while i < n and len(links) < MAX_LINKS:
        match = _BODY_STOP.search(lower, i)
        if match is None:
            break
        j = match.start()
        name = match.group(1)
        if name is None:  # a comment
            k = lower.find("-->", j + 4)
            if k < 0:
                break
            i = k + 3
            continue
        end = _tag_end(text, match.end())
        if end < 0:
            break
        i = end + 1
        if name == "link":
            element = _link_element(tags, text[j : end + 1]) if end - j <= MAX_TAG else None
            if element is not None:
                links.append(element)
            continue
        close = lower.find("</" + name, i)
        if close < 0:
            break
        i = close + 2
    return links


def _feed_links(head: _Head) -> list[FeedLink]:
    found: list[FeedLink] = []
    seen: set[str] = set()
    for link in head.links:
        if "alternate" not in link.rel or link.type not in FEED_TYPES:
            continue
        url = _join(head.base_url, link.href)
        if url is None or url in seen:
            continue
        seen.add(url)
        found.append(FeedLink(url=url, type=link.type, title=link.title))
    return found


def page_feed_links(html: bytes | str, base_url: str) -> tuple[_Head, list[FeedLink]]:
    """The head's feed links; the whole page's when the head has none."""
    head = _parse_head(html, base_url)
    links = _feed_links(head)
    if not links:
        links = _feed_links(_Head(tuple(_body_links(html, head.end)), head.base_url))
    return head, links


def find_feed_links(html: bytes | str, base_url: str) -> list[FeedLink]:
    """RSS, Atom and JSON feeds a page advertises, in document order, URLs made absolute.

    The `<head>` is where feeds are announced and is read first; only when it names none is
    the rest of the page read too (bounded), so a feed `<link>` in the body is found without
    letting a widget's link in the body override the site's own.
    """
    return page_feed_links(html, base_url)[1]


def api_root_from_headers(headers: Mapping[str, str], base_url: str) -> str | None:
    for name, value in headers.items():
        if name.lower() != "link":
            continue
        for url, params in parse_link_header(value, base_url):
            if API_RELS.intersection(params.get("rel", "").lower().split()):
                return url
    return None


def api_root_from_head(head: _Head) -> str | None:
    for link in head.links:
        if API_RELS.intersection(link.rel):
            return _join(head.base_url, link.href)
    return None


def find_api_root(
    html: bytes | str | None, headers: Mapping[str, str], base_url: str
) -> str | None:
    """A platform's API root (WordPress's REST API lists every comment where feeds show 10).

    The header is checked first: WordPress sends it on feeds and pages alike, and reading
    it costs no HTML parsing.
    """
    root = api_root_from_headers(headers, base_url)
    if root is None and html:
        root = api_root_from_head(_parse_head(html, base_url))
    return root


def sniff_root(body: bytes) -> str | None:
    """The name of the first element, skipping BOM, XML declaration, PIs, comments, DOCTYPE.

    Returns "" when the body is not markup at all, None when the window ends undecided.
    """
    window = body[:SNIFF_LIMIT]
    if window.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = window.decode("utf-16", errors="replace")
    else:
        text = window.decode("latin-1")
    text = text.removeprefix("\ufeff").removeprefix("\xef\xbb\xbf")
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n\ufeff":
            i += 1
        if i >= n:
            return None
        if text[i] != "<":
            return ""
        if text.startswith("<?", i):
            end = text.find("?>", i + 2)
            if end < 0:
                return None
            i = end + 2
        elif text.startswith("<!--", i):
            end = text.find("-->", i + 4)
            if end < 0:
                return None
            i = end + 3
        elif text.startswith("<!", i):
            end = text.find(">", i + 2)  # DOCTYPE; an internal subset is not worth handling
            if end < 0:
                return None
            i = end + 1
        else:
            match = re.match(r"<([A-Za-z_][\w.:-]*)", text[i : i + 100])
            return match.group(1).lower() if match else ""
    return None


def looks_like_feed(body: bytes, content_type: str) -> bool:
    """A cheap test of whether a response is a feed (RSS, Atom, RDF or JSON Feed).

    The document's first element decides when there is one, because servers mislabel:
    feeds go out as text/html or text/plain, and error pages as application/rss+xml.
    """
    media = content_type.split(";")[0].strip().lower()
    start = body[:SNIFF_LIMIT].lstrip()
    if not start:
        return False
    if media in ("application/feed+json", "application/json") or start[:1] == b"{":
        head = body[:2048]
        return media == "application/feed+json" or b"jsonfeed.org/version" in head
    root = sniff_root(body)
    if root is not None:
        local = root.split(":")[-1]
        return root in _FEED_ROOTS or local == "feed"
    return media in _FEED_CONTENT_TYPES


def is_comments_feed(link: FeedLink) -> bool:
    """A comment feed, by URL convention first, else by title (`sources.is_comment_feed`).

    The URL decides when a platform's convention speaks either way (`/comments/feed/` is
    comments, a site's `/feed/` is posts, whatever its title). `<permalink>/feed/` may be a
    post's comment feed or a subfolder site's posts feed, so for it the title decides.
    """
    return _is_comment_feed(link.url, link.title)


def is_post_comments_feed(link: FeedLink, page_url: str) -> bool:
    """A comment feed for the one post shown on `page_url`, not the whole site's."""
    return is_comments_feed(link) and _own_post_feed(link.url, link.title, page_url)


def _rank(link: FeedLink) -> int:
    """JSON Feed last: the parse stage reads XML feeds, and sites that offer JSON offer both."""
    return 1 if link.type == "application/feed+json" else 0


def choose_feed(links: list[FeedLink], page_url: str, watch: Watch) -> FeedLink | None:
    """The feed to poll among those a page advertises, or None if none fits.

    posts: the first feed that is not a comments feed. comments: the post's own comment feed
    when the page is a post, else the site-wide comments feed.
    """
    ordered = sorted(links, key=_rank)  # stable: document order within a rank
    comment_feeds = [link for link in ordered if is_comments_feed(link)]
    if watch == "posts":
        return next((link for link in ordered if link not in comment_feeds), None)
    for link in comment_feeds:
        if is_post_comments_feed(link, page_url):
            return link
    return comment_feeds[0] if comment_feeds else None


def atom_variant(url: str) -> str | None:
    """The Atom twin of an RSS feed URL where a platform names one (WordPress, Blogger).

    None also when the URL already is Atom: there is nothing better to try.
    """
    return _atom_twin(url)


__all__ = [
    "FEED_TYPES",
    "FeedLink",
    "Watch",
    "api_root_from_headers",
    "atom_variant",
    "choose_feed",
    "find_api_root",
    "find_feed_links",
    "is_comments_feed",
    "is_post_comments_feed",
    "looks_like_feed",
    "page_feed_links",
    "sniff_root",
]
