"""Parse and normalise: feed or REST bytes -> `ParsedFeed` / `Entry` records.

    body bytes -> feedparser (or json) -> feed kind -> one Entry per item -> thread links

feedparser reads the XML; everything it hands back is an untyped dict, so this module is the
only place that looks into those dicts, and nothing after it sees one.

Thread structure is the point of this stage: notifier exists to tell people about replies to
their comments, so each comment is given the key of the post it belongs to (`post_key`) and,
when the source says so, the key of the comment it answers (`parent_key`). The sources say it
in different ways:

- Atom threading (RFC 4685): `<thr:in-reply-to ref=...>` names the id replied to. WordPress
  points a top-level comment at the post's guid and a reply at the parent comment's guid.
- WordPress RSS2 has no thread element; a reply's text starts with
  `<p>In reply to <a href="PARENT-LINK">Name</a>.</p>`. That line is WordPress's, not the
  commenter's, so it is always removed from the content (in Atom too) after it is read.
- Blogger points every comment's `thr:in-reply-to` at the post; a reply names its parent with
  `<link rel="related" href=".../feeds/BLOG/POST/comments/default/PARENT"/>`.

Identity: WordPress builds a comment's guid as the post's guid + "#comment-N" and a comment's
link as the post's permalink (+ "comment-page-N/" when comments are paged) + "#comment-N". The
two agree only while the post's guid is its permalink (true of the fixtures, not of most blogs,
whose guids look like "https://ex.com/?p=123"). So when a comment's own key has the WordPress
shape, its post and parent keys are built from that key's prefix, never from a link: they then
equal the keys the Atom feed, the RSS feed and the posts feed use for the same things.
"""

from __future__ import annotations

import html
import io
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import feedparser

from notifier.entrytext import MAX_ENTRIES, MAX_FIELD_BYTES, ParseError
from notifier.entrytext import clip as _clip
from notifier.entrytext import get as _get
from notifier.entrytext import map_of as _map
from notifier.entrytext import post_link as _post_link
from notifier.entrytext import sha256 as _sha256
from notifier.entrytext import squash as _squash
from notifier.entrytext import text_of as _text
from notifier.htmltext import html_to_text
from notifier.models import Entry, EntryKind, FeedKind, ParsedFeed
from notifier.sources.disqus import is_disqus_feed
from notifier.sources.disqus import post_title as disqus_post_title
from notifier.sources.wordpress import COMMENT_KEY as _WP_COMMENT_KEY
from notifier.sources.wordpress import parse_wp_rest_comments, wp_rest_comment_post

__all__ = [
    "MAX_ENTRIES",
    "MAX_FIELD_BYTES",
    "THREAD_NS",
    "ParseError",
    "parse_feed",
    "parse_wp_rest_comments",
    "wp_rest_comment_post",
]

THREAD_NS = "http://purl.org/syndication/thread/1.0"

# Parsing the reply prefix only ever looks at the start of a comment.
_PREFIX_WINDOW = 8192
# WordPress: `sprintf(__('In reply to %s.'), '<a href="' . esc_url(link) . '">' . name . '</a>')`,
# then "\n\n" and the comment, then wpautop. Anchored, bounded, no nested repetition.
_WP_REPLY_PREFIX = re.compile(
    r'\A\s*(?:<p>\s*)?In reply to <a href="(?P<href>[^"<>]{1,2048})"[^<>]{0,256}>'
    r"(?P<name>[^<]{0,512})</a>\.?\s*(?:</p>|<br\s*/?>)?\s*"
)
# The same line in RSS `<description>` (the "summary" feed setting), which WordPress escapes.
_WP_REPLY_PREFIX_ESCAPED = re.compile(
    r"\A\s*In reply to &lt;a href=&quot;(?P<href>[^\"<>\s]{1,2048}?)&quot;&gt;"
    r"(?P<name>[^<]{0,512}?)&lt;/a&gt;\.?\s*"
)
# Translated sites word the prefix differently ("En réponse à %s."). Accepted only in this
# tight shape -- a short text, one link to a comment of the same post, a full stop at most, a
# paragraph of its own -- so a commenter's own opening line is seldom taken for it; in Atom it
# must also name the comment that thr:in-reply-to names.
_LOCALISED_REPLY_PREFIX = re.compile(
    r'\A\s*(?:<p>\s*)?(?P<before>[^<>]{1,80})<a href="(?P<href>[^"<>]{1,2048})"[^<>]{0,256}>'
    r"(?P<name>[^<]{0,512})</a>\s*[.。]?\s*</p>\s*"
)
_COMMENT_FRAGMENT = re.compile(r"#(?:(?:li-)?comment[-_]?|c)(?P<n>\d+)\Z")
_WP_COMMENT_ANCHOR = re.compile(r"#comment-\d+\Z")
_BLOGGER_TAG = "tag:blogger.com,1999:"
_BLOGGER_ID = re.compile(r"\Atag:blogger\.com,1999:blog-(?P<blog>\d+)\.post-(?P<item>\d+)\Z")
_BLOGGER_COMMENT_URL = re.compile(
    r"/feeds/(?:(?P<blog>\d+)/)?(?P<post>\d+)/comments/(?:default|full|summary)/(?P<item>\d+)"
    r"(?:[?#]|\Z)"
)
_BLOGGER_FEED_ID = re.compile(r"\Atag:blogger\.com,1999:blog-\d+(?:\.post-?\d+)?\.+comments\Z")
_FEED_TITLE_POST = re.compile(r"\AComments on:?\s+(?P<title>.+)\Z", re.S)
_FEED_TITLE_COMMENTS = re.compile(r"\AComments (?:on|for)\b")
_ENTRY_TITLE_POST = re.compile(r"\AComment on (?P<title>.+) by .+\Z", re.S)
_COMMENT_FEED_PATH = re.compile(r"/comments/(?:feed|default|full|summary|rss2?|atom)\b")
_WP_POST_FEED_PATH = re.compile(r"\A/.+/feed(?:/(?:atom|rss2?|rdf))?/?\Z")
_WP_ARCHIVE_FEED_PATH = re.compile(r"\A/(?:category|tag|author)/[^/]+/feed\b")
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_FEED_TYPES = ("application/atom+xml", "application/rss+xml", "application/rdf+xml")
_EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
# A `rel="replies"` link without a feed type may still be the comment feed (RFC 4685 makes
# `type` optional; feedparser then reports text/html): unless it plainly is a web page.
_SHORT = 256  # a body shorter than this is checked for text, not only for characters
_PAGE_PATH = re.compile(r"\.(?:html?|php|aspx?)\Z", re.I)


# -- reading feedparser's dicts --------------------------------------------------------------


def _maps(obj: object, key: str) -> list[Mapping[str, Any]]:
    value = _get(obj, key)
    if isinstance(value, list):
        return [item for item in value if isinstance(item, Mapping)]
    return []


def _when(obj: object, key: str) -> datetime | None:
    """feedparser's `*_parsed` values are UTC struct_times; bad and placeholder dates are None.

    Generators write a placeholder where a post has no date: Hugo its zero time
    (`0001-01-01T00:00:00Z`), others the Unix epoch. No feed is older than the 1990s, so
    anything before `_EARLIEST` says "no date", and is not stored as one.
    """
    value = _get(obj, key)
    if not isinstance(value, time.struct_time):
        return None
    try:
        when = datetime(*value[:6], tzinfo=UTC)
    except (ValueError, OverflowError):
        return None
    return when if when >= _EARLIEST else None


def _web(url: str) -> str:
    """`url` when it is an absolute http(s) address; ids such as `tag:` URIs are not links."""
    url = url.strip()
    return url if url[:8].lower().startswith(("http://", "https://")) else ""


def _link_of(raw: Mapping[str, Any]) -> str:
    """The entry's web page: its alternate HTML link, never its id dressed as a link.

    Only http(s) addresses count: an RSS `<guid isPermaLink="true">tag:...</guid>` or an
    Atom `<link href="tag:...">` names the entry, it cannot be opened.
    """
    for link in _maps(raw, "links"):
        if _text(link, "rel") == "alternate" and _text(link, "type") in ("", *_HTML_TYPES):
            href = _web(_text(link, "href"))
            if href:
                return href
    return _web(_text(raw, "link"))


def _plain(detail: Mapping[str, Any], value: str) -> str:
    """Titles may be typed HTML (Atom `type="html"`); people read them as text."""
    if _text(detail, "type") in _HTML_TYPES:
        value = html_to_text(value)
    return _squash(value)


def _content_html(raw: Mapping[str, Any], link: str) -> str:
    """The richest body the entry carries that has text, as HTML (plain text escaped).

    Full content first (HTML before other types), then the summary: an empty
    `content:encoded` beside a full `description`, or an Atom `<content src="..."/>` that
    only points elsewhere, must not hide the text the feed does carry.
    """
    contents = _maps(raw, "content")
    candidates = [
        *(c for c in contents if _text(c, "type") in _HTML_TYPES),
        *(c for c in contents if _text(c, "type") not in _HTML_TYPES),
        _map(raw, "summary_detail") or {"value": _text(raw, "summary")},
    ]
    bodies = [(c, value) for c in candidates if (value := _clip(_text(c, "value")).strip())]
    # Markup without text ("<p></p>") yields to a body with text, but an image is kept when
    # there is nothing else.
    with_text = [(c, v) for c, v in bodies if len(v) >= _SHORT or html_to_text(v).strip()]
    for chosen, value in [*with_text, *bodies][:1]:
        if _text(chosen, "type") == "text/plain":
            value = html.escape(value).replace("\n", "<br>\n")
        return _fragments_on_page(value, _text(chosen, "base"), link)
    return ""


def _fragments_on_page(value: str, base: str, link: str) -> str:
    """Point a content's `href="#x"` links at the entry's page, where the anchors are.

    feedparser resolves relative links against the document's base: the feed's URL. For a
    path that is right, but a bare fragment ("#comment-53503", a footnote) names a place in
    the page the content comes from, which is the entry's link, not the feed.
    """
    page = base.partition("#")[0]
    if not page or not link or page == link.partition("#")[0]:
        return value
    target = link.partition("#")[0]
    for quote in ('"', "'"):
        value = value.replace(f"={quote}{page}#", f"={quote}{target}#")
    return value


def _thread_keys(namespaces: object) -> tuple[str, ...]:
    """feedparser names unknown elements by the document's own prefix, whatever it is."""
    if not isinstance(namespaces, Mapping):
        return ()
    prefixes = [
        prefix
        for prefix, uri in namespaces.items()
        if isinstance(prefix, str) and prefix and isinstance(uri, str)
        and uri.strip().rstrip("/") == THREAD_NS
    ]  # fmt: skip
    return tuple(f"{prefix}_in-reply-to" for prefix in sorted(prefixes))


# -- feed kind ---------------------------------------------------------------------------------


def _is_comment_url(url: str) -> bool:
    """URL shapes that only comment feeds have (WordPress and Blogger)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    path = parts.path
    if _COMMENT_FEED_PATH.search(path):
        return True
    query = dict(parse_qsl(parts.query))
    feed = query.get("feed", "")
    # Plain permalinks: ?feed=comments-rss2, and ?p=ID&feed=rss2 for one post's comments.
    return feed.startswith("comments-") or (bool(feed) and ("p" in query or "page_id" in query))


def _looks_like_post_comment_feed(url: str, titles: Sequence[str]) -> bool:
    """A WordPress `<permalink>/feed/` whose items are titled "By: Name"."""
    try:
        path = urlsplit(url).path
    except ValueError:
        return False
    if not _WP_POST_FEED_PATH.match(path) or _WP_ARCHIVE_FEED_PATH.match(path):
        return False
    return bool(titles) and all(title.startswith("By: ") for title in titles)


def _feed_kind(
    feed: Mapping[str, Any],
    raws: Sequence[Mapping[str, Any]],
    thread_keys: Sequence[str],
    urls: Sequence[str],
) -> tuple[FeedKind, str]:
    """Comments or posts, from the strongest signal present; posts when nothing says comments.

    In order: an entry that replies to something (RFC 4685); a WordPress comment feed title
    ("Comments on: Post", "Comments on Post", "Comments for Site"); a Blogger comment feed id;
    a comment feed URL (the self link or the URL fetched: WordPress `/comments/feed/`,
    `?feed=comments-rss2`, `?p=ID&feed=rss2`, Blogger `/feeds/.../comments/default`); entries
    whose ids or links are comment anchors (`#comment-N`, Blogger `?showComment=`); last, a
    post's `/feed/` whose items are all titled "By: Name". Titles are English-only, which is
    why the URL and anchor checks exist. The second value says why, for a person reading the
    log when the subscription's `watch` says otherwise.
    """
    replying = sum(1 for raw in raws if any(_map(raw, key) for key in thread_keys))
    if replying:
        return "comments", f"{replying} of its {len(raws)} entries reply to another (RFC 4685)"
    if _FEED_TITLE_COMMENTS.match(_squash(_text(feed, "title"))):
        return "comments", "its title names comments"
    if _BLOGGER_FEED_ID.match(_text(feed, "id")):
        return "comments", "its id is a Blogger comment feed's"
    if any(_is_comment_url(url) for url in urls if url):
        return "comments", "its URL is a comment feed's"
    anchored = [
        raw for raw in raws
        if _COMMENT_FRAGMENT.search(_text(raw, "id")) or _COMMENT_FRAGMENT.search(_link_of(raw))
        or "showComment=" in _link_of(raw)
    ]  # fmt: skip
    if raws and len(anchored) * 2 > len(raws):
        return "comments", "most of its entries link to comment anchors"
    titles = [_squash(_text(raw, "title")) for raw in raws]
    if any(_looks_like_post_comment_feed(url, titles) for url in urls if url):
        return "comments", 'its entries are titled "By: name"'
    return "posts", "nothing in it says comments"


# -- comment threading -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Reply:
    """What the WordPress "In reply to" line said, and where the real content starts."""

    href: str
    name: str
    rest: str
    english: bool  # the exact WordPress wording, not the looser translated shape


def _reply_prefix(content: str, post_link: str) -> _Reply | None:
    head = content[:_PREFIX_WINDOW]
    if match := _WP_REPLY_PREFIX.match(head):
        name = html.unescape(match["name"]).strip()
        return _Reply(html.unescape(match["href"]), name, content[match.end() :], True)
    if match := _WP_REPLY_PREFIX_ESCAPED.match(head):
        # esc_url() made "&" "&#038;", then esc_html() escaped the whole line once more.
        href = html.unescape(html.unescape(match["href"]))
        name = html.unescape(match["name"]).strip()
        return _Reply(href, name, content[match.end() :], True)
    if match := _LOCALISED_REPLY_PREFIX.match(head):
        href = html.unescape(match["href"])
        if _WP_COMMENT_ANCHOR.search(href) and post_link and _post_link(href) == post_link:
            name = html.unescape(match["name"]).strip()
            return _Reply(href, name, content[match.end() :], False)
    return None


def _comment_number(url: str) -> str:
    match = _COMMENT_FRAGMENT.search(url)
    return match["n"] if match else ""


@dataclass(frozen=True, slots=True)
class _Thread:
    post_key: str = ""
    post_link: str = ""
    parent_key: str = ""
    parent_author: str = ""
    content_html: str = ""


def _thread(
    raw: Mapping[str, Any],
    key: str,
    link: str,
    content: str,
    thread_keys: Sequence[str],
    feed_ids: frozenset[str],
) -> _Thread:
    """Where a comment sits: its post, its parent, and its content without WordPress's line.

    RFC 4685 does not say whether a `ref` names the post or a comment. It is taken for a
    comment when it is the id of another entry in this feed or ends in a comment anchor
    (`#comment-N`, `#cN`), and for the post otherwise -- except on Blogger, whose `ref` is
    always the post.
    """
    in_reply_to: Mapping[str, Any] = {}
    for name in thread_keys:
        in_reply_to = _map(raw, name) or in_reply_to
    ref = _text(in_reply_to, "ref").strip()
    ref_href = _text(in_reply_to, "href").strip()
    wp_key = _WP_COMMENT_KEY.match(key)
    blogger_key = _BLOGGER_ID.match(key)

    # Does the thread element name the post or a comment?
    ref_is_comment = False
    if ref:
        blogger_ref = _BLOGGER_ID.match(ref)
        if blogger_key and blogger_ref:
            ref_is_comment = False  # Blogger always names the post here
        else:
            ref_is_comment = (
                ref in feed_ids
                or bool(_COMMENT_FRAGMENT.search(ref))
                or bool(ref_href and _COMMENT_FRAGMENT.search(ref_href))
            )

    post_link = _post_link(link)
    if not post_link and ref_href:
        post_link = _post_link(ref_href)

    parent_key = ref if ref_is_comment else ""
    parent_author = ""
    reply = _reply_prefix(content, post_link)
    if reply is not None:
        number = _comment_number(reply.href)
        if ref:
            # The thread element is authoritative; the line is only WordPress's echo of it.
            agrees = ref_is_comment and bool(number) and _comment_number(ref) == number
            if agrees or reply.english:
                content = reply.rest
            if agrees:
                parent_author = reply.name
        else:
            content = reply.rest
            parent_author = reply.name
            # The line links the parent's permalink; its key is its guid: same post, same shape.
            wp_parent = f"{wp_key['post']}#comment-{number}" if wp_key and number else ""
            parent_key = wp_parent or reply.href

    if not parent_key:
        parent_key = _blogger_parent(raw, key)

    if wp_key:
        post_key = wp_key["post"]
    elif ref and not ref_is_comment:
        post_key = ref
    else:
        post_key = post_link
    return _Thread(post_key, post_link, parent_key, parent_author, content)


def _blogger_parent(raw: Mapping[str, Any], key: str) -> str:
    """Blogger's `rel="related"` comment link, mapped to the parent comment's entry id.

    `https://www.blogger.com/feeds/BLOG/POST/comments/default/PARENT` becomes
    `tag:blogger.com,1999:blog-BLOG.post-PARENT` -- Blogger numbers posts and comments from
    one sequence and gives both ids that shape. The blog id comes from this entry's own id,
    else from the link; with neither the link itself is the best key there is.
    """
    own = _BLOGGER_ID.match(key)
    for link in _maps(raw, "links"):
        if _text(link, "rel") != "related":
            continue
        href = _text(link, "href").strip()
        match = _BLOGGER_COMMENT_URL.search(href)
        if match is None:
            continue
        blog = own["blog"] if own else match["blog"]
        if own and match["item"] == own["item"]:
            continue
        return f"tag:blogger.com,1999:blog-{blog}.post-{match['item']}" if blog else href
    return ""


def _feed_post_title(title: str, *, blogger: bool) -> str:
    """The post a per-post comment feed is about, from the feed's title.

    WordPress: "Comments on: Post" (RSS), "Comments on Post" (Atom); "Comments for Site" is
    the site-wide feed and names no post. Blogger (unverified against a live feed): "Comments
    on Blog: Post" -- cut at the first ": ", as post titles hold colons more often than blog
    names do.
    """
    match = _FEED_TITLE_POST.match(title)
    if match is None:
        return ""
    rest = match["title"].strip()
    if blogger:
        _, colon, post = rest.partition(": ")
        return post.strip() if colon else ""
    return rest


def _post_title(entry_title: str, author: str, feed_post_title: str, *, disqus: bool) -> str:
    """The post's title, from what WordPress (or Disqus) writes around it.

    A post's own comment feed is titled "Comments on: X" (RSS) or "Comments on X" (Atom); the
    site-wide feed titles each item "Comment on X by Author". Items titled "By: Author" say
    nothing. The author is cut off by name, because post titles may contain " by ".
    Disqus titles each item "Re: X".
    """
    if feed_post_title:
        return feed_post_title
    if disqus:
        return disqus_post_title(entry_title)
    match = _ENTRY_TITLE_POST.match(entry_title)
    if match is None:
        return ""
    suffix = f" by {author}"
    if author and entry_title.endswith(suffix):
        return entry_title[len("Comment on ") : -len(suffix)].strip()
    return match["title"].strip()


# -- entries -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Document:
    """What every entry of one document shares: its kind, thread namespace, feed author."""

    kind: EntryKind
    feed_post_title: str
    thread_keys: tuple[str, ...]
    feed_ids: frozenset[str]
    author: tuple[str, str]  # the feed's <author> (name, URI): Atom entries inherit it
    disqus: bool


def _author_of(detail: Mapping[str, Any], fallback: str = "") -> tuple[str, str]:
    name = _squash(_text(detail, "name") or fallback)
    return name, _text(detail, "href").strip() if name else ""


def _entry_author(raw: Mapping[str, Any], doc: _Document) -> tuple[str, str]:
    """The entry's own author, else its `<source>`'s, else the feed's (RFC 4287 4.2.1)."""
    own = _author_of(_map(raw, "author_detail"), _text(raw, "author"))
    if own[0]:
        return own
    source = _map(raw, "source")
    inherited = _author_of(_map(source, "author_detail"), _text(source, "author"))
    return inherited if inherited[0] else doc.author


def _fallback_key(kind: EntryKind, link: str, title: str, when: datetime | None,
                  content_hash: str) -> str:
    """The key of an entry without an id: its link, else its title and date, else its hash.

    A hash of the content changes with every edit, so an edited entry would look new and
    be reported again; a link or a title with its date survive an edit of the text. A
    comment's title is the feed's invention ("By: X"), so it never keys a comment.
    """
    if link:
        return link
    if title and when is not None and kind == "post":
        return "title-date:" + _sha256(title + "\n" + when.isoformat())
    return f"sha256:{content_hash}"


def _entry(raw: Mapping[str, Any], doc: _Document) -> Entry | None:
    kind = doc.kind
    title = _clip(_plain(_map(raw, "title_detail"), _text(raw, "title")))
    link = _clip(_link_of(raw))
    content = _content_html(raw, link)
    author, author_url = _entry_author(raw, doc)
    published = _when(raw, "published_parsed")
    updated = _when(raw, "updated_parsed")
    raw_id = _clip(_text(raw, "id").strip())
    if not (raw_id or link or title or content):
        return None  # an empty <item/>: nothing to key, nothing to tell

    thread = _Thread(content_html=content)
    comments_feed, comment_count = "", None
    if kind == "post":
        comments_feed, comment_count = _comments_of_post(raw, doc.thread_keys)
    if kind == "comment":
        thread = _thread(raw, raw_id or link, link, content, doc.thread_keys, doc.feed_ids)
        content = thread.content_html.strip()
    # A comment's title is made up by the feed ("By: X" here, "Comment on P by X" there,
    # none in REST), so only its content tells an edit; a post's title is its own.
    content_hash = _sha256(f"\n{content}" if kind == "comment" else f"{title}\n{content}")
    key = raw_id or _fallback_key(kind, link, title, published or updated, content_hash)
    post_title = ""
    if kind == "comment":
        post_title = _post_title(title, author, doc.feed_post_title, disqus=doc.disqus)
    return Entry(
        key=key,
        kind=kind,
        title=title,
        author=_clip(author),
        author_url=_clip(author_url),
        published=published or updated,  # Atom only requires <updated>: the best guess
        updated=updated,
        link=link,
        content_html=content,
        content_text=html_to_text(content),
        post_key=_clip(thread.post_key),
        post_title=_clip(post_title),
        post_link=_clip(thread.post_link),
        parent_key=_clip(thread.parent_key),
        parent_author=_clip(_squash(thread.parent_author)),
        content_hash=content_hash,
        comments_feed=_clip(comments_feed),
        comment_count=comment_count,
    )


def _distinct(entries: Sequence[Entry]) -> list[Entry]:
    """One entry per item: repeats dropped, different items that share an id both kept.

    Some feeds give two different items one guid (scripting.com: two posts of one day under
    the day's anchor). Within one document they are two entries; the oldest keeps the bare
    id -- it was most likely alone under it at an earlier poll -- and each other one gets the
    id with its date (else its content hash) added, which stays the same at the next poll.
    Across polls, the same id with new content is still an edit, as always.
    """
    groups: dict[str, list[Entry]] = {}
    for entry in entries:
        group = groups.setdefault(entry.key, [])
        if all(other.content_hash != entry.content_hash for other in group):
            group.append(entry)  # the same item repeated is one item
    order = {id(entry): n for n, entry in enumerate(entries)}
    renamed: dict[int, str] = {}
    taken = set(groups)
    for key, group in groups.items():
        if len(group) < 2:
            continue
        # Feeds list newest first: with equal or no dates, the one further down is older.
        oldest = min(group, key=lambda e: (e.published is None, e.published or _EARLIEST,
                                           -order[id(e)]))
        for entry in group:
            if entry is oldest:
                continue
            stamp = entry.published.isoformat() if entry.published else ""
            new_key = f"{key} @{stamp}" if stamp else f"{key} @sha256:{entry.content_hash}"
            if new_key in taken:
                new_key = f"{key} @sha256:{entry.content_hash}"
            taken.add(new_key)
            renamed[id(entry)] = new_key
    kept = [entry for group in groups.values() for entry in group]
    kept.sort(key=lambda entry: order[id(entry)])
    return [replace(entry, key=renamed[id(entry)]) if id(entry) in renamed else entry
            for entry in kept]


def _count(value: object) -> int | None:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _comments_of_post(raw: Mapping[str, Any], thread_keys: Sequence[str]) -> tuple[str, int | None]:
    """A post's own comment feed and comment count, which `watch: threads` follows.

    Atom (RFC 4685) says it with `<link rel="replies" type="application/atom+xml">` and
    `thr:total` or the link's `thr:count`; RSS2 with `wfw:commentRss` and `slash:comments`.
    The type is optional in RFC 4685 (intertwingly.net leaves it out), so an untyped
    `replies` link counts too, unless it is plainly a web page (Blogger adds a text/html one
    to `post.html#comment-form` beside its typed feed link). The count is only a hint:
    WordPress counts pingbacks and never counts held comments.
    """
    feed = ""
    count: int | None = None
    replies = [link for link in _maps(raw, "links") if _text(link, "rel") == "replies"]
    typed = [link for link in replies if _text(link, "type") in _FEED_TYPES]
    untyped = [link for link in replies if _text(link, "type") in ("", "text/html")
               and _looks_like_feed_url(_text(link, "href"))]
    for link in [*typed, *untyped][:1]:
        feed = _text(link, "href").strip()
        count = _count(_get(link, "thr:count"))
    if not feed:
        feed = _text(raw, "wfw_commentrss").strip()
    totals = [f"{key.removesuffix('_in-reply-to')}_total" for key in thread_keys]
    for key in [*totals, "thr_total", "slash_comments"]:
        value = _count(_get(raw, key))
        if value is not None:
            count = value
            break
    return (feed if feed.startswith(("http://", "https://")) else ""), count


def _looks_like_feed_url(url: str) -> bool:
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False
    return bool(parts.path) and not parts.fragment and not _PAGE_PATH.search(parts.path)


def _fill_parent_authors(entries: list[Entry]) -> list[Entry]:
    """Name a reply's parent author from the parent itself when both are in the same batch."""
    authors = {entry.key: entry.author for entry in entries if entry.author}
    return [
        replace(entry, parent_author=authors[entry.parent_key])
        if entry.parent_key and not entry.parent_author and entry.parent_key in authors
        else entry
        for entry in entries
    ]


def _not_a_feed(body: bytes, parsed: Mapping[str, Any], headers: Mapping[str, str]) -> ParseError:
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    content_type = headers.get("content-type", "").lower()
    if head.startswith((b"<!doctype html", b"<html")) or "html" in content_type:
        return ParseError("not a feed: got an HTML page")
    if head.startswith((b"{", b"[")) or "json" in content_type:
        return ParseError("not a feed: got JSON")
    reason = _get(parsed, "bozo_exception")
    return ParseError(f"no feed found: {reason or 'no RSS or Atom element'}")


def _generator(feed: Mapping[str, Any]) -> str:
    detail = _map(feed, "generator_detail")
    name = _text(detail, "name") or _text(feed, "generator")
    version = _text(detail, "version")
    return _squash(f"{name} {version}" if name and version else name)


def parse_feed(body: bytes, url: str, headers: Mapping[str, str] | None = None, *,
               expect: FeedKind | None = None) -> ParsedFeed:
    """Normalise one RSS/Atom document fetched from `url`.

    feedparser gets the bytes in a stream, never a string: a string it takes for a URL or a
    file name and goes to fetch or open. Its sanitiser is off because it is both slow and not
    strict enough; content is sanitised at render time. A document that parsed only leniently
    is still used, with feedparser's complaint kept in `warning`.

    `expect` is the kind the subscriptions reading this feed watch. It wins over what the
    document looks like: a Mastodon timeline whose only entry answers another toot looks like
    a comment feed, but a person who asked for its posts expects its posts. `kind_note` then
    says what the document looked like and why it was read otherwise.
    """
    if not body.strip():
        raise ParseError("no feed found: empty body")
    response_headers = {key.lower(): value for key, value in (headers or {}).items()}
    response_headers["content-location"] = url
    parsed: Mapping[str, Any] = feedparser.parse(
        io.BytesIO(body), response_headers=response_headers, sanitize_html=False
    )
    all_raws = _maps(parsed, "entries")
    if not _text(parsed, "version") and not all_raws:
        raise _not_a_feed(body, parsed, response_headers)
    feed = _map(parsed, "feed")
    raws = all_raws[:MAX_ENTRIES]

    warnings = []
    if _get(parsed, "bozo"):
        warnings.append(str(_get(parsed, "bozo_exception") or "malformed feed"))
    if len(all_raws) > MAX_ENTRIES:
        warnings.append(f"ignored {len(all_raws) - MAX_ENTRIES} entries beyond {MAX_ENTRIES}")

    thread_keys = _thread_keys(_get(parsed, "namespaces"))
    self_links = [
        _text(link, "href") for link in _maps(feed, "links") if _text(link, "rel") == "self"
    ]
    detected, why = _feed_kind(feed, raws, thread_keys, [*self_links, url])
    kind = expect or detected
    kind_note = ""
    if kind != detected:
        kind_note = (f"read as {kind}, as its subscriptions watch {kind}, though it looks like "
                     f"{detected}: {why}")
    title = _clip(_plain(_map(feed, "title_detail"), _text(feed, "title")))
    blogger = _text(feed, "generator") == "Blogger" or _text(feed, "id").startswith(_BLOGGER_TAG)
    feed_post_title = _feed_post_title(title, blogger=blogger) if kind == "comments" else ""

    entry_kind: EntryKind = "comment" if kind == "comments" else "post"
    atom = _text(parsed, "version").startswith("atom")
    doc = _Document(
        kind=entry_kind,
        feed_post_title=feed_post_title,
        thread_keys=thread_keys,
        feed_ids=frozenset(_text(raw, "id").strip() for raw in raws) - {""},
        author=_author_of(_map(feed, "author_detail"), _text(feed, "author")) if atom else ("", ""),
        disqus=is_disqus_feed([*self_links, _text(feed, "link"), url]),
    )
    entries = _distinct([entry for raw in raws if (entry := _entry(raw, doc)) is not None])
    if entry_kind == "comment":
        entries = _fill_parent_authors(entries)

    next_links = [
        _text(link, "href").strip() for link in _maps(feed, "links") if _text(link, "rel") == "next"
    ]
    return ParsedFeed(
        title=title,
        link=_clip(_text(feed, "link").strip().partition("#")[0]),
        kind=kind,
        entries=tuple(entries),
        kind_note=kind_note,
        generator=_clip(_generator(feed)),
        warning="; ".join(warnings),
        next_url=_clip(next(
            (href for href in next_links if href.startswith(("http://", "https://"))), "")),
        total=_count(_get(feed, "opensearch_totalresults")),
    )
