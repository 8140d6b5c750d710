"""Discovery: from what a person typed to the feed worth polling, on real WordPress output."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Literal

import pytest

import notifier.pagelinks as pagelinks
from notifier.discover import (
    Discovery,
    DiscoveryError,
    FeedLink,
    atom_variant,
    choose_feed,
    discover,
    find_api_root,
    find_feed_links,
    is_comments_feed,
    looks_like_feed,
)
from notifier.fetch import Fetcher
from tests.support.blog_server import POST_PATH, BlogServer
from tests.support.cpu import cpu_bound

SEED = Path(__file__).resolve().parent / "fixtures" / "wordpress-6.1" / "01-seed-thread"
# Real pages from other projects' test suites; origins in tests/corpus/SOURCES.md.
PAGES = Path(__file__).resolve().parent / "corpus" / "html"
BLOG = "http://blog.test"
POST = BLOG + POST_PATH
RSS = "application/rss+xml"
ATOM = "application/atom+xml"
Watch = Literal["posts", "comments"]


def fixture(name: str) -> bytes:
    return (SEED / name).read_bytes()


def wp_links(*, post: bool) -> list[FeedLink]:
    links = [
        FeedLink(BLOG + "/feed/", RSS, "southernfriedbolshevik » Feed"),
        FeedLink(BLOG + "/comments/feed/", RSS, "southernfriedbolshevik » Comments Feed"),
    ]
    if post:
        links.append(
            FeedLink(
                POST + "feed/", RSS, "southernfriedbolshevik » Why Defend Stalin? Comments Feed"
            )
        )
    return links


# finding links


def test_feed_links_of_the_post_page_in_document_order() -> None:
    assert find_feed_links(fixture("post.html"), POST) == wp_links(post=True)


def test_feed_links_of_the_home_page() -> None:
    assert find_feed_links(fixture("home.html").decode(), BLOG + "/") == wp_links(post=False)


def test_feed_links_resolve_hrefs_and_respect_base() -> None:
    html = """<html><HEAD><base href="https://cdn.test/blog/">
    <!-- <link rel="alternate" type="application/rss+xml" href="/commented-out"> -->
    <script>var s = '<link rel="alternate" type="application/rss+xml" href="/in-script">';</script>
    <LINK REL="Alternate feed" TYPE="application/atom+xml; charset=utf-8" href="atom?a=1&amp;b=2"
      title=" Tom &amp;  Jerry ">
    <link rel="alternate" type="text/html" href="/not-a-feed">
    <link rel="alternate" type="application/feed+json" href="/feed.json" title="JSON">
    <link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">
    <link rel="alternate" type="application/rss+xml" href="http://[::1/broken">
    <link rel="stylesheet" type="application/rss+xml" href="/wrong-rel">
    <meta content="a > b" name="x"><link rel=alternate type=application/rss+xml href=/after-meta>
    </head><body><link rel="alternate" type="application/rss+xml" href="/in-body"></body>"""
    assert find_feed_links(html, "https://blog.test/page/") == [
        FeedLink("https://cdn.test/blog/atom?a=1&b=2", ATOM, "Tom & Jerry"),
        FeedLink("https://cdn.test/feed.json", "application/feed+json", "JSON"),
        FeedLink("https://cdn.test/after-meta", RSS, ""),
    ]


def test_feed_links_stop_at_body_without_head_end() -> None:
    html = '<link rel="alternate" type="application/rss+xml" href="/a"><body>' + (
        '<link rel="alternate" type="application/rss+xml" href="/b">'
    )
    assert [link.url for link in find_feed_links(html, "http://x.test/")] == ["http://x.test/a"]


def test_feed_links_in_the_body_count_when_the_head_has_none() -> None:
    html = ('<html><head><base href="http://x.test/b/"><title>t</title></head><body>'
            '<base href="http://evil.test/"><p>text</p>'
            '<link rel="alternate" type="application/rss+xml" href="feed.xml"></body></html>')
    assert [link.url for link in find_feed_links(html, "http://x.test/")] == [
        "http://x.test/b/feed.xml"
    ]


def test_youtube_channel_feed_is_found_deep_in_the_body() -> None:
    page = (PAGES / "RSParser__Tests__RSParserTests__Resources__YouTubeTheVolvoRocks.html")
    body = page.read_bytes()
    assert body.find(b"application/rss+xml") > 400_000  # far past <head>
    links = find_feed_links(body, "https://www.youtube.com/user/TheVolvoRocks")
    feed = "https://www.youtube.com/feeds/videos.xml?channel_id=UCct7QF2jcWRY6dhXWMSq9LQ"
    assert [link.url for link in links] == [feed]
    assert choose_feed(links, "https://www.youtube.com/user/TheVolvoRocks", "posts") == links[0]


@pytest.mark.parametrize("page", sorted(path.name for path in PAGES.glob("*.html")))
def test_real_pages_give_absolute_http_feed_links(page: str) -> None:
    links = find_feed_links((PAGES / page).read_bytes(), "https://site.test/page/")
    assert all(link.url.startswith(("http://", "https://")) for link in links)
    assert len({link.url for link in links}) == len(links)


class _Scan:
    """What a scan of hostile HTML handed to `HTMLParser`, which must be single bounded tags.

    Python 3.11's `HTMLParser.feed()` is quadratic on several unclosed constructs: more than
    two minutes of CPU for each of the pages below when fed whole. Checked exactly here; the
    CPU bound around each scan is a backstop for the scanner itself (it needs under 0.3 s).
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fed: list[int] = []
        feed = pagelinks._TagParser.feed

        def counting_feed(parser: pagelinks._TagParser, data: str) -> None:
            self.fed.append(len(data))
            feed(parser, data)

        monkeypatch.setattr(pagelinks._TagParser, "feed", counting_feed)

    def check(self, page_length: int) -> None:
        assert max(self.fed, default=0) <= pagelinks.MAX_TAG + 1, "a whole page parsed"
        assert sum(self.fed) <= 2 * page_length  # at most once by each of the two calls


def test_feed_links_in_the_body_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    far = " " * (3 * 1024 * 1024) + '<link rel="alternate" type="application/rss+xml" href="/f">'
    scan = _Scan(monkeypatch)
    with cpu_bound(20.0, "3 MB page"):
        assert find_feed_links("<head></head><body>" + far, "http://x.test/") == []
    scan.check(len(far))


@pytest.mark.parametrize(
    "hostile",
    [
        "<!--" * 200_000,
        "<" * 800_000,
        "</" * 400_000,
        "<?" * 400_000,
        "<!" * 400_000,
        "<a" * 400_000,
        "<a>" * 300_000,
        '<link a="x" ' * 100_000,
        "<link " + "= " * 400_000,
        '<link rel="alternate" type="application/rss+xml" href="/f">' * 20_000,
    ],
    ids=[
        "comments",
        "lt",
        "endtags",
        "pis",
        "decls",
        "open-tags",
        "tags",
        "attrs",
        "equals",
        "links",
    ],
)
def test_hostile_html_stays_linear(hostile: str, monkeypatch: pytest.MonkeyPatch) -> None:
    scan = _Scan(monkeypatch)
    with cpu_bound(20.0, "hostile page"):
        find_feed_links("<head>" + hostile, "http://x.test/")
        find_api_root(("<head>" + hostile).encode(), {}, "http://x.test/")
    scan.check(len(hostile))


# the REST API root


def test_api_root_from_the_link_header() -> None:
    headers = {
        "Content-Type": "text/html",
        "Link": f'<{BLOG}/wp-json/>; rel="https://api.w.org/", <{BLOG}/?p=4>; rel=shortlink',
    }
    assert find_api_root(None, headers, POST) == BLOG + "/wp-json/"


def test_api_root_from_the_page() -> None:
    assert find_api_root(fixture("post.html"), {}, POST) == BLOG + "/wp-json/"
    assert find_api_root(fixture("home.html"), {"link": "<x>; rel=next"}, BLOG) == (
        BLOG + "/wp-json/"
    )


def test_api_root_absent() -> None:
    assert find_api_root("<html><head></head></html>", {}, BLOG) is None
    assert find_api_root(None, {}, BLOG) is None


# sniffing


@pytest.mark.parametrize(
    "name", ["posts.rss2.xml", "posts.atom.xml", "comments.rss2.xml", "post-comments.atom.xml"]
)
def test_wordpress_feeds_look_like_feeds(name: str) -> None:
    assert looks_like_feed(fixture(name), "application/rss+xml; charset=UTF-8")
    assert looks_like_feed(fixture(name), "text/html")  # mislabelled still counts


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (
            b"\xef\xbb\xbf<?xml version='1.0'?>\n<!-- hi -->\n<?xml-stylesheet href='s'?><rss>",
            "text/plain",
            True,
        ),
        (
            b'<!DOCTYPE rss PUBLIC "-//Netscape//DTD RSS 0.91//EN" "x">\n<rss version="0.91">',
            "",
            True,
        ),
        (b"  \n<rdf:RDF xmlns:rdf='x'>", "application/xml", True),
        (b"<atom:feed xmlns:atom='http://www.w3.org/2005/Atom'>", "", True),
        ("\ufeff<feed>".encode("utf-16"), "", True),
        (b"<feedback>", "application/xml", False),
        (b"<!DOCTYPE html><html>", "application/rss+xml", False),
        (b"<sitemapindex>", "text/xml", False),
        (b"", "application/rss+xml", False),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": []}', "application/json", True),
        (b'{"id": 4}', "application/json", False),
        (b"x" * 10, "application/atom+xml", False),
        (b"<!-- " + b"x" * 20_000, "application/atom+xml", True),
    ],
)
def test_looks_like_feed(body: bytes, content_type: str, expected: bool) -> None:
    assert looks_like_feed(body, content_type) is expected


def test_html_pages_do_not_look_like_feeds() -> None:
    assert not looks_like_feed(fixture("post.html"), "text/html; charset=UTF-8")
    assert not looks_like_feed(fixture("rest-root.json"), "application/json")


# choosing


def test_choose_on_a_post_page() -> None:
    links = wp_links(post=True)
    assert choose_feed(links, POST, "comments") == links[2]
    assert choose_feed(links, POST, "posts") == links[0]


def test_choose_on_the_home_page() -> None:
    links = wp_links(post=False)
    assert choose_feed(links, BLOG + "/", "comments") == links[1]
    assert choose_feed(links, BLOG + "/", "posts") == links[0]


def test_choose_on_a_category_page_does_not_take_its_feed_for_comments() -> None:
    category = FeedLink(BLOG + "/category/news/feed/", RSS, "Site » News Category Feed")
    links = [*wp_links(post=False), category]
    assert not is_comments_feed(category)
    assert choose_feed(links, BLOG + "/category/news/", "comments") == links[1]


def test_choose_by_url_before_title_when_the_site_name_says_comment() -> None:
    links = [
        FeedLink(BLOG + "/feed/", RSS, "Comment Central » Feed"),
        FeedLink(BLOG + "/comments/feed/", RSS, "Comment Central » Comments Feed"),
    ]
    assert not is_comments_feed(links[0])
    assert choose_feed(links, BLOG + "/", "posts") == links[0]
    assert choose_feed(links, BLOG + "/", "comments") == links[1]


def test_a_subfolder_site_feed_is_read_by_the_part_of_its_title_after_the_site() -> None:
    posts = FeedLink(BLOG + "/blog/feed/", RSS, "Comment Corner » Feed")
    post = FeedLink(BLOG + "/blog/hello/feed/", RSS, "Comment Corner » Hello Comments Feed")
    assert not is_comments_feed(posts) and is_comments_feed(post)
    assert choose_feed([posts, post], BLOG + "/blog/hello/", "comments") == post


def test_choose_with_plain_permalinks() -> None:
    links = [
        FeedLink(BLOG + "/?feed=rss2", RSS, "Site » Feed"),
        FeedLink(BLOG + "/?feed=comments-rss2", RSS, "Site » Comments Feed"),
        FeedLink(BLOG + "/?feed=rss2&p=4", RSS, "Site » Post Comments Feed"),
    ]
    assert choose_feed(links, BLOG + "/?p=4", "comments") == links[2]
    assert choose_feed(links, BLOG + "/?p=5", "comments") == links[1]
    assert choose_feed(links, BLOG + "/?p=4", "posts") == links[0]


def test_choose_on_a_translated_wordpress_post() -> None:
    links = [
        FeedLink(BLOG + "/feed/", RSS, "Blog » Feed"),
        FeedLink(BLOG + "/comments/feed/", RSS, "Blog » Kommentar-Feed"),
        FeedLink(BLOG + "/2020/01/01/hallo/feed/", RSS, "Blog » Hallo Kommentar-Feed"),
    ]
    assert choose_feed(links, BLOG + "/2020/01/01/hallo/", "comments") == links[2]


def test_choose_on_blogger() -> None:
    site = "https://example.blogspot.com"
    links = [
        FeedLink(site + "/feeds/posts/default", ATOM, "Example - Atom"),
        FeedLink(site + "/feeds/posts/default?alt=rss", RSS, "Example - RSS"),
        FeedLink(site + "/feeds/8841/comments/default", ATOM, "Example - Atom"),
    ]
    page = site + "/2024/05/a-post.html"
    assert choose_feed(links, page, "comments") == links[2]
    assert choose_feed(links, page, "posts") == links[0]
    home = links[:2] + [FeedLink(site + "/feeds/comments/default", ATOM, "Example - Atom")]
    assert choose_feed(home, site + "/", "comments") == home[2]


def test_choose_puts_json_feed_last_and_may_find_nothing() -> None:
    json_feed = FeedLink(BLOG + "/feed.json", "application/feed+json", "JSON")
    atom = FeedLink(BLOG + "/feed/atom/", ATOM, "Atom")
    assert choose_feed([json_feed, atom], BLOG + "/", "posts") == atom
    assert choose_feed([json_feed], BLOG + "/", "posts") == json_feed
    assert choose_feed([atom], BLOG + "/", "comments") is None
    assert choose_feed([], BLOG + "/", "posts") is None


@pytest.mark.parametrize(
    ("url", "twin"),
    [
        (BLOG + "/feed/", BLOG + "/feed/atom/"),
        (BLOG + "/feed", BLOG + "/feed/atom/"),
        (BLOG + "/feed/rss2/", BLOG + "/feed/atom/"),
        (BLOG + "/comments/feed/", BLOG + "/comments/feed/atom/"),
        (POST + "feed/", POST + "feed/atom/"),
        (BLOG + "/?feed=rss2", BLOG + "/?feed=atom"),
        (BLOG + "/?feed=comments-rss2", BLOG + "/?feed=comments-atom"),
        (BLOG + "/?p=4&feed=rss2", BLOG + "/?p=4&feed=atom"),
        (
            "https://x.blogspot.com/feeds/posts/default?alt=rss",
            "https://x.blogspot.com/feeds/posts/default",
        ),
        (
            "https://x.blogspot.com/feeds/1/comments/default?alt=rss&max-results=50",
            "https://x.blogspot.com/feeds/1/comments/default?max-results=50",
        ),
        (BLOG + "/feed/atom/", None),
        (BLOG + "/?feed=atom", None),
        ("https://x.blogspot.com/feeds/posts/default", None),
        ("https://example.org/rss.xml", None),
        ("https://example.org/index.xml", None),
        ("http://[::1/feed/", None),
    ],
)
def test_atom_variant(url: str, twin: str | None) -> None:
    assert atom_variant(url) == twin


# discover() against the blog server


def run_discover(server: BlogServer, path: str, watch: Watch) -> Discovery:
    async def main() -> Discovery:
        async with Fetcher() as fetcher:
            return await discover(fetcher, server.url(path), watch)

    return asyncio.run(main())


def test_discover_post_page_comments(blog_server: BlogServer) -> None:
    found = run_discover(blog_server, POST_PATH, "comments")
    assert found.feed_url == blog_server.url(POST_PATH + "feed/atom/")
    assert found.api_root == blog_server.url("/wp-json/")
    assert found.source == "page"
    assert "post's own comment feed" in found.note


@pytest.mark.parametrize(
    ("watch", "feed_path"), [("posts", "/feed/atom/"), ("comments", "/comments/feed/atom/")]
)
def test_discover_home_page(blog_server: BlogServer, watch: Watch, feed_path: str) -> None:
    found = run_discover(blog_server, "/", watch)
    assert found.feed_url == blog_server.url(feed_path)
    assert found.api_root == blog_server.url("/wp-json/")


def test_discover_from_an_atom_feed_keeps_it(blog_server: BlogServer) -> None:
    found = run_discover(blog_server, "/comments/feed/atom/", "comments")
    assert found.feed_url == blog_server.url("/comments/feed/atom/")
    assert found.source == "feed"
    assert found.api_root == blog_server.url("/wp-json/")
    assert blog_server.count("/comments/feed/atom/") == 1  # no second request


def test_discover_from_an_rss_comment_feed_takes_its_atom_twin(blog_server: BlogServer) -> None:
    found = run_discover(blog_server, POST_PATH + "feed/", "comments")
    assert found.feed_url == blog_server.url(POST_PATH + "feed/atom/")
    assert found.source == "feed"


def test_discover_from_an_rss_posts_feed_keeps_it(blog_server: BlogServer) -> None:
    found = run_discover(blog_server, "/feed/", "posts")
    assert found.feed_url == blog_server.url("/feed/")
    assert blog_server.count("/feed/atom/") == 0


def test_discover_keeps_rss_when_the_atom_twin_fails(blog_server: BlogServer) -> None:
    blog_server.override(POST_PATH + "feed/atom/", status=404)
    found = run_discover(blog_server, POST_PATH, "comments")
    assert found.feed_url == blog_server.url(POST_PATH + "feed/")


def test_discover_follows_permanent_redirects_only(blog_server: BlogServer) -> None:
    blog_server.override("/moved", status=301, headers={"Location": "/comments/feed/atom/"})
    assert run_discover(blog_server, "/moved", "comments").feed_url == blog_server.url(
        "/comments/feed/atom/"
    )
    blog_server.override("/away", status=302, headers={"Location": "/comments/feed/atom/"})
    assert run_discover(blog_server, "/away", "comments").feed_url == blog_server.url("/away")


def test_discover_page_without_feed_links(blog_server: BlogServer) -> None:
    blog_server.add_file("/plain/", b"<html><head><title>x</title></head></html>", "text/html")
    with pytest.raises(DiscoveryError) as caught:
        run_discover(blog_server, "/plain/", "posts")
    assert str(caught.value) == (
        f"{blog_server.url('/plain/')} is an HTML page with no RSS or Atom feed link"
    )


def test_discover_page_without_a_comment_feed(blog_server: BlogServer) -> None:
    page = b'<head><link rel="alternate" type="application/rss+xml" href="/feed/"></head>'
    blog_server.add_file("/nocomments/", page, "text/html")
    with pytest.raises(DiscoveryError, match="none of its comments"):
        run_discover(blog_server, "/nocomments/", "comments")


def test_discover_http_error(blog_server: BlogServer) -> None:
    with pytest.raises(DiscoveryError) as caught:
        run_discover(blog_server, "/missing/", "posts")
    assert str(caught.value) == f"{blog_server.url('/missing/')}: HTTP 404 Not Found"


def test_discover_linked_feed_that_is_broken(blog_server: BlogServer) -> None:
    blog_server.override("/comments/feed/atom/", status=500)
    blog_server.override("/comments/feed/", status=500)
    with pytest.raises(DiscoveryError, match="which does not answer a feed"):
        run_discover(blog_server, "/", "comments")


def test_discover_neither_feed_nor_page(blog_server: BlogServer) -> None:
    with pytest.raises(DiscoveryError, match="neither a feed nor an HTML page"):
        run_discover(blog_server, "/wp-json/", "comments")


@pytest.mark.parametrize("url", ["ftp://example.org/feed", "http://[::1/"])
def test_discover_rejects_unusable_urls(url: str) -> None:
    async def main() -> Discovery:
        async with Fetcher() as fetcher:
            return await discover(fetcher, url, "posts")

    with pytest.raises(DiscoveryError):
        asyncio.run(main())
