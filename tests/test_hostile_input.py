"""Hostile and broken input: whatever a feed, a page or a config file holds, notifier answers
with its own clear error or a result, never a crash, and never lets markup through.

Property tests (hypothesis) mutate real captured documents as well as generating junk, since
mostly-valid input reaches deeper into a parser than random bytes do.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifier.config import ConfigError, load_config
from notifier.discover import find_feed_links
from notifier.htmltext import html_to_text
from notifier.parse import ParseError, parse_feed
from notifier.sanitize import sanitize_html

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "wordpress-6.1"
ATOM = (FIXTURES / "02-markup-comment" / "post-comments.atom.xml").read_bytes()
RSS = (FIXTURES / "01-seed-thread" / "post-comments.rss2.xml").read_bytes()
PAGE = (FIXTURES / "01-seed-thread" / "post.html").read_bytes()[:20_000]
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

HOSTILE = st.sampled_from([
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "<a href='javascript:x'>",
    "<iframe src=//evil>", "<svg onload=alert(1)>", "<form action=//evil><input></form>",
    "<a href='data:text/html,<script>x</script>'>y</a>", "<style>*{display:none}</style>",
    "<!--", "<![CDATA[", "&#0;", "\x00", "]]>", "<p", "</", "<<<<", "&amp;&lt;script&gt;",
])


@st.composite
def mutated(draw: st.DrawFn, document: bytes) -> bytes:
    """A real document with a slice replaced by hostile markup or junk bytes."""
    start = draw(st.integers(0, len(document)))
    end = draw(st.integers(start, min(len(document), start + 400)))
    insert = draw(st.one_of(HOSTILE.map(str.encode), st.binary(max_size=200)))
    return document[:start] + insert + document[end:]


@SETTINGS
@given(st.one_of(mutated(ATOM), mutated(RSS), st.binary(max_size=2000)))
def test_parse_feed_returns_a_feed_or_a_parse_error(body: bytes) -> None:
    try:
        feed = parse_feed(body, "http://blog.test/2013/10/20/why-defend-stalin/feed/atom/",
                          {"content-type": "application/atom+xml"})
    except ParseError as exc:
        assert str(exc)
        return
    for entry in feed.entries:
        assert entry.key and entry.kind in ("post", "comment")


@SETTINGS
@given(st.lists(st.one_of(HOSTILE, st.text(max_size=40)), max_size=30).map("".join))
def test_sanitised_html_never_carries_active_content(html: str) -> None:
    clean = sanitize_html(html, "http://blog.test/post/").lower()
    for bad in ("<script", "<iframe", "<svg", "<form", "<style", "onerror", "onload",
                "javascript:", "data:text"):
        assert bad not in clean
    html_to_text(clean)  # and its plain text (where "<script>" typed as text may appear)


@SETTINGS
@given(mutated(PAGE))
def test_discovery_survives_broken_pages(page: bytes) -> None:
    for link in find_feed_links(page, "http://blog.test/2013/10/20/why-defend-stalin/"):
        assert link.url.startswith(("http://", "https://"))


@SETTINGS
@given(st.text(max_size=600))
def test_any_config_text_gives_a_config_or_a_config_error(
        tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = tmp_path_factory.mktemp("cfg") / "notifier.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path, {})
    except ConfigError as exc:
        assert str(exc).startswith(str(path))


def test_deeply_nested_and_huge_markup_is_bounded() -> None:
    nested = "<blockquote>" * 50_000 + "deep" + "</blockquote>" * 50_000
    assert "deep" in html_to_text(nested) or html_to_text(nested) == ""
    clean = sanitize_html("<p>" + "x" * 2_000_000 + "</p>", "http://blog.test/")
    assert len(clean) < 1_100_000


@pytest.mark.parametrize("name", [b"\x80UTF-8", b"\x00UTF-8"])
def test_an_encoding_name_feedparser_cannot_read_is_not_a_feed(name: bytes) -> None:
    """feedparser's encoding detection raises on an XML declaration whose encoding name
    holds a non-ASCII byte or a NUL (found by the property test above), instead of flagging
    the document: that is a parse error naming it, not a crash of the parse."""
    body = b'<?xml version="1.0" encoding="' + name + b'" ?>' + ATOM.split(b"?>", 1)[1]
    with pytest.raises(ParseError, match="not a feed: "):
        parse_feed(body, "http://blog.test/2013/10/20/why-defend-stalin/feed/atom/",
                   {"content-type": "application/atom+xml"})
