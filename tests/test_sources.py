"""The platform adapters: registry order, a platform added as one class, the change probe."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from notifier import entrytext, sources
from notifier.backfill import Completion, feed_pages, follow_up
from notifier.diff import publication_order
from notifier.discover import FeedLink, atom_variant, choose_feed, is_comments_feed
from notifier.entrytext import ParseError
from notifier.failures import Failure, FailureKind
from notifier.fetch import Fetcher
from notifier.gaps import plan_follow_up
from notifier.models import Entry, ParsedFeed
from notifier.parse import parse_feed
from notifier.poll.news import SiteNews, probes_due, read_probes, rescan_now
from notifier.sources import (
    SOURCES,
    Backfill,
    Blogger,
    Generic,
    Hints,
    ReplyLine,
    Source,
    ThreadRef,
    WordPress,
    source_for,
)
from notifier.sources.wordpress import (
    PROBE_SIZE,
    SiteProbe,
    probe_site,
    rest_url,
    unexplained_change,
    wordpress_comments,
    wordpress_post_id,
)
from notifier.store import FeedState, SiteState
from tests.support import blogger_feed
from tests.support.blog_server import BlogServer


def test_registry_asks_the_generic_adapter_last() -> None:
    assert isinstance(SOURCES[-1], Generic)
    assert isinstance(source_for(Hints(generator="WordPress 6.1.9")), WordPress)
    assert isinstance(source_for(Hints(generator="Hugo")), Generic)


def test_blogger_is_recognised_by_generator_or_feed_id() -> None:
    assert isinstance(source_for(Hints(generator="Blogger 7.00")), Blogger)
    assert isinstance(source_for(Hints(feed_id="tag:blogger.com,1999:blog-1.comments")), Blogger)


def test_every_adapter_answers_not_mine_by_default() -> None:
    """A platform that answers nothing changes nothing: the neutral answers of `Source`."""

    class Silent(Source):
        name = "silent"

    silent = Silent()
    assert not silent.recognises(Hints(generator="WordPress"))
    assert silent.post_key_of("http://b.test/?p=4#comment-7") == ""
    assert silent.reply_line('<p>In reply to <a href="x#comment-1">A</a>.</p>', "", "k") is None
    assert silent.atom_twin("http://b.test/feed/") is None
    assert silent.thread_feed("http://b.test/x/feed/") == "http://b.test/x/feed/"
    assert source_for(Hints(generator="x"), (silent, Generic())).name == "generic"


# A made-up forum platform, written the way a new adapter file would be: its key shape
# (`/t/<topic>/<post>`), its comment-feed URL (`/t/<topic>.rss`) and its own reply line.
_FORUM_POST = re.compile(r"\A(?P<topic>https://forum\.test/t/\d+)/(?P<n>\d+)\Z")
_FORUM_REPLY = re.compile(r"\A<p>@(?P<name>\w+) wrote \(#(?P<n>\d+)\):</p>\s*")


class Forum(Source):
    name = "forum"

    def recognises(self, hints: Hints) -> bool:
        return hints.feed_url.startswith("https://forum.test/")

    def comment_feed(self, url: str, title: str = "") -> bool:
        return bool(re.match(r"\Ahttps://forum\.test/t/\d+\.rss\Z", url))

    def own_post_feed(self, url: str, title: str, page_url: str) -> bool | None:
        return url.removesuffix(".rss") == page_url if self.comment_feed(url) else None

    def post_key_of(self, comment_key: str) -> str:
        match = _FORUM_POST.match(comment_key)
        return match["topic"] if match else ""

    def reply_line(self, content: str, post_link: str, key: str) -> ReplyLine | None:
        match = _FORUM_REPLY.match(content)
        post = self.post_key_of(key)
        if match is None or not post:
            return None
        return ReplyLine(f"{post}/{match['n']}", match["name"], content[match.end():], True,
                         f"{post}/{match['n']}")


FORUM_FEED = b"""<?xml version="1.0"?>
<rss version="2.0"><channel><title>Topic 12</title><link>https://forum.test/t/12</link>
<item><guid>https://forum.test/t/12/1</guid><title>Ann</title><author>ann@forum.test (Ann)</author>
<description>&lt;p&gt;The first post.&lt;/p&gt;</description></item>
<item><guid>https://forum.test/t/12/2</guid><title>Bob</title><author>bob@forum.test (Bob)</author>
<description>&lt;p&gt;@Ann wrote (#1):&lt;/p&gt; &lt;p&gt;Agreed.&lt;/p&gt;</description></item>
</channel></rss>"""


def test_a_new_platform_is_one_class_in_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registered, the adapter's rules reach parse and discover, which were not touched."""
    url = "https://forum.test/t/12.rss"
    before = parse_feed(FORUM_FEED, url)
    assert before.kind == "posts"  # no platform knows this URL shape yet
    assert not is_comments_feed(FeedLink(url, "application/rss+xml", "Topic 12"))

    registry: Sequence[Source] = (Forum(), *SOURCES)
    monkeypatch.setattr(sources, "SOURCES", registry)
    parsed = parse_feed(FORUM_FEED, url)
    assert parsed.kind == "comments"
    first, reply = parsed.entries
    assert first.post_key == reply.post_key == "https://forum.test/t/12"
    assert reply.parent_key == first.key == "https://forum.test/t/12/1"
    assert reply.parent_author == "Ann"
    assert "wrote" not in reply.content_text and "Agreed." in reply.content_text
    link = FeedLink(url, "application/rss+xml", "Topic 12")
    assert is_comments_feed(link)
    assert choose_feed([link], "https://forum.test/t/12", "comments") == link
    assert atom_variant(url) is None
    assert isinstance(source_for(Hints(feed_url=url)), Forum)


def test_comment_page_markers_are_the_platforms_not_the_generic_rules() -> None:
    wordpress = "http://b.test/2013/10/20/p/comment-page-2/?replytocom=3#comment-5"
    blogger = "http://b.test/2024/05/walk.html?showComment=1001#c1001"
    # The rule below the adapters knows only what any link says: the fragment.
    assert entrytext.post_link(wordpress) == wordpress.partition("#")[0]
    assert entrytext.post_link(blogger) == blogger.partition("#")[0]
    # Asked through the registry, each platform strips its own markers.
    assert sources.post_link(wordpress) == "http://b.test/2013/10/20/p/"
    assert sources.post_link(blogger) == "http://b.test/2024/05/walk.html"
    assert sources.post_link("http://b.test/p/?id=4&cpage=3#comment-9") == "http://b.test/p/?id=4"


class PagedForum(Forum):
    """The forum, whose item links open the topic at a page: `/t/12?page=3#post-2`."""

    name = "paged-forum"
    comment_page_params = frozenset({"page"})


def test_a_new_platforms_comment_page_marker_is_declared_in_its_adapter_only(
        monkeypatch: pytest.MonkeyPatch) -> None:
    url = "https://forum.test/t/12.rss"
    paged = FORUM_FEED.replace(b"<guid>https://forum.test/t/12/2</guid>",
                               b"<guid>https://forum.test/t/12/2</guid>"
                               b"<link>https://forum.test/t/12?page=3#post-2</link>")
    monkeypatch.setattr(sources, "SOURCES", (Forum(), *SOURCES))
    assert parse_feed(paged, url).entries[1].post_link == "https://forum.test/t/12?page=3"
    monkeypatch.setattr(sources, "SOURCES", (PagedForum(), *SOURCES))
    assert parse_feed(paged, url).entries[1].post_link == "https://forum.test/t/12"


class VersionedForum(Forum):
    """A forum whose entry ids end with a revision (`/p/<id>#v2`), not its running number."""

    name = "versioned-forum"

    def sequence(self, key: str) -> int | None:
        match = re.match(r"\Ahttps://forum\.test/p/(\d+)#v\d+\Z", key)
        return int(match[1]) if match else None


def test_same_second_entries_are_ordered_by_the_platforms_own_number(
        monkeypatch: pytest.MonkeyPatch) -> None:
    when = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    entries = [Entry(key=f"https://forum.test/p/{n}#v{v}", kind="comment", published=when)
               for n, v in ((30, 1), (12, 2), (20, 3))]  # a feed, newest first
    # Known platforms' keys answer exactly: WordPress's comment id, Blogger's item id.
    assert sources.sequence("http://b.test/?p=4#comment-41") == 41
    assert sources.sequence("tag:blogger.com,1999:blog-1.post-1001") == 1001
    # Without the platform, a trailing number is only a guess: here the revision.
    assert [e.key[-2:] for e in publication_order(entries)] == ["v1", "v2", "v3"]
    monkeypatch.setattr(sources, "SOURCES", (VersionedForum(), *SOURCES))
    assert [e.key for e in publication_order(entries)] == [
        "https://forum.test/p/12#v2", "https://forum.test/p/20#v3", "https://forum.test/p/30#v1"]


def test_post_id_comes_from_the_link_header_of_a_single_post_feed() -> None:
    headers = {"link": '<http://b.test/wp-json/>; rel="https://api.w.org/", '
                       '<http://b.test/wp-json/wp/v2/posts/4>; rel="alternate"; '
                       'type="application/json", <http://b.test/?p=4>; rel=shortlink'}
    assert wordpress_post_id(headers, "http://b.test/x/feed/atom/") == "4"
    assert wordpress_post_id({"link": "<http://b.test/?p=17>; rel=shortlink"}, "") == "17"
    site_wide = {"link": '<http://b.test/wp-json/>; rel="https://api.w.org/"'}
    assert wordpress_post_id(site_wide, "http://b.test/comments/feed/") == ""


def test_rest_urls_for_pretty_and_plain_permalinks() -> None:
    assert rest_url("http://b.test/wp-json/", "wp/v2/comments/3") == \
        "http://b.test/wp-json/wp/v2/comments/3"
    assert rest_url("http://b.test/wp-json", "wp/v2/comments", {"post": 4}) == \
        "http://b.test/wp-json/wp/v2/comments?post=4"
    assert rest_url("http://b.test/?rest_route=/", "wp/v2/comments", {"post": 4}) == \
        "http://b.test/?rest_route=/wp/v2/comments&post=4"


class ForumWithApi(Forum):
    """The same forum with a thread listing: the backfill asks it, not WordPress."""

    name = "forum-api"

    def __init__(self) -> None:
        self.asked: list[ThreadRef] = []

    async def list_thread(self, fetcher: Fetcher, thread: ThreadRef) -> Backfill | None:
        self.asked.append(thread)
        return Backfill(tuple(Entry(key=f"{thread.post_guid}/{n}", kind="comment")
                              for n in (1, 2, 3)), complete=True, pages=1)


def test_a_new_platforms_thread_listing_fills_a_gap(monkeypatch: pytest.MonkeyPatch) -> None:
    forum = ForumWithApi()
    monkeypatch.setattr(sources, "SOURCES", (forum, *SOURCES))
    window = parse_feed(FORUM_FEED, "https://forum.test/t/12.rss")
    plan = plan_follow_up(window, api_root="https://forum.test/api/", post_id="12",
                          seen=set(), had_entries=True, stored=0, rescan=False)
    assert plan.how == "thread"

    async def not_needed(body: bytes, url: str, headers: dict[str, str]) -> Failure:
        raise AssertionError("a listing needs no feed parsing")

    async def main() -> Completion:
        async with Fetcher() as fetcher:
            return await follow_up(plan, forum, fetcher, not_needed, parsed=window,
                                   api_root="https://forum.test/api/", post_id="12",
                                   post_guid="https://forum.test/t/12", seen=set())

    done = asyncio.run(main())
    assert [e.key for e in done.entries] == [f"https://forum.test/t/12/{n}" for n in (1, 2, 3)]
    assert done.missing == 0 and forum.asked[0].post_id == "12"


def test_wordpress_post_key_from_comment_key() -> None:
    assert WordPress().post_key_of("http://b.test/?p=4#comment-7") == "http://b.test/?p=4"
    assert WordPress().post_key_of("tag:blogger.com,1999:blog-1.post-2") == ""


def probe(total: int, *ids: int) -> SiteProbe:
    ordered = tuple(sorted(ids, reverse=True))
    return SiteProbe(total, ordered[0] if ordered else 0, ordered)


def test_first_probe_is_the_baseline() -> None:
    assert not unexplained_change(None, probe(3, 3, 2))


def test_new_ids_explain_a_rise() -> None:
    assert not unexplained_change(probe(3, 3, 2), probe(5, 5, 4, 3, 2))
    assert not unexplained_change(probe(3, 3, 2), probe(3, 3, 2))


def test_late_approval_rise_without_new_id() -> None:
    assert unexplained_change(probe(3, 3, 2), probe(4, 3, 2, 1))


def test_trash_is_a_fall() -> None:
    assert unexplained_change(probe(3, 3, 2), probe(2, 3))


def test_new_id_hiding_a_trash() -> None:
    assert unexplained_change(probe(3, 3, 2), probe(3, 4, 3))


def test_more_new_ids_than_one_probe_shows() -> None:
    ids = range(10 + PROBE_SIZE, 10, -1)
    assert unexplained_change(probe(3, 3, 2), probe(3 + PROBE_SIZE, *ids))


def run_probe(server: BlogServer) -> SiteProbe | Failure:
    async def main() -> SiteProbe | Failure:
        async with Fetcher() as fetcher:
            return await probe_site(fetcher, server.url("/wp-json/"))

    return asyncio.run(main())


def test_probe_sees_a_trashed_comment(blog_server: BlogServer) -> None:
    blog_server.scenario = "03-burst-of-24"
    before = run_probe(blog_server)
    assert isinstance(before, SiteProbe)
    assert before.newest_id == 29
    blog_server.scenario = "04-edit-and-trash"
    after = run_probe(blog_server)
    assert isinstance(after, SiteProbe)
    assert after.total == before.total - 1
    assert 5 not in after.ids
    assert unexplained_change(before, after)


def test_probe_sees_a_late_approval(blog_server: BlogServer) -> None:
    before = run_probe(blog_server)
    assert isinstance(before, SiteProbe)
    assert (before.total, before.newest_id) == (2, 3)
    blog_server.extra_rest_comments.append({"id": 1, "post": 4})
    after = run_probe(blog_server)
    assert isinstance(after, SiteProbe)
    assert (after.total, after.newest_id) == (3, 3)
    assert unexplained_change(before, after)
    assert not unexplained_change(after, run_probe_ok(blog_server))


def run_probe_ok(server: BlogServer) -> SiteProbe:
    result = run_probe(server)
    assert isinstance(result, SiteProbe)
    return result


# -- failures of listings and probes are typed values, like a poll's ---------------------


def test_a_probe_answered_with_an_error_status_fails_as_a_typed_value(
        blog_server: BlogServer) -> None:
    blog_server.override("/wp-json/wp/v2/comments", status=503, repeat=None)
    failed = run_probe(blog_server)
    assert isinstance(failed, Failure) and failed.kind is FailureKind.HTTP
    assert failed.message.startswith("REST API: HTTP 503")
    assert not failed.kind.needs_a_person


def test_a_probe_answered_with_a_page_that_is_not_rest_json_needs_a_person(
        blog_server: BlogServer) -> None:
    blog_server.override("/wp-json/wp/v2/comments", status=200, repeat=None,
                         body=b"<html><body>Maintenance</body></html>",
                         headers={"Content-Type": "text/html"})
    failed = run_probe(blog_server)
    assert isinstance(failed, Failure) and failed.kind is FailureKind.NOT_A_FEED
    assert "not WordPress REST JSON" in failed.message and failed.kind.needs_a_person


def _list_post_4(server: BlogServer) -> Backfill:
    async def main() -> Backfill:
        async with Fetcher() as fetcher:
            return await wordpress_comments(fetcher, server.url("/wp-json/"), "4",
                                            post_guid="http://blog.test/?p=4")

    return asyncio.run(main())


def test_a_listing_answered_with_a_server_error_fails_as_a_transient_http_failure(
        blog_server: BlogServer) -> None:
    blog_server.scenario = "03-burst-of-24"
    listed = _list_post_4(blog_server)
    assert listed.failure is None and listed.complete and len(listed.entries) == 27
    blog_server.override("/wp-json/wp/v2/comments", status=502, repeat=None)
    failed = _list_post_4(blog_server)
    assert failed.failure is not None and failed.failure.kind is FailureKind.HTTP
    assert failed.transient and not failed.complete


def test_a_listing_of_something_else_than_comments_is_not_transient(
        blog_server: BlogServer) -> None:
    blog_server.override("/wp-json/wp/v2/comments", status=200, repeat=None,
                         body=b'{"code": "rest_forbidden", "message": "Sorry."}',
                         headers={"Content-Type": "application/json"})
    failed = _list_post_4(blog_server)
    assert failed.failure is not None and failed.failure.kind is FailureKind.NOT_A_FEED
    assert "rest_forbidden" in failed.failure.message and not failed.transient


def test_an_older_page_that_fails_ends_the_backfill_with_a_typed_failure(
        blog_server: BlogServer) -> None:
    comments = [blogger_feed.Comment(100 + n, f"Walker {n}", "On the railway.", n)
                for n in range(30)]
    blog_server.add_file(blogger_feed.page_path(26, 25),
                         blogger_feed.comment_page(comments, start=26, per_page=25),
                         "application/atom+xml; charset=UTF-8")

    async def parse(body: bytes, url: str, headers: dict[str, str]) -> ParsedFeed | Failure:
        try:  # what the parse pool answers
            return parse_feed(body, url, headers)
        except ParseError as exc:
            return Failure(FailureKind.NOT_A_FEED, str(exc))

    async def main() -> Backfill:
        async with Fetcher() as fetcher:
            return await feed_pages(fetcher, blog_server.url(blogger_feed.page_path(26, 25)),
                                    parse, set())

    read = asyncio.run(main())
    assert read.failure is None and read.complete and len(read.entries) == 5
    blog_server.override(blogger_feed.FEED_PATH, status=503, repeat=None)
    failed = asyncio.run(main())
    assert failed.failure is not None and failed.failure.kind is FailureKind.HTTP
    assert failed.failure.message.startswith("next page: HTTP 503") and failed.transient
    blog_server.clear_overrides()
    blog_server.override(blogger_feed.FEED_PATH, status=200, repeat=None,
                         body=b"<html><body>Sign in</body></html>",
                         headers={"Content-Type": "text/html"})
    refused = asyncio.run(main())
    assert refused.failure is not None and refused.failure.kind is FailureKind.NOT_A_FEED
    assert refused.failure.message.startswith("next page: ") and not refused.transient


# -- what probe answers mean: pure, no server, no store, no clock ------------------------

SITE = "http://b.test/wp-json/"


def _thread(post_id: str | None, *, rescan_due: float | None = None) -> FeedState:
    return FeedState(id=1, url="http://b.test/p/feed/atom/", title="", api_root=SITE,
                     etag='"e"', last_modified=None, body_hash=None, interval=600.0,
                     next_due=0.0, last_polled=None, last_status=200, last_failure=None,
                     error_count=0, post_id=post_id, rescan_due=rescan_due)


def test_a_late_approval_rescans_the_site_and_a_new_id_reads_its_post_in_full() -> None:
    stored = {SITE: SiteState(SITE, 3, 3, next_probe=1000.0)}
    late = SiteProbe(4, 3, (3, 2, 1), {3: 4, 2: 4, 1: 4})
    reading = read_probes({SITE: (WordPress(), late)}, stored, {SITE: 600.0}, now=2000.0)
    assert reading.news.moved == {SITE} and reading.moved[0].after == 4
    assert reading.save == (SiteState(SITE, 4, 3, next_probe=2600.0),)
    assert rescan_now(_thread("4"), 21600.0, reading.news, now=2000.0)
    assert not rescan_now(_thread("4"), None, reading.news, now=2000.0)  # posts only

    new = SiteProbe(5, 7, (7, 3, 2, 1), {7: 9, 3: 4, 2: 4, 1: 4})
    reading = read_probes({SITE: (WordPress(), new)}, stored | {SITE: reading.save[0]},
                          {SITE: 600.0}, now=2600.0)
    assert reading.news.moved == frozenset() and reading.news.touched[SITE] == {"9"}
    assert reading.news.unconditional(_thread("9")) and not reading.news.unconditional(
        _thread("4"))
    assert reading.news.unconditional(_thread(None))  # a site-wide feed: any news
    assert not rescan_now(_thread("4"), 21600.0, reading.news, now=2600.0)
    assert rescan_now(_thread("4", rescan_due=2500.0), 21600.0, reading.news, now=2600.0)


def test_a_failed_or_missing_probe_keeps_the_stored_baseline() -> None:
    stored = {SITE: SiteState(SITE, 3, 3, next_probe=1000.0)}
    down = Failure(FailureKind.HTTP, "REST API: HTTP 503 Service Unavailable")
    reading = read_probes({SITE: (WordPress(), down), "http://c.test/": (Generic(), None)},
                          stored, {SITE: 600.0, "http://c.test/": 600.0}, now=2000.0)
    assert reading.save == () and reading.failed == ((SITE, down),)
    # Nothing to act on; both count as asked, so no later batch of the cycle asks again.
    assert reading.news == SiteNews(asked=frozenset({SITE, "http://c.test/"}))


def test_a_cycles_batches_join_their_news() -> None:
    """A site's threads may be claimed in any batch of a cycle: each batch's news joins the
    earlier ones', and a site asked already is not asked again, unless a later batch wants
    the comments' text and it was asked for ids only."""
    other = "http://c.test/wp-json/"
    first = SiteNews(frozenset({SITE}), {SITE: frozenset({"4"})}, {}, frozenset({SITE}))
    second = SiteNews(frozenset(), {SITE: frozenset({"5"}), other: frozenset({"7"})},
                      {other: frozenset({"7"})}, frozenset({other}), frozenset({other}))
    both = first | second
    assert both.moved == {SITE}
    assert both.touched == {SITE: {"4", "5"}, other: {"7"}} and both.edited == {other: {"7"}}
    assert rescan_now(_thread("9"), 21600.0, both, now=0.0)  # moved in the first batch
    assert both.unconditional(_thread("5")) and not both.unconditional(_thread("6"))
    assert both.answered(frozenset()) == {SITE, other}
    assert both.answered(frozenset({SITE, other})) == {other}  # SITE: ids only so far
    assert first | SiteNews() == first == SiteNews() | first
    # Kept in the state for threads polled at a later tick or by another node: every
    # thread of a site whose count moved, those of edited posts elsewhere.
    assert (first | second).rescans() == {SITE: None, other: {"7"}}
    assert SiteNews(touched={SITE: frozenset({"4"})}).rescans() == {}


def test_a_site_is_probed_when_due_never_before_or_when_forced() -> None:
    stored = {SITE: SiteState(SITE, 3, 3, next_probe=1000.0)}
    intervals = {SITE: 600.0, "http://c.test/wp-json/": 600.0}
    assert probes_due(intervals, stored, 999.0, force=False) == ["http://c.test/wp-json/"]
    assert probes_due(intervals, stored, 1000.0, force=False) == list(intervals)
    assert probes_due(intervals, stored, 0.0, force=True) == list(intervals)


def test_a_changed_comment_text_rescans_only_its_posts_thread() -> None:
    """`notify_edits`: the probe carries text digests; an edit names its post, whose thread
    is rescanned, and no other; a comment new to the probe or a first probe with text is no
    edit."""
    stored = {SITE: SiteState(SITE, 3, 3, next_probe=1000.0, texts={3: "a", 2: "b", 1: "c"})}
    edited = SiteProbe(4, 7, (7, 3, 2, 1), {7: 9, 3: 4, 2: 5, 1: 5},
                       {7: "new", 3: "a", 2: "B", 1: "c"})
    reading = read_probes({SITE: (WordPress(), edited)}, stored, {SITE: 600.0}, now=2000.0)
    assert reading.news.edited == {SITE: {"5"}} and reading.news.moved == frozenset()
    assert reading.save[0].texts == edited.texts  # the next baseline
    assert rescan_now(_thread("5"), 21600.0, reading.news, now=2000.0)
    assert not rescan_now(_thread("4"), 21600.0, reading.news, now=2000.0)
    assert rescan_now(_thread(None), 21600.0, reading.news, now=2000.0)  # site-wide feed

    no_text_before = {SITE: SiteState(SITE, 3, 3, next_probe=1000.0)}
    first = read_probes({SITE: (WordPress(), edited)}, no_text_before, {SITE: 600.0}, 2000.0)
    assert first.news.edited == {} and first.edited == ()


def test_the_probe_asks_for_text_only_when_edits_are_wanted(blog_server: BlogServer) -> None:
    async def main(edits: bool) -> SiteProbe | Failure:
        async with Fetcher() as fetcher:
            return await probe_site(fetcher, blog_server.url("/wp-json/"), edits=edits)

    blog_server.scenario = "04-edit-and-trash"
    plain, texts = asyncio.run(main(False)), asyncio.run(main(True))
    assert isinstance(plain, SiteProbe) and isinstance(texts, SiteProbe)
    assert plain.texts == {} and plain.ids == texts.ids
    assert set(texts.texts) == set(texts.ids) and len(set(texts.texts.values())) == len(texts.ids)
    blog_server.scenario = "03-burst-of-24"
    before = asyncio.run(main(True))
    assert isinstance(before, SiteProbe)
    assert texts.edited_since(before) == {"4"}  # comment 2 of post 4, edited on the blog
    assert before.edited_since(before) == frozenset()


def test_a_probe_without_text_keeps_the_stored_digests() -> None:
    """A cycle whose due threads want no edits probes without text; an edit made then is
    still found by the next probe that asks, against the digests stored before."""
    stored = {SITE: SiteState(SITE, 3, 3, next_probe=1000.0, texts={3: "a", 2: "b"})}
    plain = SiteProbe(3, 3, (3, 2), {3: 4, 2: 4})
    kept = read_probes({SITE: (WordPress(), plain)}, stored, {SITE: 600.0}, now=2000.0)
    assert kept.save[0].texts == {3: "a", 2: "b"} and kept.news.edited == {}
    asked = SiteProbe(3, 3, (3, 2), {3: 4, 2: 4}, {3: "a", 2: "B"})
    later = read_probes({SITE: (WordPress(), asked)}, {SITE: kept.save[0]}, {SITE: 600.0},
                        now=2600.0)
    assert later.news.edited == {SITE: {"4"}}
