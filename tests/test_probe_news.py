"""A site probe's news reaches every followed thread of its site, not only the feeds that
happened to be claimed beside the probe.

One WordPress site (one REST root) with several followed threads; a comment on each is
approved late (an old id, an old date: neither the feed's validators nor the site's newest
id move, so a conditional GET answers 304). The site probe sees the count move; every
thread must be read in full within one poll interval, whichever claim batch (a cycle claims
`claim_size` feeds at a time), tick or node polls it. An imported comment (a new id, an
old date: the count is explained, no validator moves, and a thread of more than 10 shows
only its newest 10 by date) is found the same way, for its own thread only, while a
comment made now costs no more than its thread's feed. Runs on SQLite and, when
NOTIFIER_TEST_POSTGRES_URL is set, on PostgreSQL, in-process (the `Engine` a daemon runs)
against the blog server on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import TypeVar

import pytest
import yaml

from notifier.cluster import Node
from notifier.config import Config, load_config
from notifier.daemon import Engine
from notifier.failures import Failure
from notifier.fetch import Fetcher
from notifier.poll import cycle as poll_cycle
from notifier.poll.news import Reading, SiteNews, read_probes, rescan_now
from notifier.sources import SiteProbe
from notifier.sources.wordpress import WordPress, probe_site
from notifier.store import FeedState, PollRecord, SiteState, Store
from tests.support import databases
from tests.support.blog_server import BlogServer, Post, PostComment
from tests.support.engine import running_engine

T = TypeVar("T")

THREADS = 5
"""Followed threads on the one site: with claims of 2 feeds, at least three batches."""
BATCH = 2


class Clock:
    """Wall time moved on by the test instead of sleeping through intervals."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead


@pytest.fixture(params=databases.KINDS)
def state(request: pytest.FixtureRequest, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A state URL; on SQLite claims as small as PostgreSQL's (`claim_size` takes 2,000
    feeds there, a batch this test would need 2,000 threads to fill)."""
    if request.param == "sqlite":
        monkeypatch.setattr(poll_cycle, "claim_size", lambda config, store: BATCH)
    with databases.state_url(request.param, tmp_path) as url:
        yield url


def _site(blog: BlogServer) -> list[Post]:
    """Posts 10.. on the blog's site, each with two comments (ids 100.., late October)."""
    posts = []
    for i in range(THREADS):
        post = Post(10 + i, f"/2013/10/{25 + i}/post-{i}/", f"Post {i}", [
            PostComment(100 + 2 * i, "Ann", f"2013-10-{25 + i}T10:00:00", f"First on {i}"),
            PostComment(101 + 2 * i, "Bob", f"2013-10-{25 + i}T11:00:00", f"Second on {i}"),
        ])
        blog.add_post(post)
        posts.append(post)
    return posts


def _config(folder: Path, state: str, blog: BlogServer, posts: list[Post]) -> Config:
    path = folder / "notifier.yaml"
    path.write_text(yaml.safe_dump({
        "state": state,
        "defaults": {"interval": "10m", "jitter": 0},
        "http": {"concurrency": BATCH, "per_host": BATCH},  # PostgreSQL: claims of 2
        "channels": {"me": {"type": "console"}},
        "subscriptions": [{"name": f"thread {p.post_id}", "url": blog.url(p.path + "feed/atom/"),
                           "watch": "comments", "notify": ["me"]} for p in posts],
    }), encoding="utf-8")
    return load_config(path)


def _approve_late(posts: list[Post]) -> set[str]:
    """A comment held since 21 Oct approved on each thread, at an id below the site's
    newest; the keys its notifications carry."""
    keys = set()
    for i, post in enumerate(posts):
        post.comments.append(PostComment(50 + i, "Held Back", "2013-10-21T08:30:00",
                                         f"Held in moderation on {i}"))
        keys.add(f"http://blog.test{post.path}#comment-{50 + i}")
    return keys


def _queued(store: Store) -> set[str]:
    """The entry keys of every queued notification, origin-free."""
    with store.db.connect() as conn:
        rows = conn.execute("SELECT entry_key FROM outbox").scalars()
    return _path_keys(str(key) for key in rows)


def _path_keys(keys: Iterable[str]) -> set[str]:
    return {key.split("//", 1)[1].split("/", 1)[1] for key in keys}


def _run(config: Config, clock: Clock, scenario: Callable[[Engine], Awaitable[T]],
         node: str | None = None) -> T:
    async def main() -> T:
        name = Node(node, config.cluster.lease, config.subscriptions_hash()) if node else None
        async with running_engine(config, clock=clock, node=name) as engine:
            return await asyncio.wait_for(scenario(engine), 120)

    return asyncio.run(main())


def _gmt(seconds_ago: float) -> str:
    """A WordPress `date_gmt` that many seconds before now."""
    return datetime.fromtimestamp(time.time() - seconds_ago, UTC).replace(
        microsecond=0, tzinfo=None).isoformat()


async def _tick(engine: Engine, clock: Clock, due: str, *, probe: bool) -> None:
    """A daemon's tick at which only the thread feed `due` is due (the others 5 minutes
    later), with the site's probe due or not."""
    with engine.store.db.begin() as conn:
        conn.execute("UPDATE feeds SET next_due = CASE WHEN url = :due "
                             "THEN 0 ELSE :later END",
                     {"due": due, "later": clock() + 300})
        conn.execute("UPDATE sites SET next_probe = :at",
                     {"at": 0 if probe else clock() + 10_000})
    await engine.poll()


async def _poll_one_now_the_rest_later(engine: Engine, first: str, clock: Clock,
                                       blog_server: BlogServer) -> None:
    """A daemon's tick at which only the thread feed `first` is due (the others 5 minutes
    later) and the site's probe is: the probe's news must reach the others' later polls."""
    blog_server.clear_log()
    await _tick(engine, clock, first, probe=True)


def test_a_late_approval_is_found_in_every_claim_batch_of_one_run(
        tmp_path: Path, state: str, blog_server: BlogServer) -> None:
    """`run --once`: the probe of the first batch saw the count move; the threads claimed
    in later batches are read in full too, and the site is probed once, not per batch."""
    posts = _site(blog_server)
    config = _config(tmp_path, state, blog_server, posts)
    clock = Clock()

    async def scenario(engine: Engine) -> tuple[set[str], int, int, set[str]]:
        await engine.poll(force=True)  # discovery and baselines
        await engine.poll(force=True)
        assert _queued(engine.store) == set()
        late = _approve_late(posts)
        blog_server.clear_log()
        report = await engine.poll(force=True)
        probes = sum(1 for r in blog_server.requests if "_fields=" in r.path)
        return late, report.feeds_polled, probes, _queued(engine.store)

    late, polled, probes, queued = _run(config, clock, scenario)
    assert polled == THREADS
    assert queued == _path_keys(late)  # each thread's late comment, whichever batch
    assert probes == 1


@pytest.mark.parametrize("handover", [False, True], ids=["same-node", "other-node"])
def test_a_late_approval_is_found_by_a_later_tick_of_the_daemon(
        tmp_path: Path, state: str, blog_server: BlogServer, handover: bool) -> None:
    """The daemon: a site's threads come due at different ticks (jitter spreads them). The
    tick that probed the site polls one of its threads; the others, due minutes later when
    the probe is not due again, are read in full all the same, each at its own next poll,
    also by another node (on SQLite: the same node after a restart)."""
    posts = _site(blog_server)
    config = _config(tmp_path, state, blog_server, posts)
    clock = Clock()
    first = blog_server.url(posts[0].path + "feed/atom/")

    async def probing(engine: Engine) -> tuple[set[str], set[str]]:
        await engine.poll(force=True)  # discovery and baselines
        await engine.poll(force=True)
        late = _approve_late(posts)
        await _poll_one_now_the_rest_later(engine, first, clock, blog_server)
        return late, _queued(engine.store)

    async def later(engine: Engine) -> set[str]:
        clock.ahead += 301
        await engine.poll()
        return _queued(engine.store)

    async def both(engine: Engine) -> tuple[set[str], set[str], set[str]]:
        late, ticked = await probing(engine)
        return late, ticked, await later(engine)

    if handover:
        late, ticked = _run(config, clock, probing, node="node-a")
        queued = _run(config, clock, later, node="node-b")
    else:
        late, ticked, queued = _run(config, clock, both)
    probes = sum(1 for r in blog_server.requests if "_fields=" in r.path)
    assert ticked == _path_keys({k for k in late if "/post-0/" in k})
    assert queued == _path_keys(late)
    assert probes == 1  # the later tick did not probe again: the first one's news stands


def test_a_comment_approved_behind_a_newer_one_is_found_at_its_threads_next_poll(
        tmp_path: Path, state: str, blog_server: BlogServer) -> None:
    """A first-time commenter's reply waits for moderation while someone else answers on
    the same thread. The newer comment is reported at the thread's next poll (its date
    moved the site's validators); the held one, approved after that poll, is dated before
    the site's newest comment, so the thread's conditional GET goes on answering 304. The
    probe, at another thread's tick, counts both as new ids; the thread is read without
    validators at its own next poll, with no REST listing."""
    posts = _site(blog_server)
    config = _config(tmp_path, state, blog_server, posts)
    clock = Clock()
    first, second = (blog_server.url(p.path + "feed/atom/") for p in posts[:2])
    newest = max(c.id for p in posts for c in p.comments)
    held = f"{posts[0].path}#comment-{newest + 1}"
    newer = f"{posts[0].path}#comment-{newest + 2}"

    async def scenario(engine: Engine) -> list[set[str]]:
        await engine.poll(force=True)  # discovery and baselines
        await engine.poll(force=True)
        queued = [_queued(engine.store)]
        posts[0].comments.append(PostComment(newest + 2, "Newer", _gmt(60), "Answered first"))
        await _tick(engine, clock, first, probe=False)
        queued.append(_queued(engine.store))
        posts[0].comments.append(PostComment(newest + 1, "First Time", _gmt(120),
                                             "Held for moderation"))
        await _tick(engine, clock, second, probe=True)
        queued.append(_queued(engine.store))
        blog_server.clear_log()
        await _tick(engine, clock, first, probe=False)
        queued.append(_queued(engine.store))
        return queued

    before, after_newer, after_probe, after_next_poll = _run(config, clock, scenario)
    assert before == set()
    assert after_newer == {newer.lstrip("/")}
    assert after_probe == after_newer  # the probe's tick polled another thread
    assert after_next_poll == {newer.lstrip("/"), held.lstrip("/")}
    assert _listings(blog_server, posts[0]) == 0  # one feed read, no REST listing
    assert [r.path for r in blog_server.requests] == [posts[0].path + "feed/atom/"]


def _fail_rescans(store: Store, on: bool) -> None:
    """A database that fails the probe's rescan marks (a rescan moved earlier), and only
    them: a real trigger, standing for a crash or a lost connection between two writes."""
    with store.db.begin() as conn:
        if conn.dialect == "sqlite":
            conn.execute(
                "CREATE TRIGGER no_rescans BEFORE UPDATE OF rescan_due ON feeds "
                "WHEN NEW.rescan_due < OLD.rescan_due "
                "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END" if on
                else "DROP TRIGGER no_rescans")
        elif on:
            conn.execute(
                "CREATE FUNCTION no_rescans() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'disk I/O error'; END $$ LANGUAGE plpgsql")
            conn.execute(
                "CREATE TRIGGER no_rescans BEFORE UPDATE OF rescan_due ON feeds FOR EACH ROW "
                "WHEN (NEW.rescan_due < OLD.rescan_due) EXECUTE FUNCTION no_rescans()")
        else:
            conn.execute("DROP TRIGGER no_rescans ON feeds")
            conn.execute("DROP FUNCTION no_rescans()")


def test_a_probe_whose_news_was_not_written_is_asked_again(
        tmp_path: Path, state: str, blog_server: BlogServer) -> None:
    """The probe saw the count move, and writing the rescans it calls for failed (a crash,
    a lost database). Nothing of it was kept: the probe is still due, sees the same move at
    the next tick, and every thread's late approval is reported then. (The probe was saved
    apart from its rescans before: the move counted as seen, the threads were left to the
    periodic rescan, hours later.)"""
    posts = _site(blog_server)
    config = _config(tmp_path, state, blog_server, posts)
    clock = Clock()

    async def scenario(engine: Engine) -> tuple[set[str], set[str], int]:
        await engine.poll(force=True)  # discovery and baselines
        await engine.poll(force=True)
        late = _approve_late(posts)
        with engine.store.db.begin() as conn:
            conn.execute("UPDATE sites SET next_probe = 0")
        _fail_rescans(engine.store, on=True)
        try:
            with contextlib.suppress(engine.store.db.Error):
                await engine.poll(force=True)
        finally:
            _fail_rescans(engine.store, on=False)
        clock.ahead += 301
        await engine.poll(force=True)
        probes = sum(1 for r in blog_server.requests if "_fields=" in r.path)
        return late, _queued(engine.store), probes

    late, queued, probes = _run(config, clock, scenario)
    assert queued == _path_keys(late)
    assert probes >= 2  # asked again: the failed one was not taken as seen


# -- imports: a new id at an old date ----------------------------------------------------
#
# WordPress's importer (and any plugin that inserts comments with their original dates) gives
# an old comment a new id: the count and the newest id move together, so the count is
# explained, and the date moves no validator. On a thread of more than 10 comments the
# feed shows the newest 10 by date, so even a read without validators does not show it.

BUSY = 12
"""Comments on the busy thread: more than the 10 its feed shows."""
IMPORTED = 500


def _busy_post(blog: BlogServer) -> Post:
    """Post 30, with 12 comments from 24 Oct (ids 200..211): its feed shows the newest 10."""
    post = Post(30, "/2013/10/24/busy/", "Busy", [
        PostComment(200 + n, f"Reader {n}", f"2013-10-24T{8 + n:02d}:00:00", f"Comment {n}")
        for n in range(BUSY)])
    blog.add_post(post)
    return post


def _import(post: Post, date: str = "2013-10-21T08:30:00") -> str:
    """A comment imported into `post`: a new id, its original (old) date; its key."""
    post.comments.append(PostComment(IMPORTED, "Imported", date, "Brought over from the old blog"))
    return f"http://blog.test{post.path}#comment-{IMPORTED}"


def _now_gmt() -> str:
    """A comment made now, dated as WordPress dates it (UTC, no offset)."""
    return datetime.now(UTC).replace(microsecond=0, tzinfo=None).isoformat()


def _listings(blog: BlogServer, post: Post) -> int:
    """REST listings of one post's thread the server answered (a rescan's full read)."""
    return sum(1 for r in blog.requests if f"post={post.post_id}" in r.path)


def test_an_imported_comment_on_a_busy_thread_is_reported_by_the_next_cycle(
        tmp_path: Path, state: str, blog_server: BlogServer,
        caplog: pytest.LogCaptureFixture) -> None:
    """`run --once`: a comment imported into a thread of 12 (dated before the 10 its feed
    shows) is reported by the next cycle, though no feed shows it and no count is off; the
    log says why that thread was read in full."""
    caplog.set_level(logging.INFO, logger="notifier")
    posts = [*_site(blog_server), _busy_post(blog_server)]
    config = _config(tmp_path, state, blog_server, posts)

    async def scenario(engine: Engine) -> tuple[str, set[str]]:
        await engine.poll(force=True)  # discovery and baselines
        await engine.poll(force=True)
        assert _queued(engine.store) == set()
        key = _import(posts[-1])
        blog_server.clear_log()
        await engine.poll(force=True)
        return key, _queued(engine.store)

    key, queued = _run(config, Clock(), scenario)
    assert queued == _path_keys({key})
    # The cost: the probe, one request per thread feed, one REST page for the import's
    # thread (13 comments) and none for the others.
    assert _listings(blog_server, posts[-1]) == 1
    assert len(blog_server.requests) == 1 + len(posts) + 1
    said = [r.getMessage() for r in caplog.records if "imported" in r.getMessage()]
    assert said == [f"site {blog_server.url('/wp-json/')}: comments imported (new ids at "
                    "old dates) on 1 post; reading its thread in full"]


@pytest.mark.parametrize("comments", [2, BUSY], ids=["small-thread", "busy-thread"])
@pytest.mark.parametrize("handover", [False, True], ids=["same-node", "other-node"])
def test_an_imported_comment_is_found_by_a_later_tick_of_the_daemon(
        tmp_path: Path, state: str, blog_server: BlogServer, comments: int,
        handover: bool) -> None:
    """The daemon: the tick that probes the site polls another thread; the imported
    comment's thread, due minutes later when the probe is not due again, is read in full at
    its own poll (a conditional GET answers 304: the import's date moves no validator)."""
    posts = _site(blog_server)
    target = _busy_post(blog_server)
    del target.comments[comments:]
    posts.append(target)
    config = _config(tmp_path, state, blog_server, posts)
    clock = Clock()
    first = blog_server.url(posts[0].path + "feed/atom/")

    async def probing(engine: Engine) -> tuple[str, set[str]]:
        await engine.poll(force=True)  # discovery and baselines
        await engine.poll(force=True)
        key = _import(target)
        await _poll_one_now_the_rest_later(engine, first, clock, blog_server)
        return key, _queued(engine.store)

    async def later(engine: Engine) -> set[str]:
        clock.ahead += 301
        await engine.poll()
        return _queued(engine.store)

    async def both(engine: Engine) -> tuple[str, set[str], set[str]]:
        key, ticked = await probing(engine)
        return key, ticked, await later(engine)

    if handover:
        key, ticked = _run(config, clock, probing, node="node-a")
        queued = _run(config, clock, later, node="node-b")
    else:
        key, ticked, queued = _run(config, clock, both)
    probes = sum(1 for r in blog_server.requests if "_fields=" in r.path)
    assert ticked == set()  # the tick that probed did not poll that thread
    assert queued == _path_keys({key})
    assert probes == 1
    assert _listings(blog_server, target) == 1  # its thread listed once, nobody else's
    assert all(_listings(blog_server, p) == 0 for p in posts[:-1])


@pytest.mark.parametrize("later_tick", [False, True], ids=["same-cycle", "later-tick"])
def test_an_ordinary_new_comment_costs_no_rest_listing(
        tmp_path: Path, state: str, blog_server: BlogServer, later_tick: bool) -> None:
    """A comment made now on the busy thread (a new id, today's date) moves the site's
    validators and tops its thread's feed: it is reported by the feed alone, at the next
    cycle or at its thread's own later tick, and the thread is not listed through REST."""
    posts = [*_site(blog_server), _busy_post(blog_server)]
    target = posts[-1]
    config = _config(tmp_path, state, blog_server, posts)
    clock = Clock()
    first = blog_server.url(posts[0].path + "feed/atom/")

    async def scenario(engine: Engine) -> tuple[set[str], int]:
        await engine.poll(force=True)  # discovery and baselines
        await engine.poll(force=True)
        target.comments.append(PostComment(IMPORTED, "Carol", _now_gmt(), "Just now"))
        blog_server.clear_log()
        if later_tick:
            with engine.store.db.begin() as conn:
                conn.execute("UPDATE feeds SET next_due = CASE WHEN url = :first "
                                     "THEN 0 ELSE :later END",
                             {"first": first, "later": clock() + 300})
                conn.execute("UPDATE sites SET next_probe = 0")
            await engine.poll()
            clock.ahead += 301
            await engine.poll()
        else:
            await engine.poll(force=True)
        return _queued(engine.store), len(blog_server.requests)

    queued, requests = _run(config, clock, scenario)
    assert queued == _path_keys({f"http://blog.test{target.path}#comment-{IMPORTED}"})
    assert _listings(blog_server, target) == 0
    # The cost stays what the README states: the probe, one request per thread feed.
    assert requests == 1 + len(posts)


# -- what a probe's dates mean: pure, no server, no store, no clock ----------------------

SITE = "http://b.test/wp-json/"
OCT_21, OCT_24, OCT_25 = 1382344200.0, 1382601600.0, 1382688000.0  # 2013, UTC


def _thread(post_id: str | None) -> FeedState:
    return FeedState(id=1, url="http://b.test/p/feed/atom/", title="", api_root=SITE,
                     etag='"e"', last_modified=None, body_hash=None, interval=600.0,
                     next_due=0.0, last_polled=None, last_status=200, last_failure=None,
                     error_count=0, post_id=post_id, rescan_due=1e12)


def _read(answer: SiteProbe, newest_id: int = 3) -> Reading:
    stored = {SITE: SiteState(SITE, 3, newest_id, next_probe=1000.0)}
    return read_probes({SITE: (WordPress(), answer)}, stored, {SITE: 600.0}, now=2000.0)


def test_a_new_id_at_an_old_date_rescans_only_its_posts_thread() -> None:
    """Comments 1-3 known (newest dated 24 Oct); id 7 on post 9 dated 21 Oct is an import:
    post 9's thread is rescanned (now and, through the state, by whoever polls it next);
    id 8 on post 5, dated after the known ones, is a comment made now: its thread is only
    read without validators, as before."""
    answer = SiteProbe(5, 8, (8, 7, 3, 2, 1), {8: 5, 7: 9, 3: 4, 2: 4, 1: 4},
                       dates={8: OCT_25, 7: OCT_21, 3: OCT_24, 2: OCT_21, 1: OCT_21})
    reading = _read(answer)
    assert reading.news.moved == frozenset()  # the count is explained by the new ids
    assert reading.news.imported == {SITE: {"9"}}
    assert reading.news.touched == {SITE: {"5", "9"}}
    assert reading.news.rescans() == {SITE: frozenset({"9"})}
    assert rescan_now(_thread("9"), 21600.0, reading.news, now=2000.0)
    assert not rescan_now(_thread("5"), 21600.0, reading.news, now=2000.0)
    assert reading.news.unconditional(_thread("5"))
    assert rescan_now(_thread(None), 21600.0, reading.news, now=2000.0)  # site-wide feed
    # Joined over a cycle's batches like the rest of the news.
    assert (SiteNews() | reading.news).imported == {SITE: {"9"}}


@pytest.mark.parametrize(("dates", "imported"), [
    ({5: OCT_25, 4: OCT_24, 3: OCT_24}, {"9"}),  # the same second as a known one
    ({5: OCT_25 + 60, 4: OCT_25, 3: OCT_24}, set()),  # made after every comment before it
    ({5: OCT_24, 4: OCT_25, 3: OCT_21}, {"8"}),  # before a new comment of a lower id
    ({5: OCT_25, 3: OCT_24}, set()),  # the new id has no date: taken as made now
    ({5: OCT_25, 4: OCT_21}, set()),  # the window starts there: nothing to compare with
], ids=["same-second", "newer", "before-a-new-one", "undated", "nothing-before"])
def test_what_counts_as_an_import(dates: dict[int, float], imported: set[str]) -> None:
    """Ids 4 (post 9) and 5 (post 8) are new, 3 (post 4) was known."""
    answer = SiteProbe(5, 5, (5, 4, 3), {5: 8, 4: 9, 3: 4}, dates=dates)
    assert _read(answer).news.imported == ({SITE: imported} if imported else {})


def test_the_first_probe_is_a_baseline_for_imports_too() -> None:
    answer = SiteProbe(2, 7, (7, 3), {7: 9, 3: 4}, dates={7: OCT_21, 3: OCT_24})
    first = read_probes({SITE: (WordPress(), answer)}, {}, {SITE: 600.0}, now=2000.0)
    assert first.news.imported == {} and first.imported == ()


def test_the_probe_reads_each_comments_date(blog_server: BlogServer) -> None:
    """Real WordPress 6.1 output: `date_gmt` (UTC, no offset) of each of the newest ids."""
    async def main() -> SiteProbe | Failure:
        async with Fetcher() as fetcher:
            return await probe_site(fetcher, blog_server.url("/wp-json/"))

    blog_server.scenario = "03-burst-of-24"
    probe = asyncio.run(main())
    assert isinstance(probe, SiteProbe)
    assert set(probe.dates) == set(probe.ids)
    first = datetime(2013, 10, 21, 9, 12, tzinfo=UTC).timestamp()
    assert min(probe.dates.values()) == first
    assert all(probe.dates[a] >= probe.dates[b] for a, b in pairwise(probe.ids))


def test_a_poll_answered_with_its_own_validators_leaves_forgotten_ones_forgotten(
        state: str) -> None:
    """Another batch's or node's probe forgets a thread's validators while a poll of it,
    claimed before, is answered 304: that poll's record must not write the old validators
    back, or the comment the probe saw would wait for the rescan after all."""
    root, post = "http://blog.test/wp-json/", "10"
    store = Store(state)
    try:
        store.migrate()
        feed = store.save_discovery("thread", "http://blog.test/p/", "comments",
                                    "http://blog.test/p/feed/", root, 600, 0.0)
        store.record_polls([PollRecord(feed, 1.0, 600.0, 200, etag='"v1"',
                                       last_modified="Fri, 25 Oct 2013 11:00:00 GMT",
                                       post_id=post, rescan_due=21_600.0)])
        store.reread_threads({root: frozenset({post})})
        store.record_polls([PollRecord(feed, 2.0, 601.0, 304, etag='"v1"',
                                       last_modified="Fri, 25 Oct 2013 11:00:00 GMT",
                                       validators_changed=False)])
        forgotten = store.feeds_by_id([feed])[feed]
        store.record_polls([PollRecord(feed, 3.0, 602.0, 200, etag='"v2"',
                                       last_modified="Fri, 25 Oct 2013 12:00:00 GMT")])
        read = store.feeds_by_id([feed])[feed]
    finally:
        store.close()
    assert (forgotten.etag, forgotten.last_modified) == (None, None)
    assert forgotten.last_polled == 2.0
    assert (read.etag, read.last_modified) == ('"v2"', "Fri, 25 Oct 2013 12:00:00 GMT")
