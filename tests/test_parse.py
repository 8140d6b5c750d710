"""Parse-and-normalise tests: golden files for real WordPress output, behaviour tests for the rest.

The golden files under `tests/golden/` are the specification of what each fixture normalises
to; they were reviewed by eye. After an intended change, regenerate them with
`UPDATE_GOLDEN=1 pytest tests/test_parse.py`, then read the diff before committing it.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from notifier import entrytext, parse
from notifier.diff import SubscriptionView, decide, rekeyed
from notifier.htmltext import MAX_INPUT_CHARS, excerpt, html_to_text
from notifier.models import Entry, ParsedFeed
from notifier.parse import ParseError, parse_feed
from notifier.sources.wordpress import parse_wp_rest_comments
from tests.support.cpu import cpu_bound
from tests.support.golden import check_golden

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"
WP = FIXTURES / "wordpress-6.1"

POST = "http://blog.test/2013/10/20/why-defend-stalin/"
POST_TITLE = "Why Defend Stalin?"
C2 = POST + "#comment-2"
C3 = POST + "#comment-3"

# Where each fixture was fetched from (origin rewritten to blog.test, as in the fixtures).
URLS = {
    "posts.rss2.xml": "http://blog.test/feed/",
    "posts.atom.xml": "http://blog.test/feed/atom/",
    "comments.rss2.xml": "http://blog.test/comments/feed/",
    "comments.atom.xml": "http://blog.test/comments/feed/atom/",
    "post-comments.rss2.xml": POST + "feed/",
    "post-comments.atom.xml": POST + "feed/atom/",
}
FEED_GOLDENS = [
    ("01-seed-thread", "post-comments.atom.xml"),
    ("01-seed-thread", "post-comments.rss2.xml"),
    ("01-seed-thread", "comments.atom.xml"),
    ("01-seed-thread", "comments.rss2.xml"),
    ("01-seed-thread", "posts.rss2.xml"),
    ("01-seed-thread", "posts.atom.xml"),
    ("02-markup-comment", "post-comments.atom.xml"),
    ("03-burst-of-24", "comments.atom.xml"),
]
REST_GOLDENS = [("01-seed-thread", "rest-comments-post4.json")]
COMMENT_FEEDS = sorted(
    (path.parent.name, path.name)
    for path in WP.glob("*/*.xml")
    if "comments" in path.name and "paged2" not in path.name
)


# -- helpers -----------------------------------------------------------------------------------


def read_headers(path: Path) -> dict[str, str]:
    """The captured response headers beside a fixture body (status line skipped)."""
    headers: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return headers


def load_feed(scenario: str, name: str, url: str | None = None) -> ParsedFeed:
    path = WP / scenario / name
    headers = read_headers(path.with_name(name + ".headers"))
    return parse_feed(path.read_bytes(), url or URLS[name], headers)


def load_rest(scenario: str, name: str) -> tuple[Entry, ...]:
    body = (WP / scenario / name).read_bytes()
    return parse_wp_rest_comments(body, post_title=POST_TITLE, post_link=POST)


def by_key(entries: tuple[Entry, ...]) -> dict[str, Entry]:
    return {entry.key: entry for entry in entries}


# -- golden files ------------------------------------------------------------------------------


@pytest.mark.parametrize(("scenario", "name"), FEED_GOLDENS)
def test_feed_golden(scenario: str, name: str) -> None:
    check_golden(f"{scenario}__{name}.json", load_feed(scenario, name))


@pytest.mark.parametrize(("scenario", "name"), REST_GOLDENS)
def test_rest_golden(scenario: str, name: str) -> None:
    check_golden(f"{scenario}__{name}.json", {"entries": load_rest(scenario, name)})


def test_blogger_golden() -> None:
    body = (FIXTURES / "blogger" / "post-comments.atom.xml").read_bytes()
    url = "https://example-notes.blogspot.com/feeds/333/comments/default"
    feed = parse_feed(body, url, {"Content-Type": "application/atom+xml; charset=UTF-8"})
    check_golden("blogger__post-comments.atom.xml.json", feed)


# -- threading: the formats agree ----------------------------------------------------------------


def test_atom_rss_and_rest_agree_on_thread_of_comments_2_and_3() -> None:
    sources = {
        "post atom": by_key(load_feed("01-seed-thread", "post-comments.atom.xml").entries),
        "post rss2": by_key(load_feed("01-seed-thread", "post-comments.rss2.xml").entries),
        "site atom": by_key(load_feed("01-seed-thread", "comments.atom.xml").entries),
        "site rss2": by_key(load_feed("01-seed-thread", "comments.rss2.xml").entries),
        "rest": by_key(load_rest("01-seed-thread", "rest-comments-post4.json")),
    }
    for source, entries in sources.items():
        reply, top = entries[C3], entries[C2]
        assert (reply.parent_key, reply.post_key) == (C2, POST), source
        assert reply.parent_author == "East Side Boy", source
        assert (top.parent_key, top.post_key) == ("", POST), source
        assert reply.post_link == top.post_link == POST, source
        assert reply.post_title == POST_TITLE, source


def test_burst_replies_point_at_comment_3() -> None:
    entries = load_feed("03-burst-of-24", "comments.atom.xml").entries
    replies = {e.key.rsplit("-", 1)[1] for e in entries if e.parent_key == C3}
    assert replies == {"20", "25"}  # the two of 10, 15, 20, 25 still in the 10-item window
    assert all(e.parent_author == "southernfriedbolshevik" for e in entries if e.parent_key)
    rest_pages = [f"rest-comments-post4.page{n}.json" for n in (1, 2, 3)]
    rest = [e for page in rest_pages for e in load_rest("03-burst-of-24", page)]
    assert {e.key for e in rest if e.parent_key == C3} == {
        f"{POST}#comment-{n}" for n in (10, 15, 20, 25)
    }


def test_atom_rss_and_rest_agree_on_the_whole_burst() -> None:
    """Same keys, posts, parents, authors, dates and content for every comment 20-29.

    The REST keys must equal the feed keys (built from the post's guid), else a backfill
    would report a comment the feed already reported, under another name.
    """
    feeds = ["post-comments.atom.xml", "post-comments.rss2.xml", "comments.atom.xml",
             "comments.rss2.xml"]
    sources = {name: by_key(load_feed("03-burst-of-24", name).entries) for name in feeds}
    rest_pages = [f"rest-comments-post4.page{n}.json" for n in (1, 2, 3)]
    sources["rest"] = by_key(tuple(
        e for page in rest_pages for e in parse_wp_rest_comments(
            (WP / "03-burst-of-24" / page).read_bytes(), post_guid=POST)))
    window = [f"{POST}#comment-{n}" for n in range(20, 30)]

    def shape(entry: Entry) -> tuple[object, ...]:
        return (entry.parent_key, entry.post_key, entry.author, entry.published,
                entry.content_hash, entry.link)

    expected = {key: shape(sources["post-comments.atom.xml"][key]) for key in window}
    for source, entries in sources.items():
        assert {key: shape(entries[key]) for key in window} == expected, source
    assert {k for k in window if expected[k][0] == C3} == {POST + "#comment-20",
                                                           POST + "#comment-25"}


@pytest.mark.parametrize(("scenario", "name"), COMMENT_FEEDS)
def test_in_reply_to_line_never_reaches_content(scenario: str, name: str) -> None:
    feed = load_feed(scenario, name)
    assert feed.kind == "comments"
    for entry in feed.entries:
        assert "In reply to" not in entry.content_html
        assert "In reply to" not in entry.content_text
        assert entry.content_text  # and nothing else was eaten with it


def test_markup_comment_keeps_raw_html_but_text_has_no_script() -> None:
    entry = by_key(load_feed("02-markup-comment", "post-comments.atom.xml").entries)[
        POST + "#comment-5"
    ]
    assert "<script>alert(1)</script>" in entry.content_html  # sanitising happens later
    assert "alert(1)" not in entry.content_text
    assert "script" not in entry.content_text
    assert entry.content_text == (
        "Quote:\n\n> the people make the heroes\n\n"
        "and bold, a link <http://example.test/>, & an ampersand, end."
    )


@pytest.mark.parametrize("prefix", ["t", "thread", "thr"])
def test_thread_namespace_prefix_is_read_from_the_document(prefix: str) -> None:
    body = (WP / "01-seed-thread" / "post-comments.atom.xml").read_text(encoding="utf-8")
    # Without WordPress's "In reply to" line the thread element is the only parent source.
    body = re.sub(r"<p>In reply to <a [^>]*>[^<]*</a>\.</p>\s*", "", body)
    body = body.replace("xmlns:thr=", f"xmlns:{prefix}=").replace("<thr:", f"<{prefix}:")
    feed = parse_feed(body.encode(), URLS["post-comments.atom.xml"])
    entries = by_key(feed.entries)
    assert entries[C3].parent_key == C2
    assert entries[C3].parent_author == "East Side Boy"  # from comment 2 in the same feed
    assert entries[C2].parent_key == ""
    assert entries[C2].post_key == POST


def test_wordpress_keys_come_from_guids_not_permalinks() -> None:
    """Most blogs' post guids are "?p=ID", unlike the fixtures': keys must follow the guid."""
    guid = "http://blog.test/?p=4"
    for name in ("post-comments.rss2.xml", "post-comments.atom.xml"):
        body = (WP / "01-seed-thread" / name).read_text(encoding="utf-8")
        body = body.replace(f'"false">{POST}#comment-', f'"false">{guid}#comment-')  # <guid>
        body = body.replace(f"<id>{POST}#comment-", f"<id>{guid}#comment-")
        body = body.replace(f' ref="{POST}#comment-', f' ref="{guid}#comment-')
        body = body.replace(f' ref="{POST}"', f' ref="{guid}"')
        entries = by_key(parse_feed(body.encode(), URLS[name]).entries)
        reply, top = entries[f"{guid}#comment-3"], entries[f"{guid}#comment-2"]
        assert (reply.parent_key, reply.post_key) == (f"{guid}#comment-2", guid), name
        assert (top.parent_key, top.post_key) == ("", guid), name
        assert reply.post_link == POST and reply.link == C3, name
    rest_body = (WP / "01-seed-thread" / "rest-comments-post4.json").read_bytes()
    rest = by_key(parse_wp_rest_comments(rest_body, POST_TITLE, POST, post_guid=guid))
    assert rest[f"{guid}#comment-3"].parent_key == f"{guid}#comment-2"
    assert rest[f"{guid}#comment-3"].post_key == guid


def test_rss_summary_only_feed_still_yields_parent() -> None:
    """With "For each post in a feed, include: Summary" WordPress sends only an escaped line."""
    body = (WP / "01-seed-thread" / "post-comments.rss2.xml").read_text(encoding="utf-8")
    body = re.sub(r"<content:encoded>.*?</content:encoded>", "", body, flags=re.S)
    reply = by_key(parse_feed(body.encode(), URLS["post-comments.rss2.xml"]).entries)[C3]
    assert (reply.parent_key, reply.parent_author) == (C2, "East Side Boy")
    assert "In reply to" not in reply.content_html
    assert reply.content_html.startswith("Thank you very much")


def test_translated_reply_line_is_read_in_rss() -> None:
    body = (WP / "01-seed-thread" / "post-comments.rss2.xml").read_text(encoding="utf-8")
    body = body.replace("<p>In reply to <a", "<p>En réponse à <a")
    body = re.sub(r"<description>.*?</description>", "", body, flags=re.S)
    reply = by_key(parse_feed(body.encode(), URLS["post-comments.rss2.xml"]).entries)[C3]
    assert (reply.parent_key, reply.parent_author) == (C2, "East Side Boy")
    assert reply.content_html.startswith("<p>Thank you very much")


def test_comment_paging_segment_leaves_post_link() -> None:
    body = (WP / "01-seed-thread" / "post-comments.rss2.xml").read_text(encoding="utf-8")
    body = body.replace(f"<link>{POST}#comment-", f"<link>{POST}comment-page-2/#comment-")
    reply = by_key(parse_feed(body.encode(), URLS["post-comments.rss2.xml"]).entries)[C3]
    assert reply.link == POST + "comment-page-2/#comment-3"
    assert reply.post_link == POST
    assert reply.parent_key == C2


# -- feed kind -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [(name, "posts" if name.startswith("posts") else "comments") for name in sorted(URLS)],
)
def test_feed_kind_without_help_from_the_url(name: str, kind: str) -> None:
    assert load_feed("01-seed-thread", name, url="http://blog.test/some-feed").kind == kind


def test_empty_comment_page_is_still_a_comment_feed() -> None:
    feed = load_feed(
        "03-burst-of-24", "comments.rss2.paged2.xml", "http://blog.test/comments/feed/?paged=2"
    )
    assert (feed.kind, feed.entries) == ("comments", ())


# -- Blogger ---------------------------------------------------------------------------------------


def test_blogger_reply_parent_is_the_related_comment() -> None:
    body = (FIXTURES / "blogger" / "post-comments.atom.xml").read_bytes()
    feed = parse_feed(body, "https://example-notes.blogspot.com/feeds/333/comments/default")
    entries = by_key(feed.entries)
    tag = "tag:blogger.com,1999:blog-111.post-"
    reply, parent = entries[tag + "222"], entries[tag + "444"]
    assert feed.kind == "comments"
    assert (reply.parent_key, reply.parent_author) == (tag + "444", "Alan")
    assert parent.parent_key == "" and entries[tag + "555"].parent_key == ""
    assert {e.post_key for e in feed.entries} == {tag + "333"}
    assert {e.post_link for e in feed.entries} == {
        "https://example-notes.blogspot.com/2024/05/walking-old-railway.html"
    }
    assert reply.published == datetime(2024, 5, 3, 17, 15, tzinfo=UTC)


# -- identity fallbacks, errors, bounds ------------------------------------------------------------


def test_key_falls_back_to_link_then_content_hash() -> None:
    body = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
    <item><title>With link</title><link>http://ex.test/a</link><description>a</description></item>
    <item><title>No link</title><description>&lt;p&gt;b&lt;/p&gt;</description></item>
    </channel></rss>"""
    feed = parse_feed(body, "http://ex.test/feed/", {"content-type": "application/rss+xml"})
    with_link, no_link = feed.entries
    assert with_link.key == "http://ex.test/a"
    assert no_link.key == "sha256:" + no_link.content_hash
    assert len(no_link.content_hash) == 64 and no_link.content_text == "b"
    again = parse_feed(body, "http://ex.test/feed/", {"content-type": "application/rss+xml"})
    assert again.entries[1].key == no_link.key  # stable across polls


def rss(items: str, channel: str = "") -> bytes:
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Site</title>{channel}'
            f"{items}</channel></rss>").encode()


def test_key_of_an_untitled_guidless_item_prefers_title_and_date_over_the_hash() -> None:
    """Without guid or link, an edit of the text must not make the item look new."""
    item = ("<item><title>Release notes</title><pubDate>Tue, 02 Jan 2024 10:00:00 GMT</pubDate>"
            "<description>{}</description></item>")
    first = parse_feed(rss(item.format("v1 is out")), "http://ex.test/feed/").entries[0]
    edited = parse_feed(rss(item.format("v1 is out, fixed")), "http://ex.test/feed/").entries[0]
    assert first.key.startswith("title-date:") and first.key == edited.key
    assert first.content_hash != edited.content_hash  # still seen as an edit


@pytest.mark.parametrize("item", [
    "<item><link>http://ex.test/a</link><title>A</title><description>{}</description></item>",
    "<item><title>A</title><pubDate>Tue, 02 Jan 2024 10:00:00 GMT</pubDate>"
    "<description>{}</description></item>",
], ids=["link", "title-and-date"])
def test_an_edit_of_a_guidless_item_is_not_reported_again(item: str) -> None:
    """What a reader notices: the poll after an edit offers nothing new (only an edit)."""
    first = parse_feed(rss(item.format("v1")), "http://ex.test/feed/").entries
    seen = {entry.key: entry.content_hash for entry in first}
    edited = parse_feed(rss(item.format("v1, fixed")), "http://ex.test/feed/").entries
    decision = decide(edited, seen, [SubscriptionView("s", baselined=True, backfill=0)])
    assert decision.candidates["s"] == () and decision.new_entries == ()
    assert [e.key for e in decision.changed_entries] == [first[0].key]


COMMENT_ITEM = ("<item><title>By: Ann</title><dc:creator>Ann</dc:creator>{date}"
                "<description>{text}</description></item>")


def comments(item: str) -> list[Entry]:
    body = ('<?xml version="1.0"?>'
            '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">'
            f"<channel><title>Comments on: P</title>{item}</channel></rss>").encode()
    return list(parse_feed(body, "http://ex.test/p/comments/", expect="comments").entries)


def test_an_edit_of_a_comment_without_guid_or_link_is_an_edit_not_a_new_comment() -> None:
    """Keyed by its author and date (what aggregators compare when guid and link are
    missing), an edited comment is offered once as an edit, never again as new."""
    date = "<pubDate>Tue, 02 Jan 2024 10:00:00 GMT</pubDate>"
    (first,) = comments(COMMENT_ITEM.format(date=date, text="v1"))
    (edited,) = comments(COMMENT_ITEM.format(date=date, text="v1, fixed"))
    assert first.key.startswith(entrytext.AUTHOR_DATE_KEY) and first.key == edited.key
    decision = decide([edited], {first.key: first.content_hash},
                      [SubscriptionView("s", baselined=True, backfill=0)])
    assert decision.new_entries == () and [e.key for e in decision.changed_entries] == [first.key]


def test_a_comment_stored_under_its_content_digest_keeps_that_key_after_the_upgrade() -> None:
    """An earlier notifier keyed such a comment by its content: the store still knows it
    under that key, so the first poll after the upgrade does not report it again."""
    date = "<pubDate>Tue, 02 Jan 2024 10:00:00 GMT</pubDate>"
    (entry,) = comments(COMMENT_ITEM.format(date=date, text="v1"))
    legacy = entrytext.HASH_KEY + entry.content_hash
    (found,) = rekeyed([entry], {legacy: entry.content_hash})
    assert found.key == legacy
    decision = decide([found], {legacy: entry.content_hash},
                      [SubscriptionView("s", baselined=True, backfill=0)])
    assert decision.new_entries == () and decision.changed_entries == ()


def test_an_edit_of_an_item_with_no_guid_link_or_date_is_reported_as_new() -> None:
    """The one case nothing but the content identifies: keying by a title or an author
    alone would merge two items that share it and lose the second, so an edit is a new
    entry (a repeat rather than a miss; rss2email keys by content too)."""
    (first,) = comments(COMMENT_ITEM.format(date="", text="v1"))
    (edited,) = comments(COMMENT_ITEM.format(date="", text="v1, fixed"))
    assert first.key == entrytext.HASH_KEY + first.content_hash != edited.key
    decision = decide([edited], {first.key: first.content_hash},
                      [SubscriptionView("s", baselined=True, backfill=0)])
    assert [e.key for e in decision.new_entries] == [edited.key]
    # Two such comments by one author are two comments, not one.
    both = comments(COMMENT_ITEM.format(date="", text="one") +
                    COMMENT_ITEM.format(date="", text="two"))
    assert len({e.key for e in both}) == 2


def test_the_newer_of_two_items_under_one_guid_keeps_its_key_when_the_older_leaves() -> None:
    old = ("<item><guid>http://ex.test/day#a</guid><pubDate>Sun, 25 Jun 2017 12:27:31 GMT"
           "</pubDate><description>morning</description></item>")
    new = ("<item><guid>http://ex.test/day#a</guid><pubDate>Sun, 25 Jun 2017 12:32:31 GMT"
           "</pubDate><description>later</description></item>")
    pair = parse_feed(rss(new + old), "http://ex.test/feed/").entries
    seen = {e.key: e.content_hash for e in pair}
    (alone,) = parse_feed(rss(new), "http://ex.test/feed/").entries
    assert alone.key == "http://ex.test/day#a"  # bare again: it looks like an edit of "morning"
    (found,) = rekeyed([alone], seen)
    assert found.key == pair[0].key
    decision = decide([found], seen, [SubscriptionView("s", baselined=True, backfill=0)])
    assert decision.new_entries == () and decision.changed_entries == ()


def test_same_guid_with_new_content_across_polls_is_an_edit() -> None:
    item = "<item><guid>http://ex.test/1</guid><title>One</title><description>{}</description></item>"
    before = parse_feed(rss(item.format("first")), "http://ex.test/feed/").entries
    after = parse_feed(rss(item.format("second")), "http://ex.test/feed/").entries
    assert [e.key for e in before] == [e.key for e in after] == ["http://ex.test/1"]
    assert before[0].content_hash != after[0].content_hash


def test_a_second_item_under_a_known_guid_is_new_and_the_first_keeps_its_key() -> None:
    old = ("<item><guid>http://ex.test/day#a</guid><pubDate>Sun, 25 Jun 2017 12:27:31 GMT</pubDate>"
           "<description>morning</description></item>")
    new = ("<item><guid>http://ex.test/day#a</guid><pubDate>Sun, 25 Jun 2017 12:32:31 GMT</pubDate>"
           "<description>later</description></item>")
    (alone,) = parse_feed(rss(old), "http://ex.test/feed/").entries
    pair = parse_feed(rss(new + old), "http://ex.test/feed/").entries
    assert [e.content_text for e in pair] == ["later", "morning"]
    assert pair[1].key == alone.key == "http://ex.test/day#a"
    assert pair[0].key == "http://ex.test/day#a @2017-06-25T12:32:31+00:00"


@pytest.mark.parametrize("date", ["0001-01-01T00:00:00Z", "1970-01-01T00:00:00Z"])
def test_placeholder_dates_are_no_dates(date: str) -> None:
    """Hugo writes its zero time for a post without a date; that is not a date."""
    body = f"""<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>
    <entry><id>http://ex.test/p</id><title>p</title><updated>{date}</updated>
    <published>{date}</published></entry></feed>""".encode()
    (entry,) = parse_feed(body, "http://ex.test/index.xml").entries
    assert (entry.published, entry.updated) == (None, None)


def test_empty_markup_content_yields_to_the_summary_but_an_image_is_kept() -> None:
    body = rss("""<item xmlns:content="http://purl.org/rss/1.0/modules/content/">
      <guid>http://ex.test/1</guid><content:encoded><![CDATA[<p> </p>]]></content:encoded>
      <description>The summary</description></item>
      <item><guid>http://ex.test/2</guid><description>&lt;img src="http://ex.test/a.png"&gt;
      </description></item>""")
    text, image = parse_feed(body, "http://ex.test/feed/").entries
    assert text.content_text == "The summary"
    assert image.content_html.startswith('<img src="http://ex.test/a.png"')


def test_untyped_replies_link_is_the_comment_feed_but_a_page_is_not() -> None:
    body = b"""<feed xmlns="http://www.w3.org/2005/Atom"
      xmlns:thr="http://purl.org/syndication/thread/1.0"><title>t</title>
      <entry><id>http://ex.test/1</id><title>a</title>
        <link rel="replies" href="http://ex.test/1.html#comment-form" thr:count="9"/>
        <link rel="replies" href="/1/comments.atom" thr:count="2"/></entry>
      <entry><id>http://ex.test/2</id><title>b</title>
        <link rel="replies" type="text/html" href="http://ex.test/2.html"/></entry>
    </feed>"""
    typed, page_only = parse_feed(body, "http://ex.test/feed.atom").entries
    assert (typed.comments_feed, typed.comment_count) == ("http://ex.test/1/comments.atom", 2)
    assert page_only.comments_feed == ""


def test_fragment_links_in_content_point_into_the_entry_page() -> None:
    body = rss("""<item><link>http://ex.test/post/#comment-9</link>
      <description>&lt;a href="#comment-3"&gt;@Ann&lt;/a&gt; yes, and
      &lt;a href="/about"&gt;see&lt;/a&gt;</description></item>""")
    (entry,) = parse_feed(body, "http://ex.test/comments.rss").entries
    assert 'href="http://ex.test/post/#comment-3"' in entry.content_html
    assert 'href="http://ex.test/about"' in entry.content_html


def test_atom_source_author_comes_before_the_feed_author() -> None:
    body = b"""<feed xmlns="http://www.w3.org/2005/Atom"><title>Planet</title>
      <author><name>Planet Admin</name></author>
      <entry><id>urn:1</id><title>a</title><source><author><name>Ann</name>
        <uri>http://ann.test/</uri></author></source></entry>
      <entry><id>urn:2</id><title>b</title></entry>
      <entry><id>urn:3</id><title>c</title><author><name>Bob</name></author></entry></feed>"""
    entries = parse_feed(body, "http://planet.test/atom.xml").entries
    assert [(e.author, e.author_url) for e in entries] == [
        ("Ann", "http://ann.test/"), ("Planet Admin", ""), ("Bob", "")]


def test_a_tag_uri_in_reply_to_is_no_post_link() -> None:
    body = b"""<feed xmlns="http://www.w3.org/2005/Atom"
      xmlns:thr="http://purl.org/syndication/thread/1.0"><title>Comments</title>
      <entry><id>tag:ex.test,2024:c1</id><title>c</title><content>hi</content>
        <thr:in-reply-to ref="tag:ex.test,2024:p1" href="tag:ex.test,2024:p1"/></entry></feed>"""
    (entry,) = parse_feed(body, "http://ex.test/comments.atom").entries
    assert (entry.kind, entry.link, entry.post_link) == ("comment", "", "")
    assert entry.post_key == "tag:ex.test,2024:p1"  # an id still keys the post


def test_rss_channel_editor_is_not_every_item_author() -> None:
    body = rss("<item><guid>http://ex.test/1</guid><title>a</title></item>",
               "<managingEditor>ed@ex.test (Ed)</managingEditor>")
    assert parse_feed(body, "http://ex.test/feed/").entries[0].author == ""


@pytest.mark.parametrize(
    ("scenario", "name"), [("01-seed-thread", "post.html"), ("01-seed-thread", "home.html")]
)
def test_html_page_is_not_a_feed(scenario: str, name: str) -> None:
    path = WP / scenario / name
    with pytest.raises(ParseError, match="not a feed: got an HTML page"):
        parse_feed(
            path.read_bytes(), "http://blog.test/", read_headers(path.with_name(name + ".headers"))
        )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "no feed found: empty body"),
        (b"  \n", "no feed found: empty body"),
        (b'{"posts": []}', "not a feed: got JSON"),
        (b"\x00\x01 garbage", "no feed found: "),
        (b"<?xml version='1.0'?><note>hi</note>", "no feed found: "),
    ],
)
def test_garbage_is_not_a_feed(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=re.escape(message)):
        parse_feed(body, "http://ex.test/feed/", {"content-type": "application/xml"})


def test_a_url_like_body_is_never_fetched_or_opened() -> None:
    with pytest.raises(ParseError):
        parse_feed(b"http://127.0.0.1:9/feed", "http://ex.test/feed/")
    with pytest.raises(ParseError):
        parse_feed(b"/etc/hostname", "http://ex.test/feed/")


def test_lenient_parse_keeps_entries_and_says_why() -> None:
    body = b"""<rss version="2.0"><channel><title>t</title><item><guid>http://ex.test/1</guid>
    <title>Caf&eacute; &amp; more</title></item></channel></rss>"""
    feed = parse_feed(body, "http://ex.test/feed/", {"content-type": "application/rss+xml"})
    assert [e.key for e in feed.entries] == ["http://ex.test/1"]
    assert feed.warning


def test_entry_count_and_field_size_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parse, "MAX_ENTRIES", 5)
    items = "".join(
        f"<item><guid>http://ex.test/{n}</guid><title>{n}</title></item>" for n in range(8)
    )
    big = "é" * (parse.MAX_FIELD_BYTES // 2 + 1000)  # 2 bytes each: over 1 MiB encoded
    body = f"""<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>
    <item><guid>http://ex.test/big</guid><description>{big}</description></item>
    {items}</channel></rss>""".encode()
    feed = parse_feed(body, "http://ex.test/feed/", {"content-type": "application/rss+xml"})
    assert len(feed.entries) == 5
    assert "ignored the entries beyond the first 5" in feed.warning
    assert len(feed.entries[0].content_html.encode()) <= parse.MAX_FIELD_BYTES


@pytest.mark.parametrize("shape", ["atom", "rss", "rdf"])
def test_entries_beyond_the_cap_never_reach_feedparser(monkeypatch: pytest.MonkeyPatch,
                                                       shape: str) -> None:
    """100,000 entries cost feedparser 20 s and 300 MB: the document is cut before it reads
    them, and closed again, so the entries kept parse as a well-formed feed."""
    monkeypatch.setattr(parse, "MAX_ENTRIES", 5)
    monkeypatch.setattr(entrytext, "MAX_ENTRIES", 5)
    if shape == "atom":
        body = ('<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>'
                + "".join(f"<entry><id>http://ex.test/{n}</id><title>{n}</title></entry>"
                          for n in range(1000)) + "</feed>")
    elif shape == "rss":
        body = ('<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
                + "".join(f"<item><guid>http://ex.test/{n}</guid><title>{n}</title></item>"
                          for n in range(1000)) + "</channel></rss>")
    else:
        body = ('<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-'
                'syntax-ns#" xmlns="http://purl.org/rss/1.0/"><channel rdf:about="http://ex.'
                'test/"><title>t</title></channel>'
                + "".join(f'<item rdf:about="http://ex.test/{n}"><title>{n}</title>'
                          f"<link>http://ex.test/{n}</link></item>" for n in range(1000))
                + "</rdf:RDF>")
    cut = entrytext.cap_entries(body.encode())
    assert len(cut) < len(body) // 100 and entrytext.cap_entries(cut) is cut
    feed = parse_feed(body.encode(), "http://ex.test/feed/",
                      {"content-type": "application/xml"})
    assert [e.title for e in feed.entries] == ["0", "1", "2", "3", "4"]
    assert feed.warning == "ignored the entries beyond the first 5"  # well-formed: no bozo


def test_duplicate_items_count_once() -> None:
    item = "<item><guid>http://ex.test/1</guid><title>x</title></item>"
    body = f'<rss version="2.0"><channel><title>t</title>{item}{item}</channel></rss>'.encode()
    assert len(parse_feed(body, "http://ex.test/feed/").entries) == 1


# -- WordPress REST errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html><body>Error</body></html>", "not WordPress REST JSON"),
        (b"", "not WordPress REST JSON"),
        (b'{"code":"rest_forbidden","message":"Sorry.","data":{"status":401}}', "rest_forbidden"),
        (b'{"id": 3}', "got a JSON dict"),
        (b'[{"id": 3}, "x"]', "item 1 has no integer id"),
        (b"[" * 100_000, "not WordPress REST JSON"),
    ],
)
def test_rest_errors(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=re.escape(message)):
        parse_wp_rest_comments(body)


def test_rest_skips_unapproved_and_reads_utc_dates() -> None:
    body = json.dumps(
        [
            {"id": 7, "parent": 0, "status": "hold", "link": POST + "#comment-7"},
            {"id": 8, "parent": 7, "link": POST + "#comment-8", "date_gmt": "2013-10-24T09:03:00"},
        ]
    ).encode()
    (entry,) = parse_wp_rest_comments(body)
    assert (entry.key, entry.parent_key, entry.post_key) == (
        POST + "#comment-8", POST + "#comment-7", POST
    )  # fmt: skip
    assert entry.published == datetime(2013, 10, 24, 9, 3, tzinfo=UTC)


# -- html_to_text ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>one</p><p>two</p>", "one\n\ntwo"),
        ("a<br>b<br/><br /><br>c", "a\nb\n\nc"),
        ("<p>  lots   of\n\t space  </p>", "lots of space"),
        ("<p>x</p><p></p><p>&nbsp;</p><div></div><p>y</p>", "x\n\ny"),
        ("<blockquote><p>q1</p><p>q2</p></blockquote><p>after</p>", "> q1\n>\n> q2\n\nafter"),
        ("<blockquote>a<blockquote>b</blockquote></blockquote>", "> a\n>\n> > b"),
        ('<a href="http://ex.test/x">the x</a>', "the x <http://ex.test/x>"),
        ('<a href="http://ex.test/">http://ex.test/</a>', "http://ex.test/"),
        ('<a href="https://ex.test/">ex.test</a>', "ex.test"),
        ('<a href="javascript:alert(1)">click</a>', "click"),
        ('<a href="#comment-2">Bob</a>', "Bob"),
        ("<ul><li>one</li><li>two<ul><li>deep</li></ul></li></ul>", "- one\n- two\n  - deep"),
        ("<script>alert(1)</script><style>p{}</style><template><p>t</p></template>ok", "ok"),
        ("<svg><script>x</script><text>drawn</text></svg>ok", "ok"),
        ("&lt;b&gt; &amp; &#8217; &eacute;", "<b> & \u2019 é"),
        ('emoji <img src="x.png" alt="🙂" class="wp-smiley">!', "emoji 🙂!"),
        ("<pre>  a\n    b</pre>", "a\n    b"),
        ("", ""),
        ("plain text", "plain text"),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_html_to_text_max_chars_cuts_at_a_word() -> None:
    text = html_to_text("<p>" + "word " * 10_000 + "</p>", max_chars=23)
    assert text == "word word word word…"
    assert len(text) <= 23


@pytest.mark.parametrize(
    "hostile",
    [
        "<" * 300_000,
        "<!--" * 50_000,
        "<a href='" * 50_000,
        "<div>" * 100_000,
        "<blockquote>" * 50_000 + "x",
        "&" * 200_000,
        "<p>" + "a " * 500_000,
        "</" * 100_000,
        "<![CDATA[" * 50_000,
        "<a href='http://x/'>" * 30_000 + "x" + "</a>" * 30_000,
        "<a href='http://x/'>" * 30_000 + "<br>" * 30_000,
        "<svg>" * 30_000 + "</iframe>" * 30_000,
        "<blockquote>" * 2_000 + "<p>x</p>" * 30_000,
        "<ul>" * 30_000 + "<li>x" * 30_000,
    ],
)
def test_html_to_text_bounded_on_hostile_input(hostile: str) -> None:
    with cpu_bound(5.0, "hostile HTML to text"):  # 0.35 s needed at most
        text = html_to_text(hostile)
        assert len(html_to_text(hostile, max_chars=200)) <= 200
    assert len(text) <= MAX_INPUT_CHARS  # deep nesting does not multiply the output


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("hello world foo", 11, "hello…"),
        ("hello, world and more", 14, "hello, world…"),
        ("abcdefghijklmnop", 5, "abcd…"),
        ("a b", 0, ""),
        ("abc", 1, "…"),
    ],
)
def test_excerpt(text: str, limit: int, expected: str) -> None:
    assert excerpt(text, limit) == expected
    assert len(excerpt(text, limit)) <= max(limit, 0)


def test_pathological_nesting_and_nested_entities_never_reach_feedparser() -> None:
    """100,000 nested elements cost feedparser 78 MiB and 2 s; a billion laughs 67 MiB (expat
    stops it late, then the lenient parser starts over). Both are refused or defused first."""
    deep = b'<?xml version="1.0"?><rss><channel>' + b"<a>" * 100_000 + b"</channel></rss>"
    with pytest.raises(ParseError, match="nested more than 1,000 deep"):
        parse_feed(deep, "http://ex.test/feed/", {"content-type": "application/rss+xml"})
    laughs = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
              + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1
                                                        else b"&lol;") * 10)
                         for i in range(1, 10))
              + b']><rss version="2.0"><channel><title>&lol9;</title><item><guid>http://ex.'
                b"test/1</guid><title>One</title></item></channel></rss>")
    feed = parse_feed(laughs, "http://ex.test/feed/", {"content-type": "application/rss+xml"})
    assert len(feed.title) < 100 and [e.title for e in feed.entries] == ["One"]
    # Not nesting: unclosed HTML in a comment's CDATA, and many elements side by side.
    html = "<p>" * 1500
    items = "".join(f"<item><guid>http://ex.test/{n}</guid><description><![CDATA[{html}]]>"
                    f"</description></item>" for n in range(3))
    items += "".join(f"<item><guid>http://ex.test/s{n}</guid></item>" for n in range(600))
    body = f'<rss version="2.0"><channel><title>t</title>{items}</channel></rss>'.encode()
    ok = parse_feed(body, "http://ex.test/feed/", {"content-type": "application/rss+xml"})
    assert len(ok.entries) == 603
    page = b"<!DOCTYPE html><html><body>" + b"<br><p>" * 1500 + b"</body></html>"
    with pytest.raises(ParseError, match="got an HTML page"):
        parse_feed(page, "http://ex.test/", {"content-type": "text/html"})


def _relative_feed(marker: str, base: str = "") -> bytes:
    xml_base = f' xml:base="{base}"' if base else ""
    return f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"{xml_base}>
  <title>Relative links {marker}</title>
  <id>tag:example.org,2026:{marker}</id>
  <updated>2026-12-01T10:00:00Z</updated>
  <entry>
    <title>Entry {marker}</title>
    <id>tag:example.org,2026:{marker}-1</id>
    <link rel="alternate" type="text/html" href="posts/{marker}.html"/>
    <updated>2026-12-01T10:00:00Z</updated>
    <content type="html">&lt;p&gt;See &lt;a href="../about/"&gt;about&lt;/a&gt; and
      &lt;img src="img/{marker}.png"&gt;.&lt;/p&gt;</content>
  </entry>
</feed>""".encode()


def test_relative_links_resolve_against_each_feeds_own_base() -> None:
    """One parse worker reads many sites' feeds in turn: the same relative link in two
    feeds, or the same feed at two addresses, points into the site of the feed it came in."""
    first = parse_feed(_relative_feed("a"), "https://one.example/blog/feed/")
    second = parse_feed(_relative_feed("a"), "https://two.example/news/atom.xml")
    based = parse_feed(_relative_feed("b", "https://three.example/x/"),
                       "https://one.example/blog/feed/")
    again = parse_feed(_relative_feed("a"), "https://one.example/blog/feed/")
    assert [f.entries[0].link for f in (first, second, based, again)] == [
        "https://one.example/blog/feed/posts/a.html",
        "https://two.example/news/posts/a.html",
        "https://three.example/x/posts/b.html",
        "https://one.example/blog/feed/posts/a.html",
    ]
    assert 'href="https://one.example/blog/about/"' in first.entries[0].content_html
    assert 'src="https://one.example/blog/feed/img/a.png"' in first.entries[0].content_html
    assert 'href="https://two.example/about/"' in second.entries[0].content_html
    assert 'href="https://three.example/about/"' in based.entries[0].content_html
    assert "<https://two.example/about/>" in second.entries[0].content_text
    assert again == first
