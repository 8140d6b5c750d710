"""WordPress: its feed URLs and titles, keys and reply line, its REST API, the change probe.

    page/feed -> comment feed by URL (`/comments/feed/`, `?feed=comments-rss2`, `<post>/feed/`)
              -> its Atom twin (`.../feed/atom/`, `?feed=comments-atom`): it has thr:in-reply-to
    comment keys `<post guid>#comment-N`; a reply's RSS2 text opens "In reply to <a>Name</a>."
    gap or rescan -> REST `wp/v2/comments?post=ID` page by page -> entries keyed like the feed
    once per site per interval -> probe_site -> unexplained_change(previous, current) -> rescan
                                              -> imported_posts(previous, current) -> rescan those

Conventions (see the field notes): posts `/feed/`, all comments `/comments/feed/`, one post's
comments `<permalink>/feed/`, each with an Atom twin under `.../feed/atom/`; plain permalinks
use `?feed=rss2`, `?feed=comments-rss2` and `?p=ID&feed=rss2`, twins `?feed=atom` and
`?feed=comments-atom`. Autodiscovery titles are "Site » Feed", "Site » Comments Feed" and
"Site » Post title Comments Feed"; feed titles "Comments on: Post" (RSS), "Comments on Post"
(Atom), "Comments for Site" (site-wide), item titles "By: Name" or "Comment on Post by Name".
Titles are translated on other sites, so URLs are checked first and titles only as a fallback.

Why a probe: WordPress's ETag and Last-Modified are site-wide, so a thread's comment feed can
answer 304 while a comment was approved late (moderation keeps its old date and position),
imported or trashed. One small REST request per site -- the newest 100 ids and the
`X-WP-Total` of approved comments -- tells whether something happened that the feeds cannot
show; `unexplained_change` decides that purely, from two probes. An import (the importer,
or a plugin that copies comments with their original dates) is a new id at an old date: the
count is explained, the validators do not move, and on a thread of more than 10 comments
its feed (the newest 10 by date) does not even show it; the probe's dates tell it from a
comment made now (`imported_posts`), and only its thread is read in full. An edit moves
neither count nor validators: where a subscription wants edits, the same request carries
the comments' text, and a changed digest names the post to read in full
(`SiteProbe.edited_since`).

Identity: a comment's guid is the post's guid + "#comment-N", and its link the post's
permalink (+ "comment-page-N/" when comments are paged) + "#comment-N". The two agree only
while the post's guid is its permalink (not on most blogs, whose guids are "?p=123"), so a
comment's post and parent keys are built from its own key's prefix, never from a link, and
REST entries are keyed the same way: the diff sees one comment whichever way it was read.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from notifier.entrytext import (
    MAX_ENTRIES,
    ParseError,
    clip,
    map_of,
    sha256,
    squash,
    text_of,
)
from notifier.entrytext import post_link as _post_link
from notifier.failures import Failure, FailureKind
from notifier.htmltext import html_to_text
from notifier.httpheaders import parse_link_header
from notifier.models import Entry
from notifier.sources.base import Source
from notifier.sources.records import (
    MAX_PAGES,
    MAX_SECONDS,
    Backfill,
    FeedFacts,
    Hints,
    ReplyLine,
    SiteProbe,
    ThreadRef,
)

if TYPE_CHECKING:  # a parse worker imports this module and never fetches
    from notifier.fetch import Fetcher

__all__ = [
    "API_REL",
    "COMMENT_ANCHOR",
    "COMMENT_KEY",
    "PROBE_SIZE",
    "SiteProbe",
    "WordPress",
    "imported_posts",
    "next_link",
    "parse_wp_rest_comments",
    "probe_site",
    "rest_url",
    "unexplained_change",
    "wordpress_comment",
    "wordpress_comments",
    "wordpress_parents",
    "wordpress_post_id",
    "wp_rest_comment_post",
]

API_REL = "https://api.w.org/"
"""The `Link` rel (header or `<link>`) that names a WordPress site's REST API root."""
COMMENT_KEY = re.compile(r"\A(?P<post>.+)#comment-(?P<n>\d+)\Z", re.S)
"""A WordPress comment guid: the post's guid, then `#comment-<id>`."""
_MAX_DIGITS = 18  # a longer id is no WordPress id (and `int()` of 9,000 digits raises)
REST_PER_PAGE = 100  # the REST API's maximum
PROBE_SIZE = REST_PER_PAGE
"""Ids one probe sees: more new comments than this between probes cannot be accounted for,
and an edit of an older comment is left to `rescan`."""
TEXT_DIGEST = 16
"""Hex digits kept of each probed comment's text digest: enough to tell an edit, small to store."""
JSON_ACCEPT = "application/json"

_REST_POST = re.compile(r"/wp/v2/(?:posts|pages)/(?P<id>\d+)/?\Z")
_SHORTLINK_POST = re.compile(r"[?&]p=(?P<id>\d+)(?:&|\Z)")

# Reading the reply line only ever looks at the start of a comment.
_PREFIX_WINDOW = 8192
# `sprintf(__('In reply to %s.'), '<a href="' . esc_url(link) . '">' . name . '</a>')`,
# then "\n\n" and the comment, then wpautop. Anchored, bounded, no nested repetition.
_REPLY_PREFIX = re.compile(
    r'\A\s*(?:<p>\s*)?In reply to <a href="(?P<href>[^"<>]{1,2048})"[^<>]{0,256}>'
    r"(?P<name>[^<]{0,512})</a>\.?\s*(?:</p>|<br\s*/?>)?\s*"
)
# The same line in RSS `<description>` (the "summary" feed setting), which WordPress escapes.
_REPLY_PREFIX_ESCAPED = re.compile(
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
COMMENT_ANCHOR = re.compile(r"#(?:li-)?comment-(?P<n>\d+)\Z")
"""A comment's permalink fragment: core's `#comment-N`; themes list comments as
`<li id="li-comment-N">` and some link that."""
COMMENT_PAGE_PATH = re.compile(r"/comment-page-\d+/?\Z")
"""Paged comments (Settings > Discussion): a comment's link is the post's + `comment-page-N/`."""
COMMENT_PAGE_PARAMS = frozenset({"cpage", "replytocom"})
"""`cpage` is a comment page on sites without pretty links; `replytocom` the reply form's."""
_FEED_TITLE_POST = re.compile(r"\AComments on:?\s+(?P<title>.+)\Z", re.S)
_FEED_TITLE_COMMENTS = re.compile(r"\AComments (?:on|for)\b")
_ENTRY_TITLE_POST = re.compile(r"\AComment on (?P<title>.+) by .+\Z", re.S)
_COMMENT_FEED_PATH = re.compile(r"/comments/(?:feed|rss2?|atom)\b")
_POST_FEED_PATH = re.compile(r"\A/.+/feed(?:/(?:atom|rss2?|rdf))?/?\Z")
_ARCHIVE_FEED_PATH = re.compile(r"\A/(?:category|tag|author)/[^/]+/feed\b")


def _permalink(url: str) -> str:
    """The post's page a comment link of this platform names."""
    return _post_link(url, COMMENT_PAGE_PATH, COMMENT_PAGE_PARAMS)


_SITE_FEED_PATH = re.compile(r"/feed(?:/(?:rss2|rss|rdf|atom))?/?")
_POSTS_FEED_QUERY = frozenset({"rss2", "rss", "rdf", "atom"})
_RSS_FEED_PATH = re.compile(r"/feed(?:/(?:rss2|rss|rdf))?/?$")
_ATOM_TWIN = {"rss2": "atom", "rss": "atom", "rdf": "atom",
              "comments-rss2": "comments-atom", "comments-rss": "comments-atom"}
# WordPress translates "Comments Feed"; these stems cover its most used locales.
_COMMENT_WORDS = (
    "comment",
    "kommentar",
    "comentario",
    "comentário",
    "commenti",
    "reactie",
    "komentar",
    "коммент",
    "コメント",
    "评论",
    "評論",
    "댓글",
)


# --- feed URLs and titles (pure) ------------------------------------------------------------


def recognises(hints: Hints) -> bool:
    """WordPress says so in its generator, or links its REST API from every response."""
    if hints.generator.lower().startswith("wordpress"):
        return True
    return API_REL in hints.headers.get("link", "") or bool(hints.api_root)


def post_key_of(comment_key: str) -> str:
    """The post guid a WordPress comment key starts with, or "" for another shape."""
    match = COMMENT_KEY.match(comment_key)
    return match["post"] if match else ""


def _path_and_query(url: str) -> tuple[str, dict[str, str]]:
    try:
        parts = urlsplit(url)
    except ValueError:
        return "", {}
    return parts.path or "/", dict(parse_qsl(parts.query, keep_blank_values=True))


def comment_feed_url(url: str) -> bool:
    """`/comments/feed/` (and its Atom twin), `?feed=comments-rss2`, `?p=ID&feed=rss2`."""
    path, query = _path_and_query(url)
    feed = query.get("feed", "")
    if _COMMENT_FEED_PATH.search(path) or feed.startswith("comments-"):
        return True
    return bool(feed) and bool(query.get("p") or query.get("page_id"))


def _title_says_comments(title: str) -> bool:
    """WordPress titles its feeds "Site » What": only "What" speaks of the feed.

    A site called "Comment Central" has a posts feed titled "Comment Central » Feed".
    """
    lowered = title.rpartition("»")[2].lower()
    return any(word in lowered for word in _COMMENT_WORDS)


def posts_feed_url(url: str) -> bool:
    """The site's `/feed/` (and twins), `?feed=rss2|atom|...`, `/category|tag|author/x/feed/`."""
    path, query = _path_and_query(url)
    feed = query.get("feed", "")
    if feed:
        return feed in _POSTS_FEED_QUERY and not (query.get("p") or query.get("page_id"))
    return bool(_SITE_FEED_PATH.fullmatch(path) or _ARCHIVE_FEED_PATH.match(path))


def _permalink_of(feed_url: str) -> str | None:
    """For a `<permalink>/feed/` style URL, the permalink's path; else None."""
    path, query = _path_and_query(feed_url)
    if query.get("feed") or "/comments/feed" in path:
        return None
    trimmed = re.sub(r"/feed(?:/(?:rss2|rss|rdf|atom))?/?$", "/", path)
    if trimmed == path or trimmed == "/":
        return None
    return trimmed


def own_post_feed(url: str, title: str, page_url: str) -> bool | None:
    """A post's comment feed is `<permalink>/feed/` or `?p=ID&feed=...`; else its title says.

    Titles: "Site » Post title Comments Feed" is a post's, "Site » Comments Feed" the site's.
    """
    page_path, page_query = _path_and_query(page_url)
    _, feed_query = _path_and_query(url)
    permalink = _permalink_of(url)
    if permalink is not None:
        return page_path != "/" and page_path.startswith(permalink)
    for key in ("p", "page_id"):  # plain permalinks: the page is /?p=4, its feed /?p=4&feed=rss2
        if feed_query.get(key):
            return feed_query[key] == page_query.get(key)
    if title.endswith("Comments Feed") and "»" in title:
        return bool(title.removesuffix("Comments Feed").rsplit("»", 1)[-1].strip())
    return None


def atom_twin(url: str) -> str | None:
    """The Atom twin of an RSS feed URL (`/feed/` -> `/feed/atom/`, `?feed=rss2` -> `atom`)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "feed" for key, _ in pairs):
        twin = _ATOM_TWIN.get(dict(pairs)["feed"])
        if twin is None:
            return None
        new_pairs = [(k, twin if k == "feed" else v) for k, v in pairs]
        return urlunsplit(parts._replace(query=urlencode(new_pairs, safe="/:")))
    match = _RSS_FEED_PATH.search(parts.path)
    if match is None:
        return None
    return urlunsplit(parts._replace(path=parts.path[: match.start()] + "/feed/atom/"))


def _post_comment_feed_by_titles(url: str, titles: Sequence[str]) -> bool:
    """A post's `<permalink>/feed/` whose items are titled "By: Name"."""
    try:
        path = urlsplit(url).path
    except ValueError:
        return False
    if not _POST_FEED_PATH.match(path) or _ARCHIVE_FEED_PATH.match(path):
        return False
    return bool(titles) and all(title.startswith("By: ") for title in titles)


def comment_document(facts: FeedFacts) -> bool:
    """"Comments on: Post", "Comments on Post", "Comments for Site", or a post's `/feed/`
    whose items are all titled "By: Name"."""
    if _FEED_TITLE_COMMENTS.match(facts.title):
        return True
    return any(_post_comment_feed_by_titles(url, facts.entry_titles) for url in facts.urls if url)


def post_title(feed_title: str, entry_title: str, author: str) -> str:
    """The post's title, from what WordPress writes around it.

    A post's own comment feed is titled "Comments on: X" (RSS) or "Comments on X" (Atom);
    "Comments for Site" is the site-wide feed and names no post, whose items are titled
    "Comment on X by Author". Items titled "By: Author" say nothing. The author is cut off by
    name, because post titles may contain " by ".
    """
    if match := _FEED_TITLE_POST.match(feed_title):
        return match["title"].strip()
    match = _ENTRY_TITLE_POST.match(entry_title)
    if match is None:
        return ""
    suffix = f" by {author}"
    if author and entry_title.endswith(suffix):
        return entry_title[len("Comment on ") : -len(suffix)].strip()
    return match["title"].strip()


def reply_line(content: str, post_link: str, key: str) -> ReplyLine | None:
    """The "In reply to <a href=PARENT-LINK>Name</a>." line WordPress puts before a reply.

    RSS2 has no thread element, so this line is the only parent a reply names there; it is
    WordPress's, not the commenter's, so the caller removes it (in Atom too). The line links
    the parent's permalink, but its key is its guid: same post, so the same prefix as `key`.
    """
    head = content[:_PREFIX_WINDOW]
    reply: tuple[str, str, int, bool] | None = None
    if match := _REPLY_PREFIX.match(head):
        reply = html.unescape(match["href"]), match["name"], match.end(), True
    elif match := _REPLY_PREFIX_ESCAPED.match(head):
        # esc_url() made "&" "&#038;", then esc_html() escaped the whole line once more.
        reply = html.unescape(html.unescape(match["href"])), match["name"], match.end(), True
    elif match := _LOCALISED_REPLY_PREFIX.match(head):
        href = html.unescape(match["href"])
        if COMMENT_ANCHOR.search(href) and post_link and _permalink(href) == post_link:
            reply = href, match["name"], match.end(), False
    if reply is None:
        return None
    href, name, end, english = reply
    number = anchor["n"] if (anchor := COMMENT_ANCHOR.search(href)) else ""
    post = post_key_of(key)
    parent = f"{post}#comment-{number}" if post and number else href
    return ReplyLine(href, html.unescape(name).strip(), content[end:], english, parent)


def _rest_time(value: object) -> datetime | None:
    """`date_gmt` is UTC without an offset ("2013-10-21T15:40:00")."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def parse_wp_rest_comments(
    body: bytes, post_title: str = "", post_link: str = "", *, post_guid: str = ""
) -> tuple[Entry, ...]:
    """Comments from WordPress's `/wp-json/wp/v2/comments`, keyed the way its feeds key them.

    Feeds key a comment by its guid, `<post guid>#comment-<id>`; the API has no guid, only the
    comment's `link`. Keys are therefore built as `<post>#comment-<id>` from `post_guid` when
    the caller knows it (the post's `guid.rendered`, or the prefix of any feed key for that
    post), else from the comment's link without its fragment and `comment-page-N/`. The second
    equals the feed key only where a post's guid is its permalink. `post_title`, `post_link` and
    `post_guid` describe one post: pass them only for a `?post=ID` listing.
    """
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ParseError(f"not WordPress REST JSON: {exc}") from exc
    if isinstance(data, dict) and isinstance(data.get("code"), str):
        message = data.get("message")
        raise ParseError(f"WordPress REST error {data['code']}: {message}")
    if not isinstance(data, list):
        raise ParseError(f"not a WordPress comment list: got a JSON {type(data).__name__}")

    items: list[dict[str, Any]] = []
    for position, item in enumerate(data[:MAX_ENTRIES]):
        comment_id = item.get("id") if isinstance(item, dict) else None
        if not isinstance(comment_id, int) or isinstance(comment_id, bool):
            raise ParseError(f"not a WordPress comment list: item {position} has no integer id")
        items.append(item)

    def base_of(item: Mapping[str, Any]) -> str:
        if post_guid:
            return post_guid
        link = text_of(item, "link").strip()
        return _permalink(link) if link else post_link

    authors = {item["id"]: squash(text_of(item, "author_name")) for item in items}
    entries: list[Entry] = []
    for item in items:
        if item.get("status", "approved") != "approved":
            continue  # held or spam, visible only to a logged-in moderator: not published
        comment_id = item["id"]
        base = base_of(item)
        link = clip(text_of(item, "link").strip())
        parent = item.get("parent")
        parent_id = parent if isinstance(parent, int) and parent > 0 else 0
        content = clip(text_of(map_of(item, "content"), "rendered")).strip()
        entries.append(
            Entry(
                key=clip(f"{base}#comment-{comment_id}"),
                kind="comment",
                author=clip(authors[comment_id]),
                author_url=clip(text_of(item, "author_url").strip()),
                published=_rest_time(item.get("date_gmt")),
                link=link,
                content_html=content,
                content_text=html_to_text(content),
                post_key=clip(base),
                post_title=clip(post_title),
                post_link=clip(post_link or _permalink(link)),
                parent_key=clip(f"{base}#comment-{parent_id}") if parent_id else "",
                parent_author=clip(authors.get(parent_id, "")),
                content_hash=sha256(f"\n{content}"),
                author_hash=_avatar_hash(item),
            )
        )
    return tuple(entries)


def wp_rest_comment_post(body: bytes) -> str:
    """The post id of one comment from `/wp-json/wp/v2/comments/<id>`, or "".

    A site-wide comment feed names posts by guid only; the REST API lists a post's comments
    by its numeric id, which one of its comments tells.
    """
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return ""
    post = data.get("post") if isinstance(data, dict) else None
    return str(post) if isinstance(post, int) and not isinstance(post, bool) and post > 0 else ""


_GRAVATAR_HASH = re.compile(r"/avatar/(?P<hash>[0-9a-f]{32}|[0-9a-f]{64})(?:[?#]|\Z)")


def _avatar_hash(item: Mapping[str, Any]) -> str:
    """The Gravatar hash of the commenter's email, which `replies_to: [email]` can match.

    WordPress never shows the email itself, but its avatar URLs carry md5(lower(email))
    (sha256 on newer Gravatar setups), so a person is recognised across name changes.
    """
    for url in map_of(item, "author_avatar_urls").values():
        if isinstance(url, str) and (match := _GRAVATAR_HASH.search(url)):
            return match["hash"]
    return ""


def wordpress_post_id(headers: Mapping[str, str], base_url: str) -> str:
    """The post id a per-post WordPress comment feed answers for, from its `Link` header.

    WordPress sends `<.../wp-json/wp/v2/posts/4>; rel="alternate"; type="application/json"`
    and `<...?p=4>; rel=shortlink` with a single post's feeds and pages, never with the
    site-wide ones, so an id here also says "this feed is one post's".
    """
    value = headers.get("link", "")
    for url, params in parse_link_header(value, base_url):
        rels = params.get("rel", "").lower().split()
        if "alternate" in rels and params.get("type", "") == JSON_ACCEPT:
            match = _REST_POST.search(urlsplit(url).path)
            if match:
                return match["id"]
        if "shortlink" in rels and (match := _SHORTLINK_POST.search(url)):
            return match["id"]
    return ""


def rest_url(api_root: str, route: str, params: Mapping[str, str | int] | None = None) -> str:
    """A REST URL under `api_root`, pretty (`/wp-json/`) or plain (`/?rest_route=/`)."""
    query = urlencode(params or {})
    if "rest_route=" in api_root:
        return api_root.rstrip("/") + "/" + route + (f"&{query}" if query else "")
    base = api_root if api_root.endswith("/") else api_root + "/"
    return urljoin(base, route) + (f"?{query}" if query else "")


# --- fetching -------------------------------------------------------------------------------


async def wordpress_comments(fetcher: Fetcher, api_root: str, post_id: str, *,
                             post_guid: str, post_title: str = "", post_link: str = "",
                             max_pages: int = MAX_PAGES, max_seconds: float = MAX_SECONDS
                             ) -> Backfill:
    """Every approved comment of one post, oldest id first, keyed like the post's feed.

    The whole listing rather than `after=`: `after` compares the site's local time, and a
    comment approved late keeps its old date, so a full listing (de-duplicated by key by the
    diff) is what finds it. A busy thread of a thousand comments costs ten requests.
    """
    url = rest_url(api_root, "wp/v2/comments", {
        "post": post_id, "per_page": REST_PER_PAGE, "orderby": "id", "order": "asc"})
    found: dict[str, Entry] = {}
    deadline = time.monotonic() + max_seconds
    pages = 0
    while url and pages < max_pages:
        if time.monotonic() > deadline:
            return Backfill(tuple(found.values()), False, pages, Failure(
                FailureKind.TIMEOUT, f"backfill took longer than {max_seconds:g} s"))
        fetched = await fetcher.fetch(url, accept=JSON_ACCEPT)
        pages += 1
        if not fetched.ok or fetched.body is None:
            return Backfill(tuple(found.values()), False, pages,
                            fetched.problem.about("REST API"), fetched.transient)
        try:
            entries = parse_wp_rest_comments(fetched.body, post_title, post_link,
                                             post_guid=post_guid)
        except ParseError as exc:
            return Backfill(tuple(found.values()), False, pages,
                            Failure(FailureKind.NOT_A_FEED, str(exc)))
        for entry in entries:
            found.setdefault(entry.key, entry)
        url = next_link(fetched.headers, fetched.final_url)
        total_pages = fetched.headers.get("x-wp-totalpages", "")
        if total_pages.isdigit() and pages >= int(total_pages):
            url = ""
    return Backfill(tuple(found.values()), not url, pages)


async def wordpress_comment(fetcher: Fetcher, api_root: str, comment_id: str, *,
                            post_guid: str) -> Entry | None:
    """One comment by id: the parent a reply answers, when neither feed nor store has it.

    None when it cannot be had (trashed, held, the API closed): the reply is still reported,
    only without its quote.
    """
    fetched = await fetcher.fetch(rest_url(api_root, f"wp/v2/comments/{comment_id}"),
                                  accept=JSON_ACCEPT)
    if not fetched.ok or fetched.body is None:
        return None
    try:
        entries = parse_wp_rest_comments(b"[" + fetched.body + b"]", post_guid=post_guid)
    except ParseError:
        return None
    return entries[0] if entries else None


MAX_PARENT_FETCHES = 50
"""Parents fetched from REST at once: a quote is worth a request, not a flood."""


async def wordpress_parents(fetcher: Fetcher, wanted: Mapping[str, str | None]
                            ) -> dict[str, Entry]:
    """The comments with these keys, each from its site's REST API (key -> API root).

    Only WordPress-shaped keys (`<post guid>#comment-N`) on sites with a known API can be
    fetched; the others, and those the API will not show, are simply absent.
    """
    jobs = []
    for key, api_root in list(wanted.items())[:MAX_PARENT_FETCHES]:
        match = COMMENT_KEY.match(key)
        if api_root and match:
            jobs.append((key, wordpress_comment(fetcher, api_root, match["n"],
                                                post_guid=match["post"])))
    import asyncio  # here: the parse workers import this module and need no event loop

    results = await asyncio.gather(*(job for _, job in jobs), return_exceptions=True)
    return {key: result for (key, _), result in zip(jobs, results, strict=True)
            if isinstance(result, Entry) and result.key == key}


def next_link(headers: Mapping[str, str], base_url: str) -> str:
    """The `Link: <...>; rel="next"` page, as the REST API and RFC 5005 feeds send it."""
    for url, params in parse_link_header(headers.get("link", ""), base_url):
        if "next" in params.get("rel", "").lower().split():
            return url
    return ""


# --- the cheap change probe -----------------------------------------------------------------


def unexplained_change(previous: SiteProbe | None, current: SiteProbe) -> bool:
    """Whether the site's comment count moved by more than its new ids account for.

    New ids (above the previous newest) explain a rise of as many; anything else -- a rise
    with no new id (a comment approved late, or imported, at an old id), a fall (trash,
    spam, deletion), or more new ids than one probe shows -- needs a rescan to find. The
    first probe is only the baseline.
    """
    if previous is None:
        return False
    new = [i for i in current.ids if i > previous.newest_id]
    if len(new) >= PROBE_SIZE:
        return True  # the window is full of new ids: older ones may hide anything
    return current.total - previous.total != len(new)


def imported_posts(previous: SiteProbe | None, current: SiteProbe) -> frozenset[str]:
    """The posts of new comments dated no later than a comment of a lower id: imports.

    Ids grow with creation, and a comment is dated when it is made (a held one keeps that
    date), so a comment is dated after every comment of a lower id; made after those the
    previous probe saw, it moves the site's validators and tops its thread's feed. One that
    is not -- imported, or re-dated -- moves nothing, and a thread's feed shows only its
    newest 10 by date, so a read without validators may miss it as well: its thread is
    listed in full. Only dates of this probe's window are compared (the comments before it
    are older by id), so no date needs storing; a new id without a date is taken as made
    now. Pure, and a comment made now is never taken for an import.
    """
    if previous is None:
        return frozenset()
    posts: set[str] = set()
    latest: float | None = None  # the newest date among the lower ids seen so far
    for i in sorted(current.dates):
        when = current.dates[i]
        if i > previous.newest_id and latest is not None and when <= latest \
                and i in current.posts:
            posts.add(str(current.posts[i]))
        latest = when if latest is None else max(latest, when)
    return frozenset(posts)


async def probe_site(fetcher: Fetcher, api_root: str, *, edits: bool = False
                     ) -> SiteProbe | Failure:
    """Ask a site for its approved-comment count, newest ids and their dates: one small
    request (the dates tell an import from a comment made now: `imported_posts`).

    With `edits` (a subscription on the site wants them) the same request also asks for the
    newest comments' text (`_fields=...,content`), kept as a short digest per comment: an
    edit moves neither the count nor the site's validators, only the text. A body of about
    100 comments instead of 100 ids, still one request, and only where someone asked.
    """
    fields = "id,post,date_gmt,content" if edits else "id,post,date_gmt"
    url = rest_url(api_root, "wp/v2/comments", {
        "per_page": PROBE_SIZE, "orderby": "id", "order": "desc", "_fields": fields})
    fetched = await fetcher.fetch(url, accept=JSON_ACCEPT)
    if not fetched.ok or fetched.body is None:
        return fetched.problem.about("REST API")
    total_text = fetched.headers.get("x-wp-total", "").strip()
    try:
        data = json.loads(fetched.body)
    except (ValueError, RecursionError) as exc:
        return Failure(FailureKind.NOT_A_FEED, f"not WordPress REST JSON: {exc}")
    if not total_text.isdigit() or not isinstance(data, list):
        return Failure(FailureKind.NOT_A_FEED, "REST API: no X-WP-Total or no comment list")
    items = [item for item in data if isinstance(item, dict)
             and isinstance(item.get("id"), int) and not isinstance(item.get("id"), bool)]
    ids = tuple(sorted((item["id"] for item in items), reverse=True))
    posts = {item["id"]: item["post"] for item in items
             if isinstance(item.get("post"), int) and not isinstance(item.get("post"), bool)}
    texts = {item["id"]: sha256(text_of(map_of(item, "content"), "rendered"))[:TEXT_DIGEST]
             for item in items if edits and isinstance(item.get("content"), Mapping)}
    dates = {item["id"]: when.timestamp() for item in items
             if (when := _rest_time(item.get("date_gmt"))) is not None}
    return SiteProbe(int(total_text), ids[0] if ids else 0, ids, posts, texts, dates)


async def list_window(fetcher: Fetcher, api_root: str, window: Sequence[Entry]
                      ) -> list[Backfill]:
    """A site-wide feed's gap: the REST listing of each post that has a comment in the window.

    The REST API lists comments per post id; one comment of each post tells its id. Comments
    of the gap on posts that have none in the window are not found this way, which is why
    `watch: threads` follows each post's own feed.
    """
    samples: dict[str, Entry] = {}
    for entry in window:
        if COMMENT_KEY.match(entry.key):
            samples.setdefault(entry.post_key, entry)
    chosen = list(samples.values())[:MAX_WINDOW_POSTS]

    async def one(sample: Entry) -> Backfill:
        match = COMMENT_KEY.match(sample.key)
        assert match is not None
        fetched = await fetcher.fetch(rest_url(api_root, f"wp/v2/comments/{match['n']}"),
                                      accept=JSON_ACCEPT)
        if not fetched.ok or fetched.body is None:
            return Backfill(failure=fetched.problem.about(
                f"REST API, comment {match['n']}"), transient=fetched.transient)
        post_id = wp_rest_comment_post(fetched.body)
        if not post_id:
            return Backfill(failure=Failure(
                FailureKind.NOT_A_FEED, f"REST API: no post id for {sample.link or sample.key}"))
        return await wordpress_comments(fetcher, api_root, post_id, post_guid=match["post"],
                                        post_title=sample.post_title,
                                        post_link=sample.post_link)

    import asyncio  # here: the parse workers import this module and need no event loop

    results = await asyncio.gather(*(one(sample) for sample in chosen),
                                   return_exceptions=True)
    out: list[Backfill] = []
    for result in results:
        if isinstance(result, Backfill):
            out.append(result)
        elif isinstance(result, Exception):
            out.append(Backfill(failure=Failure(
                FailureKind.PARSER, f"backfill failed: {type(result).__name__}: {result}")))
        else:
            raise result
    return out


MAX_WINDOW_POSTS = 10
"""Posts of a site-wide feed's window backfilled after a gap; a burst is rarely wider."""


class WordPress(Source):
    """The WordPress adapter: the hooks of `notifier.sources.Source` it answers."""

    name = "wordpress"
    api_rel = API_REL
    comment_page_path = COMMENT_PAGE_PATH
    comment_page_params = COMMENT_PAGE_PARAMS
    comment_anchor = COMMENT_ANCHOR

    def recognises(self, hints: Hints) -> bool:
        return recognises(hints)

    def comment_feed(self, url: str, title: str = "") -> bool:
        return comment_feed_url(url) or (bool(title) and _title_says_comments(title))

    def posts_feed(self, url: str) -> bool:
        return posts_feed_url(url)

    def own_post_feed(self, url: str, title: str, page_url: str) -> bool | None:
        return own_post_feed(url, title, page_url)

    def atom_twin(self, url: str) -> str | None:
        return atom_twin(url)

    def thread_feed(self, url: str) -> str:
        # WordPress links the RSS2 comment feed from RSS2 posts; its Atom twin says who
        # answered whom.
        return atom_twin(url) or url

    def comment_document(self, facts: FeedFacts) -> bool:
        return comment_document(facts)

    def post_title(self, feed_title: str, entry_title: str, author: str,
                   hints: Hints) -> str | None:
        return post_title(feed_title, entry_title, author)

    def post_key_of(self, comment_key: str) -> str:
        return post_key_of(comment_key)

    def reply_line(self, content: str, post_link: str, key: str) -> ReplyLine | None:
        return reply_line(content, post_link, key)

    def sequence(self, key: str) -> int | None:
        match = COMMENT_KEY.match(key)  # the comment id: `<post guid>#comment-41`
        return int(match["n"]) if match and len(match["n"]) <= _MAX_DIGITS else None

    def post_id(self, headers: Mapping[str, str], url: str) -> str:
        return wordpress_post_id(headers, url)

    async def list_thread(self, fetcher: Fetcher, thread: ThreadRef) -> Backfill | None:
        return await wordpress_comments(fetcher, thread.api_root, thread.post_id,
                                        post_guid=thread.post_guid,
                                        post_title=thread.post_title,
                                        post_link=thread.post_link)

    async def list_window(self, fetcher: Fetcher, api_root: str, window: Sequence[Entry],
                          since: datetime | None) -> Sequence[Backfill] | None:
        return await list_window(fetcher, api_root, window)

    async def fetch_parents(self, fetcher: Fetcher, wanted: Mapping[str, str | None]
                            ) -> dict[str, Entry]:
        return await wordpress_parents(fetcher, wanted)

    async def probe(self, fetcher: Fetcher, api_root: str, *, edits: bool = False
                    ) -> SiteProbe | Failure | None:
        return await probe_site(fetcher, api_root, edits=edits)

    def unexplained_change(self, previous: SiteProbe | None, current: SiteProbe) -> bool:
        return unexplained_change(previous, current)

    def imported_posts(self, previous: SiteProbe | None, current: SiteProbe) -> frozenset[str]:
        return imported_posts(previous, current)
