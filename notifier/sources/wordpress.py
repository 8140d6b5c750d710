"""WordPress: its feed URLs, keys and reply line, its REST API, and the cheap change probe.

    feed/headers -> recognises -> thread feed (the Atom twin) -> comment keys `<guid>#comment-N`
    gap or rescan -> REST `wp/v2/comments?post=ID` page by page -> entries keyed like the feed
    once per site per interval -> probe_site -> unexplained_change(previous, current) -> rescan

Why a probe: WordPress's ETag and Last-Modified are site-wide, so a thread's comment feed can
answer 304 while a comment was approved late (moderation keeps its old date and position),
imported or trashed. One small REST request per site -- the newest 100 ids and the
`X-WP-Total` of approved comments -- tells whether something happened that the feeds cannot
show; `unexplained_change` decides that purely, from two probes.

Identity: a comment's guid is the post's guid + "#comment-N"; REST entries are keyed the same
way so the diff sees one comment whichever way it was read.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urljoin, urlsplit

from notifier.entrytext import (
    MAX_ENTRIES,
    ParseError,
    clip,
    map_of,
    sha256,
    squash,
    text_of,
)
from notifier.entrytext import post_link as _permalink
from notifier.htmltext import html_to_text
from notifier.httpheaders import parse_link_header
from notifier.models import Entry
from notifier.sources.records import MAX_PAGES, MAX_SECONDS, Backfill, Hints

if TYPE_CHECKING:  # a parse worker imports this module and never fetches
    from notifier.fetch import Fetcher

__all__ = [
    "API_REL",
    "COMMENT_KEY",
    "PROBE_SIZE",
    "ProbeFailure",
    "SiteProbe",
    "WordPress",
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
REST_PER_PAGE = 100  # the REST API's maximum
PROBE_SIZE = REST_PER_PAGE
"""Ids one probe sees: more new comments than this between probes cannot be accounted for."""
JSON_ACCEPT = "application/json"

_REST_POST = re.compile(r"/wp/v2/(?:posts|pages)/(?P<id>\d+)/?\Z")
_SHORTLINK_POST = re.compile(r"[?&]p=(?P<id>\d+)(?:&|\Z)")


def recognises(hints: Hints) -> bool:
    """WordPress says so in its generator, or links its REST API from every response."""
    if hints.generator.lower().startswith("wordpress"):
        return True
    return API_REL in hints.headers.get("link", "")


def post_key_of(comment_key: str) -> str:
    """The post guid a WordPress comment key starts with, or "" for another shape."""
    match = COMMENT_KEY.match(comment_key)
    return match["post"] if match else ""




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
            return Backfill(tuple(found.values()), False, pages, "backfill took too long")
        fetched = await fetcher.fetch(url, accept=JSON_ACCEPT)
        pages += 1
        if not fetched.ok or fetched.body is None:
            problem = fetched.error or f"HTTP {fetched.status}"
            transient = fetched.status is None or fetched.status >= 500
            return Backfill(tuple(found.values()), False, pages, f"REST API: {problem}",
                            transient)
        try:
            entries = parse_wp_rest_comments(fetched.body, post_title, post_link,
                                             post_guid=post_guid)
        except ParseError as exc:
            return Backfill(tuple(found.values()), False, pages, str(exc))
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


@dataclass(frozen=True, slots=True)
class SiteProbe:
    """One look at a site's approved comments: how many, and the newest ids."""

    total: int  # X-WP-Total: approved comments site-wide
    newest_id: int
    ids: tuple[int, ...]  # newest first, at most PROBE_SIZE
    posts: Mapping[int, int] = field(default_factory=dict)  # comment id -> its post's id

    def posts_since(self, previous: SiteProbe | None) -> frozenset[str]:
        """The posts that got comments newer (by id) than `previous` saw, as id strings.

        A new comment's thread is read without validators: an imported comment has a new
        id but an old date, so it does not move the site's Last-Modified either.
        """
        if previous is None:
            return frozenset()
        return frozenset(str(self.posts[i]) for i in self.ids
                         if i > previous.newest_id and i in self.posts)


@dataclass(frozen=True, slots=True)
class ProbeFailure:
    """The probe got no usable answer; the previous probe stays the baseline."""

    error: str
    transient: bool = False


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


async def probe_site(fetcher: Fetcher, api_root: str) -> SiteProbe | ProbeFailure:
    """Ask a site for its approved-comment count and newest ids: one small request."""
    url = rest_url(api_root, "wp/v2/comments", {
        "per_page": PROBE_SIZE, "orderby": "id", "order": "desc", "_fields": "id,post"})
    fetched = await fetcher.fetch(url, accept=JSON_ACCEPT)
    if not fetched.ok or fetched.body is None:
        transient = fetched.status is None or fetched.status >= 500
        return ProbeFailure(f"REST API: {fetched.error or f'HTTP {fetched.status}'}", transient)
    total_text = fetched.headers.get("x-wp-total", "").strip()
    try:
        data = json.loads(fetched.body)
    except (ValueError, RecursionError) as exc:
        return ProbeFailure(f"not WordPress REST JSON: {exc}")
    if not total_text.isdigit() or not isinstance(data, list):
        return ProbeFailure("REST API: no X-WP-Total or no comment list")
    items = [item for item in data if isinstance(item, dict)
             and isinstance(item.get("id"), int) and not isinstance(item.get("id"), bool)]
    ids = tuple(sorted((item["id"] for item in items), reverse=True))
    posts = {item["id"]: item["post"] for item in items
             if isinstance(item.get("post"), int) and not isinstance(item.get("post"), bool)}
    return SiteProbe(int(total_text), ids[0] if ids else 0, ids, posts)


@dataclass(frozen=True, slots=True)
class WordPress:
    """The WordPress adapter: the hooks of `notifier.sources.Source`."""

    name: str = "wordpress"

    def recognises(self, hints: Hints) -> bool:
        return recognises(hints)

    def post_key_of(self, comment_key: str) -> str:
        return post_key_of(comment_key)
