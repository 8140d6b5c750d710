"""The direct reader of plain feeds (`notifier.plainfeed`) says what feedparser says.

Every feed of tests/corpus (third-party feeds from 14 projects' suites, among them the
hundreds of small documents of feedparser's own suite, each about one element), the real
WordPress and Blogger output of tests/fixtures, and hostile variants are parsed twice: as
notifier parses them (the direct reader where it answers) and by feedparser alone. Where the
direct reader answers, the two `ParsedFeed`s must be equal, entry by entry: a difference
would change entries' keys or content hashes (a comment reported again) when a feed moves
from one reader to the other. And the feeds the direct reader exists for must be read by it.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path

import feedparser
import pytest

from notifier import parse, plainfeed
from notifier.entrytext import cap_entries
from notifier.models import ParsedFeed
from notifier.parse import ParseError, parse_feed
from tests.test_corpus import declared_headers

TESTS = Path(__file__).parent
CORPUS = TESTS / "corpus"
FIXTURES = TESTS / "fixtures"
_NOT_FEEDS = {".md", ".tsv", ".headers", ".json", ".html", ".opml"}


def _documents() -> list[Path]:
    found = [path for folder in (CORPUS, FIXTURES) for path in sorted(folder.rglob("*"))
             if path.is_file() and path.suffix not in _NOT_FEEDS]
    return found


def _fixture_headers(path: Path) -> dict[str, str]:
    """The response headers stored beside a fixture (`NAME.headers`), else the declared ones."""
    stored = path.with_name(path.name + ".headers")
    if not stored.exists():
        return declared_headers(path.read_bytes())
    headers = {}
    for line in stored.read_text(encoding="latin-1").splitlines()[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


def _by_feedparser(body: bytes, url: str, headers: dict[str, str],
                   monkeypatch: pytest.MonkeyPatch) -> ParsedFeed | str:
    with monkeypatch.context() as patch:
        patch.setattr(plainfeed, "read", lambda *_: None)
        return _outcome(body, url, headers)


def _outcome(body: bytes, url: str, headers: dict[str, str]) -> ParsedFeed | str:
    try:
        return parse_feed(body, url, headers)
    except ParseError as exc:
        return f"ParseError: {exc}"


def _direct(body: bytes, url: str, headers: dict[str, str]) -> object:
    lowered = {key.lower(): value for key, value in headers.items()}
    lowered["content-location"] = url
    return plainfeed.read(parse.defuse(cap_entries(body)), lowered)


def _variants(path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    headers = _fixture_headers(path)
    yield f"https://feeds.example/{path.parent.name}/{path.name}", headers
    # Without a content type (feedparser then says the feed is not XML) and with a charset
    # that the body may contradict.
    yield "http://127.0.0.1:8080/feed/", {}
    yield "https://feeds.example/x", {"content-type": "application/xml; charset=iso-8859-1"}


DOCUMENTS = _documents()


NOT_KEPT = frozenset({"tags"})
"""What feedparser gives that the direct reader does not build: notifier never reads it."""


def _plain(value: object) -> object:
    """feedparser's dicts as plain ones, without the language (not followed here)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()
                if key not in NOT_KEPT and key != "language"}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


@pytest.mark.parametrize("path", DOCUMENTS, ids=[str(p.relative_to(TESTS)) for p in DOCUMENTS])
def test_same_feed_as_feedparser(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every value feedparser gives (but the tags), and so the normalised feed too."""
    body = path.read_bytes()
    for url, headers in _variants(path):
        direct = _direct(body, url, headers)
        if direct is None:
            continue  # left to feedparser: nothing to compare
        lowered = {key.lower(): value for key, value in headers.items()}
        lowered["content-location"] = url
        full = feedparser.parse(io.BytesIO(parse.defuse(cap_entries(body))),
                                response_headers=lowered, sanitize_html=False)
        assert isinstance(direct, dict)
        for key in ("version", "bozo", "namespaces"):
            assert direct[key] == full[key], (key, url)
        assert _plain(direct["feed"]) == _plain(full["feed"]), url
        assert _plain(direct["entries"]) == _plain(full["entries"]), url
        mine = _outcome(body, url, headers)
        theirs = _by_feedparser(body, url, headers, monkeypatch)
        assert mine == theirs, (url, headers)


def test_the_feeds_it_is_for_are_read_directly() -> None:
    """WordPress's RSS 2.0 and Atom feeds, Blogger's Atom, and most of the corpus's RSS 2.0
    and Atom 1.0 are read directly: losing them would silently double a parse's cost."""
    wordpress = sorted((FIXTURES / "wordpress-6.1").rglob("*.xml"))
    blogger = sorted((FIXTURES / "blogger").rglob("*.xml"))
    ours = sorted((FIXTURES / "plainfeed").rglob("*.xml"))
    assert wordpress and blogger and len(ours) == 2
    for path in [*wordpress, *blogger, *ours]:
        url = f"https://blog.example/{path.name}"
        assert _direct(path.read_bytes(), url, _fixture_headers(path)) is not None, path
    read = sum(1 for path in DOCUMENTS
               if _direct(path.read_bytes(), "https://x.example/", {}) is not None)
    print(f"read directly: {read} of {len(DOCUMENTS)}", file=sys.stderr)
    assert read >= len(DOCUMENTS) // 4


HOSTILE: dict[str, bytes] = {
    "unbound prefix": b'<rss version="2.0"><channel><item><x:y>1</x:y></item></channel></rss>',
    "markup in a title": b'<rss version="2.0"><channel><item><title>a <b>b</b></title>'
                         b"</item></channel></rss>",
    "xml:base": b'<feed xmlns="http://www.w3.org/2005/Atom" xml:base="http://evil.example/">'
                b'<entry><id>1</id><link href="x"/></entry></feed>',
    "xhtml content": b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>1</id>'
                     b'<content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">'
                     b"<p>hi</p></div></content></entry></feed>",
    "base64 content": b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>1</id>'
                      b'<content type="image/png">aGk=</content></entry></feed>',
    "truncated": b'<rss version="2.0"><channel><item><title>cut',
    "latin-1 mislabelled": '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
                           "<item><title>caf\xe9</title></item></channel></rss>".encode("latin-1"),
    "utf-8 read as latin-1": '<rss version="2.0"><channel><item><title>cafÃ©</title>'
                             "</item></channel></rss>".encode(),
    "relative links": b'<rss version="2.0"><channel><link>/</link><item><link>/a?x=1&amp;y=2'
                      b'</link><guid>/g</guid><description>&lt;a href="/r"&gt;r&lt;/a&gt;'
                      b"</description></item></channel></rss>",
    "entity bomb": b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><rss version="2.0">'
                   b"<channel><item><title>&a;</title></item></channel></rss>",
    "two titles": b'<rss version="2.0"><channel><title>one</title><image><title>i</title>'
                  b"</image><title>two</title><item><title></title><title>x</title></item>"
                  b"<item><title>first</title><title>second</title></item></channel></rss>",
    "WordPress.com media": b'<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/">'
                           b"<channel><item><title>Post</title><guid>1</guid>"
                           b'<media:content url="https://gravatar.example/a" medium="image">'
                           b'<media:title type="html">author</media:title></media:content>'
                           b"</item><item><guid>2</guid><media:content url=\"/b\">"
                           b"<media:title>only a media title</media:title></media:content>"
                           b"<media:thumbnail url='/t'/><title>late</title></item>"
                           b"</channel></rss>",
    "author with email": b'<rss version="2.0"><channel><item><author>me@example.org (Me)'
                         b"</author><guid>1</guid></item></channel></rss>",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_documents_read_as_feedparser_reads_them(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    body = HOSTILE[name]
    headers = {"content-type": "application/rss+xml"}
    url = "https://blog.example/feed/"
    assert _outcome(body, url, headers) == _by_feedparser(body, url, headers, monkeypatch)


def test_a_namespace_at_every_element_is_left_to_feedparser() -> None:
    items = b"".join(b'<x%d:e xmlns:x%d="urn:x:%d">v</x%d:e>' % (n, n, n, n) for n in range(3000))
    body = b'<rss version="2.0"><channel><item>' + items + b"</item></channel></rss>"
    headers = {"content-type": "application/rss+xml", "content-location": "https://b.example/"}
    assert plainfeed.read(body, headers) is None


def test_left_to_feedparser() -> None:
    """What the direct reader does not take, feedparser reads (the lenient parser, DOCTYPEs,
    XHTML, base64, markup inside text elements)."""
    headers = {"content-type": "application/rss+xml", "content-location": "https://b.example/"}
    for name in ("unbound prefix", "markup in a title", "xhtml content",
                 "base64 content", "truncated", "entity bomb"):
        assert plainfeed.read(HOSTILE[name], headers) is None, name


def test_with_another_feedparser_release_everything_is_left_to_feedparser(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader follows feedparser 6.0's strict parser: under another release, whose
    reading it has not been compared with, it stands aside."""
    path = FIXTURES / "wordpress-6.1" / "01-seed-thread" / "comments.atom.xml"
    url = "https://blog.example/comments/feed/atom/"
    assert _direct(path.read_bytes(), url, _fixture_headers(path)) is not None
    monkeypatch.setattr(plainfeed, "_FOLLOWED", False)
    assert _direct(path.read_bytes(), url, _fixture_headers(path)) is None
