"""A direct reader of plain RSS 2.0 and Atom 1.0: feedparser's answer, in a fraction of its time.

A parse worker spends most of a changed cycle in feedparser: every element goes through
`xml.sax`, a method looked up by name, `FeedParserDict`'s aliasing `__getitem__` and a deep
copy of its content parameters. For the documents most feeds are (WordPress's and Blogger's
comment and post feeds, any plain RSS 2.0 or Atom 1.0), this reader builds the same values
from expat's events directly, in plain dicts, and hands them to `notifier.parse` in place of
feedparser's result. It follows feedparser's strict parser step by step for the elements it
knows (the element stack, the content parameters, which value wins, relative links, the
encoding repairs) and calls feedparser's own functions for the rest (encodings, dates, link
joins, links inside markup, authors): it is not a second opinion on what a feed says.

Anything else is left to feedparser: `read` answers None for a document expat refuses (the
lenient parser takes over there), one with a DOCTYPE, XHTML or base64 content,
an element inside a text element, a `<source>`, or any element feedparser treats specially
that has no handler here. tests/test_plainfeed.py parses every feed of
tests/corpus both ways and requires the same `ParsedFeed` wherever this reader answers.
"""

from __future__ import annotations

import contextlib
import re
import xml.parsers.expat
from collections.abc import Callable, Mapping
from typing import Any

import feedparser
import feedparser.mixin
from feedparser.api import _StrictFeedParser
from feedparser.datetimes import _parse_date
from feedparser.encodings import convert_to_utf8
from feedparser.html import _cp1252
from feedparser.mixin import _FeedParserMixin
from feedparser.sanitizer import replace_doctype
from feedparser.urls import make_safe_absolute_uri
from feedparser.util import FeedParserDict

__all__ = ["FOLLOWS", "read"]

FOLLOWS = "6.0."
"""The feedparser releases whose strict parser this reader follows (and whose private
helpers it calls). With any other, `read` leaves every document to feedparser: another
release may read an element differently, and the comparison of tests/test_plainfeed.py,
which holds the two equal, has to be made again before this reader stands in for it. (A
release without the helpers imported here fails this module's import: `notifier.parse`
then does without it.)"""
_FOLLOWED = str(getattr(feedparser, "__version__", "")).startswith(FOLLOWS)

MAX_NAMESPACES = 64
"""Namespaces a document may declare and still be read here (feeds declare a dozen): each
element of a namespace feedparser does not know is named by a walk of those declared, as
feedparser names it, which a document declaring one at every element would make quadratic."""

_MIXIN: Any = _FeedParserMixin
_NAMESPACES: dict[str, str] = {uri.lower(): prefix for uri, prefix in _MIXIN.namespaces.items()}
_SPECIAL = frozenset(
    name.split("_", 2)[2] for name in dir(_StrictFeedParser) + dir(_MIXIN)
    if name.startswith(("_start_", "_end_")))
"""Elements feedparser has a method for; one of them without a handler here (`_HANDLERS`) is
left to feedparser. The others it files under their name, as `_Reader.start` does."""
_KEYS: dict[str, str] = {old: new[0] if isinstance(new, list) else new
                         for old, new in FeedParserDict.keymap.items()}
"""The keys feedparser's dicts file a value under when it is stored under another (`url` as
`href`, `date` as `updated`, ...): `FeedParserDict.__setitem__`, for this reader's plain
dicts."""
_RELATIVE = frozenset(_MIXIN.can_be_relative_uri)
_MARKUP_WITH_LINKS = frozenset(_MIXIN.can_contain_relative_uris)
_HTML_TYPES = frozenset(_MIXIN.html_types)
_ENTITY_IN_LINK = re.compile("&([A-Za-z0-9_]+);")
_looks_like_html: Callable[[str], bool] = _MIXIN.looks_like_html
_content_type: Callable[[str], str] = _MIXIN.map_content_type


class _Declined(Exception):
    """The document has something this reader leaves to feedparser."""


class _Reader:
    """feedparser's strict parser's state, for the elements with a handler here."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.bases: list[str] = []
        self.fixed: set[str] = set()
        """Bases that stay as they are when made again without an xml:base."""
        self.feed: dict[str, Any] = {}
        self.entries: list[dict[str, Any]] = []
        self.version = ""
        self.namespaces: dict[str, str] = {}
        self.prefixes: dict[str, str] = {}
        self.stack: list[list[Any]] = []
        self.content: dict[str, Any] = {}
        self.depth_of: dict[int, dict[str, int]] = {}
        self.names: dict[str, tuple[str, bool]] = {}
        self.infeed = self.inentry = self.incontent = self.inimage = self.inauthor = 0
        self.intextinput = self.insource = self.incontributor = self.inpublisher = 0
        self.has_content = 0
        self.guidislink = False
        self.summary_key: str | None = None
        self.title_depth = -1
        self.depth = 0

    # -- feedparser's helpers, on this reader's state ------------------------------------------

    def _get_context(self) -> dict[str, Any]:
        if self.inimage and "image" in self.feed:
            return self.feed["image"]  # type: ignore[no-any-return]
        if self.inentry:
            return self.entries[-1]
        return self.feed

    _sync_author_detail = _MIXIN._sync_author_detail
    _save_author = _MIXIN._save_author

    def _save(self, key: str, value: object, overwrite: bool = False) -> None:
        context = self._get_context()
        if overwrite:
            context[key] = value
        else:
            context.setdefault(key, value)

    def push(self, element: str, expecting_text: object) -> None:
        self.stack.append([element, expecting_text, []])

    def push_content(self, tag: str, attrs: dict[str, str], default_type: str,
                     expecting_text: object) -> None:
        self.incontent += 1
        self.content = {"type": _content_type(attrs.get("type", default_type)),
                        "language": None, "base": self.base}
        kind = self.content["type"]
        if attrs.get("mode", "") == "base64" or not (
                kind.startswith("text/") or kind.endswith(("+xml", "/xml"))):
            raise _Declined("base64 content")
        if kind == "application/xhtml+xml":
            raise _Declined("XHTML content")
        self.push(tag, expecting_text)

    def pop_content(self, tag: str) -> str | None:
        value = self.pop(tag)
        self.incontent -= 1
        self.content.clear()
        return value

    def pop(self, element: str) -> str | None:
        """feedparser's `pop`: the element's text, made a value and filed where it belongs."""
        if not self.stack or self.stack[-1][0] != element:
            return None
        element, expecting_text, pieces = self.stack.pop()
        output: str = "".join(pieces).strip()
        if not expecting_text:
            return output
        if element in _RELATIVE and output and (element != "id" or self.guidislink):
            output = feedparser.mixin._urljoin(self.base, output)
        content = self.content
        if not self.version.startswith("atom") and content.get("type") == "text/plain" \
                and _looks_like_html(output):
            content["type"] = "text/html"
        kind = content.get("type", "text/html")
        if element in _MARKUP_WITH_LINKS and _content_type(kind) in _HTML_TYPES:
            output = feedparser.mixin.resolve_relative_uris(output, self.base, "utf-8", kind)
        if not output.isascii():
            with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
                # UTF-8 that was read as Latin-1: feedparser repairs it
                output = output.encode("iso-8859-1").decode("utf-8")
            output = output.translate(_cp1252)
        if element in ("category", "tags", "itunes_keywords"):
            return output
        if element == "title" and -1 < self.title_depth <= self.depth:
            return output
        if self.inentry and not self.insource:
            entry = self.entries[-1]
            if element == "content":
                entry.setdefault("content", []).append({**content, "value": output})
            elif element == "link":
                if not self.inimage:
                    output = _ENTITY_IN_LINK.sub(r"&\g<1>", output.replace("&amp;", "&"))
                    entry["link"] = output
                    if output:
                        entry["links"][-1]["href"] = output
            else:
                if element == "description":
                    element = "summary"
                depths = self.depth_of.setdefault(id(entry), {})
                old = depths.get(element)
                if old is None or self.depth <= old:
                    depths[element] = self.depth
                    entry[_KEYS.get(element, element)] = output
                if self.incontent:
                    detail = element + "_detail"
                    entry[_KEYS.get(detail, detail)] = {**content, "value": output}
        elif self.infeed:
            context = self._get_context()
            if element == "description":
                element = "subtitle"
            context[_KEYS.get(element, element)] = output
            if element == "link":
                output = _ENTITY_IN_LINK.sub(r"&\g<1>", output)
                context[element] = output
                context["links"][-1]["href"] = output
            elif self.incontent:
                detail = element + "_detail"
                context[_KEYS.get(detail, detail)] = {**content, "value": output}
        return output

    # -- expat's events ---------------------------------------------------------------------------

    def declare(self, prefix: str | None, uri: str | None) -> None:
        if not uri:
            return
        self.names.clear()  # an element's name depends on the prefixes declared so far
        lower = uri.lower()
        if prefix and lower == "http://www.w3.org/1999/xlink":
            raise _Declined("xlink (feedparser adds its declaration to the attributes)")
        if not self.version and lower == "http://www.w3.org/2005/atom":
            self.version = "atom10"
        elif not self.version and (lower == "http://purl.org/rss/1.0/" or (
                prefix is None and lower == "http://my.netscape.com/rdf/simple/0.9/")):
            raise _Declined("RSS 1.0 or 0.9")
        if "backend.userland.com/rss" in lower:
            raise _Declined("a userland namespace")
        if len(self.namespaces) >= MAX_NAMESPACES:
            raise _Declined("more namespaces than a feed declares")
        if lower in _NAMESPACES:
            self.prefixes[prefix or ""] = _NAMESPACES[lower]
            self.namespaces[_NAMESPACES[lower]] = uri
        else:
            self.namespaces[prefix or ""] = uri

    def _name(self, expat_name: str) -> tuple[str, bool]:
        """feedparser's name for an element (its known prefix, else the document's, then `_`
        and the local name, lower-cased), and whether it has a prefix."""
        name = self.names.get(expat_name)
        if name is not None:
            return name
        parts = expat_name.split(" ")
        namespace, local = (parts[0], parts[1]) if len(parts) > 1 else ("", parts[0])
        prefix = _NAMESPACES.get(namespace.lower(), "")
        if not prefix and namespace:
            prefix = next((key for key, value in self.namespaces.items()
                           if key and value == namespace), "")
        prefix = prefix.lower()
        if prefix:
            prefix = self.prefixes.get(prefix, prefix)
        name = (f"{prefix}_{local.lower()}" if prefix else local.lower(), bool(prefix))
        self.names[expat_name] = name
        return name

    def start(self, expat_name: str, attributes: dict[str, str]) -> None:
        if self.stack and self.incontent:
            raise _Declined("markup inside a text element")
        name, prefixed = self._name(expat_name)
        if name.endswith(("math", "svg")):
            raise _Declined("MathML or SVG (feedparser adds their namespace as an attribute)")
        self.depth += 1
        attrs = _attributes(attributes) if attributes else {}
        # feedparser's base in force: made again at every element, from its xml:base if any.
        given = attrs.get("xml:base", attrs.get("base")) if attrs else None
        if self.base:
            if given or self.base not in self.fixed:
                made = feedparser.mixin.make_safe_absolute_uri(self.base, given or self.base) \
                    or self.base
                if not given and made == self.base:
                    self.fixed.add(made)
                self.base = made
        else:
            self.base = feedparser.mixin._urljoin(self.base, given or self.base)
        self.bases.append(self.base)
        if not prefixed:
            if name not in ("title", "link", "description", "name"):
                self.intextinput = 0
            if name not in ("title", "link", "description", "url", "href", "width", "height"):
                self.inimage = 0
        if name in _SPECIAL:
            handlers = _HANDLERS.get(name)
            if handlers is None:
                raise _Declined(f"<{name}>")
            handlers[0](self, attrs)
        elif attrs:
            self._get_context()[_KEYS.get(name, name)] = attrs
        else:
            self.push(name, 1)

    def end(self, expat_name: str) -> None:
        name = self._name(expat_name)[0]
        end = _HANDLERS[name][1] if name in _SPECIAL else None
        if end is None:
            self.pop(name)
        else:
            end(self)
        bases = self.bases
        if bases:
            bases.pop()
            if bases and bases[-1]:
                self.base = bases[-1]
        self.depth -= 1

    def text(self, data: str) -> None:
        if self.stack:
            self.stack[-1][2].append(data)


def _attributes(attributes: dict[str, str]) -> dict[str, str]:
    """feedparser's attribute names: its known prefix or none, then the document's own."""
    found: dict[str, str] = {}
    qualified: dict[str, str] = {}
    for name, value in attributes.items():
        parts = name.split(" ")
        if len(parts) == 1:
            found[name.lower()] = value
            qualified[name.lower()] = value
            continue
        prefix = _NAMESPACES.get(parts[0].lower(), "")
        found[(f"{prefix}:{parts[1]}" if prefix else parts[1]).lower()] = value
        qualified[(f"{parts[2]}:{parts[1]}" if len(parts) == 3 else parts[1]).lower()] = value
    found.update(qualified)
    return {key: value.lower() if key in ("rel", "type") else value
            for key, value in found.items()}


# -- the elements read here, as feedparser's methods of the same names read them ---------------

_Start = Callable[[_Reader, dict[str, str]], None]
_End = Callable[[_Reader], None]


def _push(key: str, expecting: int = 1) -> _Start:
    """An element feedparser only pushes, under `key` (its end handler files the text)."""
    def start(r: _Reader, attrs: dict[str, str]) -> None:
        r.push(key, expecting)
    return start


_RSS_VERSIONS = {"0.91": "rss091u", "0.92": "rss092", "0.93": "rss093", "0.94": "rss094"}


def _start_rss(r: _Reader, attrs: dict[str, str]) -> None:
    if not r.version or not r.version.startswith("rss"):
        given = attrs.get("version", "")
        r.version = _RSS_VERSIONS.get(given) or ("rss20" if given.startswith("2.") else "rss")


def _start_channel(r: _Reader, attrs: dict[str, str]) -> None:
    if "lastmod" in attrs or "href" in attrs:
        raise _Declined("CDF attributes")
    r.infeed = 1


def _start_feed(r: _Reader, attrs: dict[str, str]) -> None:
    if r.version != "atom10":
        raise _Declined("Atom other than 1.0")
    r.infeed = 1


def _end_feed(r: _Reader) -> None:
    r.infeed = 0


def _start_item(r: _Reader, attrs: dict[str, str]) -> None:
    if "rdf:about" in attrs or "lastmod" in attrs or "href" in attrs:
        raise _Declined("RDF or CDF attributes")
    r.entries.append({})
    r.push("item", 0)
    r.inentry = 1
    r.guidislink = False
    r.title_depth = -1


def _end_item(r: _Reader) -> None:
    r.pop("item")
    r.inentry = 0
    r.has_content = 0


def _start_image(r: _Reader, attrs: dict[str, str]) -> None:
    context = r._get_context()
    if not r.inentry:
        context.setdefault("image", {})
    r.inimage = 1
    r.title_depth = -1
    r.push("image", 0)


def _end_image(r: _Reader) -> None:
    r.pop("image")
    r.inimage = 0


def _start_author(r: _Reader, attrs: dict[str, str]) -> None:
    r.inauthor = 1
    r.push("author", 1)
    r._get_context().setdefault("authors", []).append({})


def _end_author(r: _Reader) -> None:
    r.pop("author")
    r.inauthor = 0
    r._sync_author_detail()


def _start_webmaster(r: _Reader, attrs: dict[str, str]) -> None:
    r.push("publisher", 1)


def _end_webmaster(r: _Reader) -> None:
    r.pop("publisher")
    r._sync_author_detail("publisher")


def _end_author_part(key: str) -> _End:
    def end(r: _Reader) -> None:
        value = r.pop(key)
        if r.inauthor:
            r._save_author(key, value)
    return end


def _end_number(name: str) -> Callable[[_Reader], None]:
    def end(r: _Reader) -> None:
        text = r.pop(name)
        try:
            value = int(text)  # type: ignore[arg-type]  # None fails as in feedparser
        except ValueError:
            value = 0
        if r.inimage:
            r._get_context()[name] = value
    return end


def _start_text(key: str, default_type: str,
                expecting: bool = False) -> Callable[[_Reader, dict[str, str]], None]:
    """An element read as content of `default_type` (a title, subtitle, rights)."""
    def start(r: _Reader, attrs: dict[str, str]) -> None:
        r.push_content(key, attrs, default_type,
                       1 if expecting else (r.infeed or r.inentry or r.insource))
    return start


def _end_title(r: _Reader) -> None:
    if r.pop_content("title"):
        r.title_depth = r.depth


def _end_text(key: str) -> Callable[[_Reader], None]:
    def end(r: _Reader) -> None:
        r.pop_content(key)
    return end


def _start_link(r: _Reader, attrs: dict[str, str]) -> None:
    attrs.setdefault("rel", "alternate")
    attrs.setdefault("type", "application/atom+xml" if attrs["rel"] == "self" else "text/html")
    context = r._get_context()
    attrs = _enforce_href(attrs)
    if "href" in attrs:
        attrs["href"] = feedparser.mixin._urljoin(r.base, attrs["href"])
    links = context.setdefault("links", [])
    if not (r.inentry and r.inimage):
        links.append(dict(attrs))
    if "href" in attrs:
        if attrs.get("rel") == "alternate" and _content_type(attrs.get("type", "")) in _HTML_TYPES:
            context["link"] = attrs["href"]
    else:
        r.push("link", r.infeed or r.inentry or r.insource)


def _enforce_href(attrs: dict[str, str]) -> dict[str, str]:
    href = attrs.get("url", attrs.get("uri", attrs.get("href")))
    if href:
        attrs.pop("url", None)
        attrs.pop("uri", None)
        attrs["href"] = href
    return attrs


def _start_guid(r: _Reader, attrs: dict[str, str]) -> None:
    r.guidislink = attrs.get("ispermalink", "true") == "true"
    r.push("id", 1)


def _end_guid(r: _Reader) -> None:
    value = r.pop("id")
    r._save("guidislink", r.guidislink and "link" not in r._get_context())
    if r.guidislink:
        r._save("link", value)


def _start_description(r: _Reader, attrs: dict[str, str]) -> None:
    if "summary" in r._get_context() and not r.has_content:
        r.summary_key = "content"
        _start_content(r, attrs)
    else:
        r.push_content("description", attrs, "text/html", r.infeed or r.inentry or r.insource)


def _end_description(r: _Reader) -> None:
    if r.summary_key == "content":
        _end_content(r)
    else:
        r.pop_content("description")
    r.summary_key = None


def _start_summary(r: _Reader, attrs: dict[str, str]) -> None:
    if "summary" in r._get_context() and not r.has_content:
        r.summary_key = "content"
        _start_content(r, attrs)
    else:
        r.summary_key = "summary"
        r.push_content("summary", attrs, "text/plain", 1)


def _end_summary(r: _Reader) -> None:
    if r.summary_key == "content":
        _end_content(r)
    else:
        r.pop_content(r.summary_key or "summary")
    r.summary_key = None


def _start_content(r: _Reader, attrs: dict[str, str]) -> None:
    r.has_content = 1
    r.push_content("content", attrs, "text/plain", 1)
    if attrs.get("src"):
        r.content["src"] = attrs["src"]
    r.push("content", 1)


def _start_content_encoded(r: _Reader, attrs: dict[str, str]) -> None:
    r.has_content = 1
    r.push_content("content", attrs, "text/html", 1)


def _end_content(r: _Reader) -> None:
    to_summary = _content_type(r.content.get("type", "")) in {"text/plain", *_HTML_TYPES}
    value = r.pop_content("content")
    if to_summary:
        r._save("summary", value)


def _end_date(key: str) -> Callable[[_Reader], None]:
    def end(r: _Reader) -> None:
        r._save(f"{key}_parsed", _parse_date(r.pop(key)), overwrite=True)
    return end


def _start_generator(r: _Reader, attrs: dict[str, str]) -> None:
    if attrs:
        attrs = _enforce_href(attrs)
        if "href" in attrs:
            attrs["href"] = feedparser.mixin._urljoin(r.base, attrs["href"])
    r._get_context()["generator_detail"] = dict(attrs)
    r.push("generator", 1)


def _end_generator(r: _Reader) -> None:
    value = r.pop("generator")
    context = r._get_context()
    if "generator_detail" in context:
        context["generator_detail"]["name"] = value


def _end_plain(r: _Reader, key: str) -> None:
    r.pop(key)


def _start_enclosure(r: _Reader, attrs: dict[str, str]) -> None:
    attrs = _enforce_href(attrs)
    attrs["rel"] = "enclosure"
    r._get_context().setdefault("links", []).append(dict(attrs))


def _nothing(r: _Reader, attrs: dict[str, str]) -> None:
    return None


def _start_cloud(r: _Reader, attrs: dict[str, str]) -> None:
    r._get_context()["cloud"] = dict(attrs)


# Media RSS (WordPress.com puts a `media:content` with a `media:title` in every item).

def _start_media_content(r: _Reader, attrs: dict[str, str]) -> None:
    r._get_context().setdefault("media_content", []).append(attrs)


def _start_media_thumbnail(r: _Reader, attrs: dict[str, str]) -> None:
    context = r._get_context()
    context.setdefault("media_thumbnail", [])
    r.push("url", 1)
    context["media_thumbnail"].append(attrs)


def _end_media_thumbnail(r: _Reader) -> None:
    url = r.pop("url")
    context = r._get_context()
    if url is not None and url.strip() and "url" not in context["media_thumbnail"][-1]:
        context["media_thumbnail"][-1]["url"] = url


def _end_media_title(r: _Reader) -> None:
    title_depth = r.title_depth
    _end_title(r)
    r.title_depth = title_depth


def _start_media_part(key: str, kept: str) -> Callable[[_Reader, dict[str, str]], None]:
    """A Media RSS element filed with its attributes under `kept` (its text as `content`)."""
    def start(r: _Reader, attrs: dict[str, str]) -> None:
        context = r._get_context()
        if kept == "media_credit":
            context.setdefault(kept, []).append(attrs)
        else:
            context.setdefault(kept, attrs)
        r.push(key, 1)
    return start


def _end_media_part(key: str, kept: str) -> Callable[[_Reader], None]:
    def end(r: _Reader) -> None:
        text = r.pop(key)
        if text is not None and text.strip():
            context = r._get_context()
            place = context[kept][-1] if kept == "media_credit" else context[kept]
            place["content"] = text
    return end



_HANDLERS: dict[str, tuple[_Start, _End | None]] = {
    # element: (start, end); an end of None pops the element, as feedparser's generic end.
    "rss": (_start_rss, None), "channel": (_start_channel, _end_feed),
    "feed": (_start_feed, _end_feed),
    "item": (_start_item, _end_item), "entry": (_start_item, _end_item),
    "image": (_start_image, _end_image),
    "author": (_start_author, _end_author), "dc_creator": (_start_author, _end_author),
    "dc_author": (_start_author, _end_author), "managingeditor": (_start_author, _end_author),
    "webmaster": (_start_webmaster, _end_webmaster),
    "name": (_push("name", 0), _end_author_part("name")),
    "email": (_push("email", 0), _end_author_part("email")),
    "url": (_push("href"), _end_author_part("href")),
    "uri": (_push("href"), _end_author_part("href")),
    "homepage": (_push("href"), _end_author_part("href")),
    "width": (_push("width", 0), _end_number("width")),
    "height": (_push("height", 0), _end_number("height")),
    "title": (_start_text("title", "text/plain"), _end_title),
    "subtitle": (_start_text("subtitle", "text/plain", True), _end_text("subtitle")),
    "tagline": (_start_text("subtitle", "text/plain", True), _end_text("subtitle")),
    "rights": (_start_text("rights", "text/plain", True), _end_text("rights")),
    "copyright": (_start_text("rights", "text/plain", True), _end_text("rights")),
    "link": (_start_link, None), "guid": (_start_guid, _end_guid), "id": (_start_guid, _end_guid),
    "description": (_start_description, _end_description),
    "summary": (_start_summary, _end_summary),
    "content": (_start_content, _end_content),
    "content_encoded": (_start_content_encoded, _end_content),
    **dict.fromkeys(("pubdate", "published", "issued", "dcterms_issued"),
                    (_push("published"), _end_date("published"))),
    **dict.fromkeys(("updated", "lastbuilddate", "modified", "dc_date", "dcterms_modified"),
                    (_push("updated"), _end_date("updated"))),
    "generator": (_start_generator, _end_generator),
    "category": (_push("category"), None), "dc_subject": (_push("category"), None),
    "language": (_push("language"), None), "dc_language": (_push("language"), None),
    "enclosure": (_start_enclosure, None), "cloud": (_start_cloud, None),
    "media_content": (_start_media_content, None),
    "media_thumbnail": (_start_media_thumbnail, _end_media_thumbnail),
    "media_title": (_start_text("title", "text/plain"), _end_media_title),
    "media_group": (_nothing, None),
    "media_description": (_start_description, _end_description),
    "media_category": (_push("category"), lambda r: _end_plain(r, "category")),
    "media_credit": (_start_media_part("credit", "media_credit"),
                     _end_media_part("credit", "media_credit")),
    "media_rating": (_start_media_part("rating", "media_rating"),
                     _end_media_part("rating", "media_rating")),
    "media_license": (_start_media_part("license", "media_license"),
                      _end_media_part("license", "media_license")),
}


def read(body: bytes, headers: Mapping[str, str]) -> dict[str, Any] | None:
    """feedparser's result for `body` (its keys that `notifier.parse` reads), or None when
    the document is not one this reader takes (then feedparser reads it).

    `headers` are the response's, lower-cased, `content-location` the URL fetched, as
    feedparser is given them."""
    if not _FOLLOWED or b"<!DOCTYPE" in body or b"<!doctype" in body or b"<!ENTITY" in body:
        return None
    result: dict[str, Any] = {"bozo": False, "entries": [], "feed": {}, "headers": dict(headers)}
    try:
        data = convert_to_utf8(result["headers"], body, result)
    except Exception:
        return None
    if not result.get("encoding"):
        return None
    version, data, entities = replace_doctype(data)
    if version or entities:
        return None
    location = result["headers"].get("content-location", "")
    base = make_safe_absolute_uri("", location) or make_safe_absolute_uri(location) or ""
    reader = _Reader(base)
    parser = xml.parsers.expat.ParserCreate(None, " ")
    parser.namespace_prefixes = True
    parser.buffer_text = True
    parser.StartNamespaceDeclHandler = reader.declare
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.text
    try:
        parser.Parse(data, True)
    except Exception:
        return None
    if reader.incontent or not reader.version or reader.inentry:
        return None
    result.update(feed=reader.feed, entries=reader.entries, version=reader.version,
                  namespaces=reader.namespaces)
    return result
