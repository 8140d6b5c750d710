"""A site probe's news reaches every followed thread of its site, not only the feeds that
happened to be claimed beside the probe.

One WordPress site (one REST root) with several followed threads; a comment on each is
approved late (an old id, an old date: neither the feed's validators nor the site's newest
id move, so a conditional GET answers 304). The site probe sees the count move; every
thread must be read in full within one poll interval, whichever claim batch (a cycle claims
`claim_size` feeds at a time), tick or node polls it. Runs on SQLite and, when
NOTIFIER_TEST_POSTGRES_URL is set, on PostgreSQL, in-process (the `Engine` a daemon runs)
against the blog server on loopback.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import sqlalchemy as sa
import yaml

from notifier.cluster import Node
from notifier.config import Config, load_config
from notifier.daemon import Engine, fetch_settings
from notifier.fetch import Fetcher
from notifier.poll import ParsePool
from notifier.poll import cycle as poll_cycle
from notifier.store import Store
from tests.support import databases
from tests.support.blog_server import BlogServer, Post, PostComment

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
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT entry_key FROM outbox")).scalars().all()
    return _path_keys(str(key) for key in rows)


def _path_keys(keys: Iterable[str]) -> set[str]:
    return {key.split("//", 1)[1].split("/", 1)[1] for key in keys}


def _run(config: Config, clock: Clock, scenario: Callable[[Engine], Awaitable[T]],
         node: str | None = None) -> T:
    async def main() -> T:
        store = Store(config.state_url())
        pool = ParsePool(workers=1)
        name = Node(node, config.cluster.lease, config.subscriptions_hash()) if node else None
        try:
            async with Fetcher(fetch_settings(config)) as fetcher:
                engine = Engine(config, store, fetcher, {}, parser=pool, clock=clock,
                                node=name)
                await engine.start()
                try:
                    return await asyncio.wait_for(scenario(engine), 120)
                finally:
                    await engine.stop()
                    await engine.poller.close()
                    engine.close()
        finally:
            pool.shutdown()
            store.close()

    return asyncio.run(main())


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
        with engine.store.engine.begin() as conn:  # one thread due now, the rest in 5 min
            conn.execute(sa.text("UPDATE feeds SET next_due = CASE WHEN url = :first "
                                 "THEN 0 ELSE :later END"),
                         {"first": first, "later": clock() + 300})
            conn.execute(sa.text("UPDATE sites SET next_probe = 0"))
        blog_server.clear_log()
        await engine.poll()
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
