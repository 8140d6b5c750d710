"""Parse and normalise: feed bytes -> `ParsedFeed` / `Entry` records.

    body bytes -> feedparser -> feed kind -> one Entry per item -> thread links (adapters)

feedparser reads the XML; everything it hands back is an untyped dict, so this module is the
only place that looks into those dicts, and nothing after it sees one.

Thread structure is the point of this stage: notifier exists to tell people about replies to
their comments, so each comment is given the key of the post it belongs to (`post_key`) and,
when the source says so, the key of the comment it answers (`parent_key`). What any feed may
say is read here: Atom threading (RFC 4685), where `<thr:in-reply-to ref=...>` names the id
replied to, the post or a comment. What one platform says its own way (WordPress's "In reply
to" line and `#comment-N` keys, Blogger's related links and feed ids, feed-title wording) is
asked of the adapters in `notifier.sources`, so this module holds no platform's rules.
"""

from __future__ import annotations

import functools
import html
import io
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import feedparser

from notifier import feedparser_shortcuts, sources
from notifier.entrytext import (
    AUTHOR_DATE_KEY,
    ENTRIES_CUT,
    HASH_KEY,
    MAX_ENTRIES,
    MAX_FIELD_BYTES,
    MAX_PERSON_BYTES,
    ParseError,
    cap_entries,
    shared_id_keys,
)
from notifier.entrytext import clip as _clip
from notifier.entrytext import get as _get
from notifier.entrytext import map_of as _map
from notifier.entrytext import sha256 as _sha256
from notifier.entrytext import squash as _squash
from notifier.entrytext import text_of as _text
from notifier.htmltext import html_to_text
from notifier.models import Entry, EntryKind, FeedKind, ParsedFeed
from notifier.sources import FeedFacts, Hints

__all__ = [
    "MAX_ENTRIES",
    "MAX_FIELD_BYTES",
    "THREAD_NS",
    "ParseError",
    "parse_feed",
]

THREAD_NS = "http://purl.org/syndication/thread/1.0"

feedparser_shortcuts.install()

try:
    from notifier import plainfeed
except (ImportError, AttributeError):  # a feedparser without the internals it calls
    plainfeed = None  # type: ignore[assignment]

# An element naming a person, whatever its prefix, then more text than a name ever holds.
_LONG_PERSON_FIELD = re.compile(
    rb"(<(?:[A-Za-z_][\w.-]{0,64}:)?(?:author|name|email|creator|managingEditor|webMaster)"
    rb"(?:\s[^<>]{0,4096})?>)([^<]{%d,})" % (MAX_PERSON_BYTES + 1))


def _cut_person(match: re.Match[bytes]) -> bytes:
    text = match[2][:MAX_PERSON_BYTES]
    amp = text.rfind(b"&", -12)
    if amp >= 0 and b";" not in text[amp:]:
        text = text[:amp]  # never half an entity
    while text and text[-1] & 0xC0 == 0x80:
        text = text[:-1]  # never half a UTF-8 character: drop the continuation bytes
    if text and text[-1] >= 0xC0:
        text = text[:-1]  # ... and the lead byte they belonged to
    return match[1] + text


# A character reference to NUL or to half a surrogate pair: feedparser's lenient parser
# crashes on the latter (`chr(0xD800).encode()`), failing the whole feed for one comment.
_BAD_CHARREF = re.compile(
    rb"&#(?:0*|[xX]0*|[xX]0*[dD][89a-fA-F][0-9a-fA-F]{2}|0*5529[6-9]|0*55[3-9]\d\d"
    rb"|0*56\d\d\d|0*57[0-2]\d\d|0*573[0-3]\d|0*5734[0-3]);")


# An entity declared in terms of other named entities: how a "billion laughs" grows (expat
# stops it only after megabytes, then feedparser's lenient parser starts over: 67 MiB for
# 0.8 KB). Feeds declare entities, if at all, as one character (`&#160;`), which stay.
_NESTED_ENTITY = re.compile(rb"<!ENTITY\s[^>]{0,4096}?&[A-Za-z_:][^>]{0,65536}>")

MAX_DEPTH = 1000
"""Elements nested deeper than this are refused before feedparser reads them: 100,000 levels
(a 300 KB body) cost it 78 MiB and 2 s; real feeds nest a few dozen at most."""
_MARKUP = re.compile(rb"<(?:!\[CDATA\[.*?\]\]>|!--.*?-->|[!?][^>]*>|(/)[^>]*>|[^>]*?(/?)>)",
                     re.S)


def defuse(body: bytes) -> bytes:
    """What feedparser must not see: overlong person fields, references to NUL or to lone
    surrogates (replaced by U+FFFD, as a decoder would), entities built of entities, elements
    nested without end. See also `cap_entries`."""
    if b"<!ENTITY" in body:
        body = _NESTED_ENTITY.sub(b"", body)
    body = _BAD_CHARREF.sub(b"&#xFFFD;", body) if b"&#" in body else body
    _check_depth(body)
    return cap_person_fields(body)


def _check_depth(body: bytes) -> None:
    """ParseError when elements nest deeper than `MAX_DEPTH` (CDATA and comments skipped)."""
    if body.count(b"<") <= MAX_DEPTH or body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n")[:14] \
            .lower().startswith((b"<!doctype html", b"<html")):
        return  # too short to nest that deep; a web page is told apart later
    depth = 0
    for markup in _MARKUP.finditer(body):
        if markup[1]:
            depth -= 1
        elif markup[2] == b"":
            depth += 1
            if depth > MAX_DEPTH:
                raise ParseError(f"not a feed: elements nested more than {MAX_DEPTH:,} deep")


def cap_person_fields(body: bytes) -> bytes:
    """The body with overlong author/name/email texts cut to `MAX_PERSON_BYTES`.

    Done on the bytes, before feedparser sees them, because feedparser's own regexes are
    what a long author attacks. ASCII-compatible encodings only; anything else still has
    the parse workers' time limit.
    """
    if len(body) <= MAX_PERSON_BYTES:
        return body
    return _LONG_PERSON_FIELD.sub(_cut_person, body)


_HTML_TYPES = ("text/html", "application/xhtml+xml")
_FEED_TYPES = ("application/atom+xml", "application/rss+xml", "application/rdf+xml")
_EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
_SHORT = 256  # a body shorter than this is checked for text, not only for characters
# A `rel="replies"` link without a feed type may still be the comment feed (RFC 4685 makes
# `type` optional; feedparser then reports text/html): unless it plainly is a web page.
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


def _content_html(raw: Mapping[str, Any], link: str, text: Callable[[str], str]) -> str:
    """The richest body the entry carries that has text, as HTML (plain text escaped).

    Full content first (HTML before other types), then the summary: an empty
    `content:encoded` beside a full `description`, or an Atom `<content src="..."/>` that
    only points elsewhere, must not hide the text the feed does carry. `text` is the entry's
    `html_to_text`, which remembers what it read: only the bodies up to the first with text
    are read here, and the entry's text is then that body's, read once.
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
    def has_text(value: str) -> bool:
        return len(value) >= _SHORT or bool(text(value).strip())

    first = next(((c, v) for c, v in bodies if has_text(v)), None)
    if first is not None and _text(first[0], "type") == "text/plain":
        # A plain-text "content" is often a second, shorter description that feedparser
        # took for content (Google Cloud's blog nests an Open Graph <description> teaser in
        # each item, beside the item's own full HTML <description>): the longer text wins.
        with_text = [(c, v) for c, v in bodies if has_text(v)]
        with_text.sort(key=lambda pair: -len(text(pair[1])))
        first = with_text[0]
    for chosen, value in [*([first] if first else []), *bodies][:1]:
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


def _feed_kind(
    feed: Mapping[str, Any],
    raws: Sequence[Mapping[str, Any]],
    thread_keys: Sequence[str],
    urls: Sequence[str],
) -> tuple[FeedKind, str]:
    """Comments or posts, from the strongest signal present; posts when nothing says comments.

    In order: an entry that replies to something (RFC 4685); a platform's comment feed URL
    (the self link or the URL fetched); entries whose ids or links are comment anchors
    (`#comment-N`, `#cN`); then what a platform's conventions say of the feed's title, id and
    items (`notifier.sources`). The second value says why, for a person reading the log when
    the subscription's `watch` says otherwise.
    """
    replying = sum(1 for raw in raws if any(_map(raw, key) for key in thread_keys))
    if replying:
        return "comments", f"{replying} of its {len(raws)} entries reply to another (RFC 4685)"
    if any(sources.is_comment_feed(url) for url in urls if url):
        return "comments", "its URL is a comment feed's"
    links = [_link_of(raw) for raw in raws]
    anchored = sum(1 for raw, link in zip(raws, links, strict=True)
                   if sources.comment_number(_text(raw, "id")) or sources.comment_number(link))
    if raws and anchored * 2 > len(raws):
        return "comments", "most of its entries link to comment anchors"
    facts = FeedFacts(title=_squash(_text(feed, "title")), feed_id=_text(feed, "id"),
                      urls=urls, entry_titles=[_squash(_text(raw, "title")) for raw in raws],
                      entry_links=links)
    if sources.comment_document(facts):
        return "comments", "its title, id or items are a comment feed's"
    return "posts", "nothing in it says comments"


# -- comment threading -------------------------------------------------------------------------


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
    """Where a comment sits: its post, its parent, and its content without a platform's line.

    RFC 4685 does not say whether a `ref` names the post or a comment. It is taken for a
    comment when it is the id of another entry in this feed or ends in a comment anchor
    (`#comment-N`, `#cN`), and for the post otherwise -- except where a platform says its
    `ref` is always the post (Blogger). A comment whose own key has a platform's shape takes
    its post key from that key, so Atom, RSS and the posts feed agree on it.
    """
    in_reply_to: Mapping[str, Any] = {}
    for name in thread_keys:
        in_reply_to = _map(raw, name) or in_reply_to
    ref = _text(in_reply_to, "ref").strip()
    ref_href = _text(in_reply_to, "href").strip()
    key_post = sources.post_key_of(key)

    # Does the thread element name the post or a comment?
    ref_is_comment = False
    if ref and not sources.ref_names_post(key, ref):
        ref_is_comment = (
            ref in feed_ids
            or bool(sources.comment_number(ref))
            or bool(ref_href and sources.comment_number(ref_href))
        )

    post_link = sources.post_link(link)
    if not post_link and ref_href:
        post_link = sources.post_link(_web(ref_href))

    parent_key = ref if ref_is_comment else ""
    parent_author = ""
    reply = sources.reply_line(content, post_link, key)
    if reply is not None:
        number = sources.comment_number(reply.href)
        if ref:
            # The thread element is authoritative; the line is only WordPress's echo of it.
            agrees = ref_is_comment and bool(number) and sources.comment_number(ref) == number
            if agrees or reply.english:
                content = reply.rest
            if agrees:
                parent_author = reply.name
        else:
            content = reply.rest
            parent_author = reply.name
            parent_key = reply.parent_key

    if not parent_key:
        links = [(_text(link, "rel"), _text(link, "href").strip()) for link in _maps(raw, "links")]
        parent_key = sources.related_parent(links, key)

    if key_post:
        post_key = key_post
    elif ref and not ref_is_comment:
        post_key = ref
    else:
        post_key = post_link
    return _Thread(post_key, post_link, parent_key, parent_author, content)


# -- entries -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Document:
    """What every entry of one document shares: its kind, thread namespace, feed author."""

    kind: EntryKind
    feed_title: str
    hints: Hints
    thread_keys: tuple[str, ...]
    feed_ids: frozenset[str]
    author: tuple[str, str]  # the feed's <author> (name, URI): Atom entries inherit it


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


def _fallback_key(kind: EntryKind, link: str, title: str, author: str, when: datetime | None,
                  content_hash: str) -> str:
    """The key of an entry without an id: its link, else its title (a post's) or its author
    (a comment's) with its date, else a digest of its content.

    As the aggregators do that were compared on this (IE7, RSS Bandit, Google Reader: the
    link first, then other elements, the date among them). A digest of the content changes
    with every edit, so an edited entry keyed by it looks new and is reported again; a link,
    or a title or author with its date, survive an edit of the text. A comment's title is
    the feed's invention ("By: X"), so it never keys a comment; one person rarely writes two
    comments within one second. With none of these, only the content is left: an edit is
    then a new entry (as in rss2email, which keys by content first), because keying by a
    title alone would merge two items of one title and lose the second -- a repeat is
    better than a miss. reader refuses such entries altogether.
    """
    if link:
        return link
    if title and when is not None and kind == "post":
        return "title-date:" + _sha256(title + "\n" + when.isoformat())
    if author and when is not None and kind == "comment":
        return AUTHOR_DATE_KEY + _sha256(author + "\n" + when.isoformat())
    return f"{HASH_KEY}{content_hash}"


def _entry(raw: Mapping[str, Any], doc: _Document) -> Entry | None:
    kind = doc.kind
    title = _clip(_plain(_map(raw, "title_detail"), _text(raw, "title")))
    link = _clip(_link_of(raw))
    text = functools.cache(html_to_text)  # the entry's bodies, each read once
    content = _content_html(raw, link, text)
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
    key = raw_id or _fallback_key(kind, link, title, _squash(author), published or updated,
                                  content_hash)
    post_title = ""
    if kind == "comment":
        post_title = sources.post_title(doc.feed_title, title, author, doc.hints)
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
        content_text=text(content),
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
    Across polls, the same id with new content is still an edit, as always; when the oldest
    leaves the feed, the next one is alone under the bare id, and `diff.rekeyed` finds it
    under the key it was stored with (not an edit, not new).
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
            keys = shared_id_keys(key, entry.published, entry.content_hash)
            new_key = keys[0] if keys[0] not in taken else keys[-1]
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
    capped = cap_entries(body)  # the parse pool cut it already; a direct call cuts here
    defused = defuse(capped)
    # Plain RSS 2.0 and Atom 1.0 are read directly (`plainfeed`: the same values, a few times
    # faster); anything else by feedparser.
    direct = plainfeed.read(defused, response_headers) if plainfeed is not None else None
    try:
        parsed: Mapping[str, Any] = direct or feedparser.parse(
            io.BytesIO(defused), response_headers=response_headers, sanitize_html=False
        )
    except ValueError as exc:
        # feedparser's encoding detection raises (UnicodeDecodeError, "embedded null
        # character") on an XML declaration whose encoding name holds a non-ASCII byte or a
        # NUL, where it flags other broken documents: the same verdict, not a crash.
        raise ParseError(f"not a feed: its encoding cannot be read ({exc})") from exc
    all_raws = _maps(parsed, "entries")
    if not _text(parsed, "version") and not all_raws:
        raise _not_a_feed(body, parsed, response_headers)
    feed = _map(parsed, "feed")
    raws = all_raws[:MAX_ENTRIES]

    warnings = []
    if _get(parsed, "bozo"):
        warnings.append(str(_get(parsed, "bozo_exception") or "malformed feed"))
    if len(all_raws) > MAX_ENTRIES or capped.endswith(ENTRIES_CUT):
        warnings.append(f"ignored the entries beyond the first {MAX_ENTRIES:,}")

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
    generator = _clip(_generator(feed))
    hints = Hints(feed_url=url, generator=generator, feed_id=_text(feed, "id"),
                  headers=response_headers)

    entry_kind: EntryKind = "comment" if kind == "comments" else "post"
    atom = _text(parsed, "version").startswith("atom")
    doc = _Document(
        kind=entry_kind,
        feed_title=title,
        hints=hints,
        thread_keys=thread_keys,
        feed_ids=frozenset(_text(raw, "id").strip() for raw in raws) - {""},
        author=_author_of(_map(feed, "author_detail"), _text(feed, "author")) if atom else ("", ""),
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
        kind_reason=why,
        generator=generator,
        warning="; ".join(warnings),
        next_url=_clip(next(
            (href for href in next_links if href.startswith(("http://", "https://"))), "")),
        total=_count(_get(feed, "opensearch_totalresults")),
    )
