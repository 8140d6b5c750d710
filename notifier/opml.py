"""OPML, the list of feeds every feed reader imports and exports.

Reading goes through listparser, which copes with the variants in the wild (OPML 1.0 and
2.0; Google Reader's and Feedly's nested category outlines, Miniflux's flat list,
rss2email's `opmlexport`; missing `type`, `title` instead of `text`); writing produces plain
OPML 2.0 with `text`, `title`, `type="rss"`, `xmlUrl` and, when known, `htmlUrl`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import urlsplit
from xml.etree import ElementTree

from notifier.errors import NotifierError
from notifier.schema import check_http_url

MAX_OPML_BYTES = 16 * 1024 * 1024
"""Largest OPML file read: far above any real reader's export (10,000 feeds are ~2 MiB)."""


class OpmlError(NotifierError):
    """The file is not an OPML list of feeds; the message says which file and why."""


@dataclass(frozen=True)
class OpmlFeed:
    url: str
    title: str
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class OpmlOutline:
    """One feed to export: `url` is the feed, `page` the site or post it came from."""

    name: str
    url: str
    page: str | None = None
    category: str | None = None


def read_opml(data: bytes, source: str) -> list[OpmlFeed]:
    """The feeds of an OPML document, in document order, without repeats."""
    if len(data) > MAX_OPML_BYTES:
        raise OpmlError(f"{source}: larger than {MAX_OPML_BYTES} bytes; is it an OPML file?")
    import listparser  # here: every command imports this module, few read OPML

    parsed = listparser.parse(data)
    feeds: list[OpmlFeed] = []
    seen: set[str] = set()
    for feed in parsed.feeds:
        url = str(feed.get("url") or "").strip()
        if not url or url in seen or not _pollable(url):
            continue
        seen.add(url)
        categories = tuple("/".join(path) for path in feed.get("categories", []) if path)
        feeds.append(OpmlFeed(url, str(feed.get("title") or "").strip(), categories))
    if not feeds:
        reason = parsed.get("bozo_exception") if parsed.get("bozo") else None
        detail = f" ({reason})" if reason else ""
        raise OpmlError(f"{source}: no feeds found{detail}; an OPML export lists them as "
                        "<outline xmlUrl=\"...\"> elements")
    return feeds


def _pollable(url: str) -> bool:
    """Readers export what they could not poll either (`file:`, a typo): such an outline
    is passed over, as `check` would refuse the file it was written into."""
    try:
        check_http_url(url)
    except ValueError:
        return False
    return True


def write_opml(outlines: Sequence[OpmlOutline], title: str,
               now: datetime | None = None) -> str:
    """OPML 2.0; outlines with a category are nested under one outline per category."""
    root = ElementTree.Element("opml", version="2.0")
    head = ElementTree.SubElement(root, "head")
    ElementTree.SubElement(head, "title").text = title
    ElementTree.SubElement(head, "dateCreated").text = format_datetime(
        now or datetime.now(UTC), usegmt=True)
    body = ElementTree.SubElement(root, "body")
    groups: dict[str, ElementTree.Element] = {}
    for outline in outlines:
        parent = body
        if outline.category:
            parent = groups.get(outline.category) or ElementTree.SubElement(
                body, "outline", text=outline.category, title=outline.category)
            groups[outline.category] = parent
        attributes = {"text": outline.name, "title": outline.name, "type": "rss",
                      "xmlUrl": outline.url}
        if outline.page and outline.page != outline.url:
            attributes["htmlUrl"] = outline.page
        ElementTree.SubElement(parent, "outline", attributes)
    ElementTree.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(
        root, encoding="unicode") + "\n"


_UNSAFE = re.compile(r"[^\w.@+-]+")


def subscription_name(title: str, url: str, taken: set[str]) -> str:
    """A subscription name from a feed's title (else its host and path): letters, digits
    and `. _ - @ +`, at most 60 characters, not among `taken` (which it joins)."""
    base = _UNSAFE.sub("-", title).strip("-")[:60].strip("-")
    if not base:
        parts = urlsplit(url)
        base = _UNSAFE.sub("-", f"{parts.hostname or ''}{parts.path}").strip("-")[:60]
        base = base.strip("-") or "feed"
    name, number = base, 2
    while name in taken:
        name = f"{base}-{number}"
        number += 1
    taken.add(name)
    return name
