"""The platform adapters: registry order, WordPress's cheap change probe."""

from __future__ import annotations

import asyncio

from notifier.fetch import Fetcher
from notifier.sources import SOURCES, Generic, Hints, WordPress, source_for
from notifier.sources.wordpress import (
    PROBE_SIZE,
    ProbeFailure,
    SiteProbe,
    probe_site,
    unexplained_change,
)
from tests.support.blog_server import BlogServer


def test_registry_asks_the_generic_adapter_last() -> None:
    assert isinstance(SOURCES[-1], Generic)
    assert isinstance(source_for(Hints(generator="WordPress 6.1.9")), WordPress)
    assert isinstance(source_for(Hints(generator="Hugo")), Generic)


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


def run_probe(server: BlogServer) -> SiteProbe | ProbeFailure:
    async def main() -> SiteProbe | ProbeFailure:
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
