"""OPML as feed readers write it (fixtures in their shapes, see tests/fixtures/opml/), and
the OPML 2.0 that `notifier export` writes, read back by listparser."""

from __future__ import annotations

from pathlib import Path

import listparser
import pytest

from notifier.opml import OpmlError, OpmlOutline, read_opml, subscription_name, write_opml

OPML = Path(__file__).parent / "fixtures" / "opml"
BLOG = "https://blog.example.org/feed/"
THREAD = "https://blog.example.org/2013/10/20/why-defend-stalin/feed/"
PLANET = "https://planetpython.example.org/rss20.xml"


@pytest.mark.parametrize(("fixture", "expected"), [
    ("google-reader.opml", [(THREAD, "Why Defend Stalin? – Comments"), (BLOG, "Example Blog"),
                            ("http://notes.blogspot.com/feeds/posts/default",
                             "Blogger: Notes")]),
    # A feed filed under two categories is one feed.
    ("feedly.opml", [(PLANET, "Planet Python"), (BLOG, "Example Blog"),
                     ("https://notizen.example.de/feed/atom/", "Über Notizen")]),
    ("miniflux.opml", [(BLOG, "Example Blog"), (PLANET, "Planet Python")]),
    # No title but the name; the ftp:// feed cannot be polled and is left out.
    ("rss2email.opml", [(BLOG, "example-blog"), (THREAD, "stalin-thread")]),
])
def test_each_readers_export_gives_its_feeds(fixture: str,
                                             expected: list[tuple[str, str]]) -> None:
    feeds = read_opml((OPML / fixture).read_bytes(), fixture)
    assert [(f.url, f.title) for f in feeds] == expected


def test_categories_are_kept_for_the_reader() -> None:
    feeds = read_opml((OPML / "google-reader.opml").read_bytes(), "x")
    assert feeds[0].categories == ("Marxists & historians",)
    assert feeds[2].categories == ()


@pytest.mark.parametrize("content", [
    b"",
    b"<html><body>not a list</body></html>",
    b"<?xml version='1.0'?><opml version='2.0'><head/><body></body></opml>",
    b"channels:\n  me: {type: console}\n",
])
def test_a_file_without_feeds_is_refused_with_its_name(content: bytes) -> None:
    with pytest.raises(OpmlError, match=r"^subs\.opml: no feeds found"):
        read_opml(content, "subs.opml")


def test_export_is_opml_2_that_readers_import() -> None:
    outlines = [OpmlOutline("the-thread", THREAD, "https://blog.example.org/2013/10/20/"
                            "why-defend-stalin/"),
                OpmlOutline("a & b <c>", BLOG),
                OpmlOutline("planet", PLANET, category="python")]
    text = write_opml(outlines, "notifier subscriptions")
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0">')
    parsed = listparser.parse(text)
    assert not parsed.bozo
    assert [(f.url, f.title) for f in parsed.feeds] == [
        (THREAD, "the-thread"), (BLOG, "a & b <c>"), (PLANET, "planet")]
    assert parsed.feeds[2].categories == [["python"]]
    assert [(f.url, f.title) for f in read_opml(text.encode(), "x")] == [
        (THREAD, "the-thread"), (BLOG, "a & b <c>"), (PLANET, "planet")]


def test_subscription_names_are_valid_and_unique() -> None:
    taken = {"Example-Blog"}
    assert subscription_name("Example Blog", BLOG, taken) == "Example-Blog-2"
    assert subscription_name("Why Defend Stalin? – Comments", THREAD, taken) == \
        "Why-Defend-Stalin-Comments"
    assert subscription_name("", "https://blog.example.org/a/b/", taken) == \
        "blog.example.org-a-b"
    assert subscription_name("???", "https://x.example/", taken) == "x.example"


def test_outlines_that_are_no_pollable_url_are_passed_over() -> None:
    """An export may hold a typo or a local file; the good feeds beside it still import."""
    content = (b"<?xml version='1.0'?><opml version='2.0'><head/><body>"
               b"<outline text='broken' xmlUrl='http://[bad'/>"
               b"<outline text='spaced' xmlUrl='http://blog.example.org/a b/feed/'/>"
               b"<outline text='local' xmlUrl='file:///home/ann/feed.xml'/>"
               b"<outline text='good' xmlUrl='https://blog.example.org/feed/'/>"
               b"</body></opml>")
    feeds = read_opml(content, "subs.opml")
    assert [(f.title, f.url) for f in feeds] == [("good", "https://blog.example.org/feed/")]
    only_bad = content.replace(b"<outline text='good' xmlUrl='https://blog.example.org/feed/'/>",
                               b"")
    with pytest.raises(OpmlError, match=r"^subs\.opml: no feeds found"):
        read_opml(only_bad, "subs.opml")
