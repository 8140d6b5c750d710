"""Claims, leases and fencing tokens: what lets several nodes share one database.

Runs on SQLite and, when NOTIFIER_TEST_POSTGRES_URL is set, on PostgreSQL (the `store`
fixture of test_store), because one node on SQLite takes the same code path.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from notifier.cluster import Node
from notifier.commands.status import node_statuses, print_nodes
from notifier.config import load_config
from notifier.store import (
    SCHEMA_VERSION,
    DaemonRecord,
    PollRecord,
    QueuedNotice,
    Store,
    StoreError,
    ThreadLink,
    ThreadUpdate,
)
from tests.support import databases
from tests.support.blog_server import POST_PATH, BlogServer
from tests.support.engine import running_engine
from tests.support.feed_farm import FeedFarm, Hit
from tests.test_store import entry, record, setup_feed
from tests.test_store import store as store  # the fixture, on SQLite and PostgreSQL


def feeds_for(s: Store, count: int) -> list[int]:
    return [s.save_discovery(f"sub{i}", f"http://blog.test/{i}/", "comments",
                             f"http://blog.test/{i}/feed/", None, 600.0, 1000.0)
            for i in range(count)]


def test_two_nodes_claim_different_feeds_and_a_lease_holds_until_it_runs_out(
        store: Store) -> None:
    ids = feeds_for(store, 5)
    a = store.claim_feeds("a", 1000.0, ids, 3, 60.0)
    b = store.claim_feeds("b", 1000.0, ids, 3, 60.0)
    assert len(a) == 3 and len(b) == 2
    assert not {f.id for f in a} & {f.id for f in b}
    assert store.claim_feeds("c", 1030.0, ids, 10, 60.0) == []
    # a stops beating: its lease runs out and c takes its feeds, with a new token.
    taken = store.claim_feeds("c", 1061.0, ids, 10, 60.0)
    assert {f.id for f in taken} == {f.id for f in a} | {f.id for f in b}
    tokens = {f.id: f.lease_token for f in a}
    assert all(f.lease_token > tokens[f.id] for f in taken if f.id in tokens)


def test_feeds_not_due_or_not_asked_for_are_not_claimed(store: Store) -> None:
    ids = feeds_for(store, 3)
    assert store.claim_feeds("a", 999.0, ids, 10, 60.0) == []  # due at 1000
    assert [f.id for f in store.claim_feeds("a", 1000.0, ids[:1], 10, 60.0)] == ids[:1]
    # run --once takes feeds that are not due yet, still none another node holds.
    forced = store.claim_feeds("b", 500.0, ids, 10, 60.0, False)
    assert sorted(f.id for f in forced) == ids[1:]
    # A daemon claims any due feed; one it does not poll is given back for an interval.
    store.release_feeds("b", ids[1:2], 1000.0)
    store.release_feeds("b", ids[2:])
    assert [f.id for f in store.claim_feeds("c", 1050.0, None, 10, 60.0)] == ids[2:]
    later = store.claim_feeds("c", 1599.0, None, 10, 60.0)  # leases ran out; ids[1] waits
    assert sorted(f.id for f in later) == [ids[0], ids[2]]
    assert [f.id for f in store.claim_feeds("c", 1600.0, None, 10, 60.0)] == ids[1:2]


def test_a_stale_node_writes_nothing_once_its_token_moved_on(store: Store) -> None:
    feed = setup_feed(store)
    (mine,) = store.claim_feeds("a", 1000.0, [feed], 10, 60.0)
    (theirs,) = store.claim_feeds("b", 1061.0, [feed], 10, 60.0)  # a paused past its lease
    e = entry(1)
    stale = record(feed, [e], [QueuedNotice("thread", "me", e.key)], now=1001.0)
    queued, refused = store.record_fenced([stale], "a", {feed: mine.lease_token})
    assert (queued, refused) == (0, [feed])
    assert store.seen_entries({feed: [e.key]}) == {feed: {}}
    assert store.claim_due(5000.0, 10) == []
    assert store.feeds_by_id([feed])[feed].last_polled is None
    # The node holding the current token writes, and the feed is free again.
    fresh = record(feed, [e], [QueuedNotice("thread", "me", e.key)], now=1062.0)
    assert store.record_fenced([fresh], "b", {feed: theirs.lease_token}) == (1, [])
    health = {h.url: h for h in store.feed_health()}["http://blog.test/p/feed/atom/"]
    assert health.polled_by == "b" and health.claimed_by is None
    assert store.claim_feeds("c", 1662.0, [feed], 10, 60.0)  # due again, nobody holds it


def test_heartbeats_renew_only_the_work_in_hand(store: Store) -> None:
    ids = feeds_for(store, 2)
    store.claim_feeds("a", 1000.0, ids, 10, 60.0)
    store.heartbeat("a", "1.0", "h1", 1050.0, 60.0, 900.0, [ids[0]], [])
    assert store.claim_feeds("b", 1070.0, ids, 10, 60.0)[0].id == ids[1]
    assert store.claim_feeds("b", 1105.0, ids, 10, 60.0) == []
    (node,) = store.nodes(1105.0)
    assert (node.name, node.feeds_claimed, node.alive(1105.0)) == ("a", 1, True)
    assert not node.alive(1111.0)
    store.release_node("a", 1106.0)
    assert [f.id for f in store.claim_feeds("b", 1107.0, ids, 10, 60.0)] == [ids[0]]
    assert store.nodes(1107.0)[0].stopped == 1106.0


def test_outbox_outcomes_are_written_only_under_the_claim(store: Store) -> None:
    feed = setup_feed(store)
    store.record_polls([record(feed, [entry(1)], [QueuedNotice("thread", "me", entry(1).key)])])
    (first,) = store.claim_due(3000.0, 10, 60.0, ["me"], "a")
    (second,) = store.claim_due(3061.0, 10, 60.0, ["me"], "b")  # a's claim ran out
    assert first.claim_id != second.claim_id
    store.mark_failed(first.id, "late", None, 3062.0, first.claim_id)  # a wakes: refused
    store.mark_sent(second.id, 3062.0, second.claim_id)
    stats = store.channel_stats()["me"]
    assert (stats.sent, stats.dead) == (1, 0)


def test_one_node_delivers_to_a_channel_and_a_pause_is_shared(store: Store) -> None:
    assert store.lease_channel("chat", "a", 1000.0, 60.0) == (True, None)
    assert store.lease_channel("chat", "b", 1010.0, 60.0) == (False, None)
    store.pause_channel("chat", 1300.0)
    assert store.lease_channel("chat", "a", 1020.0, 60.0) == (True, 1300.0)
    assert store.lease_channel("chat", "b", 1081.0, 60.0) == (True, 1300.0)
    store.disable_channel("chat", "bad token", 1090.0)
    assert store.disabled_channels() == {"chat": "bad token"}
    store.enable_channel("chat")
    assert store.disabled_channels() == {}


def test_nodes_migrating_at_once_migrate_once(store: Store) -> None:
    # Back to version 5 (before nodes), then four nodes start together.
    with store.db.begin() as conn:
        conn.execute("DROP TABLE nodes")
        conn.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    errors: list[BaseException] = []

    def start() -> None:
        other = Store(store.url)
        try:
            other.migrate()
        except BaseException as exc:
            errors.append(exc)
        finally:
            other.close()

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    with store.db.connect() as conn:
        assert conn.execute(
            "SELECT value FROM meta WHERE key = 'schema_version'").scalars() == [
            str(SCHEMA_VERSION)]
    store.heartbeat("a", "1.0", "h", 1.0, 60.0, 1.0)
    assert [n.name for n in store.nodes(2.0)] == ["a"]


def test_a_node_refuses_a_schema_from_a_newer_node(store: Store) -> None:
    with store.db.begin() as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match=r"schema version 99.*upgrade notifier on this node"):
        Store(store.url).migrate()


def test_status_names_the_node_whose_subscriptions_differ(
        store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_file = tmp_path / "notifier.yaml"
    config_file.write_text(
        "channels: {me: {type: console}}\n"
        "subscriptions: [{name: a, url: 'https://blog.example.org/', notify: [me]}]\n",
        encoding="utf-8")
    config = load_config(config_file)
    same = config.subscriptions_hash()
    for name, digest in (("one", same), ("two", same), ("odd", "0123456789abcdef")):
        store.heartbeat(name, "0.1.0", digest, 1000.0, 60.0, 900.0)
    store.lease_channel("me", "two", 1000.0, 60.0)
    print_nodes(node_statuses(config, store.nodes(1010.0), 1010.0), 1010.0)
    out = capsys.readouterr().out
    odd = next(line for line in out.splitlines() if line.strip().startswith("odd"))
    assert "DIFFERS FROM THE OTHER NODES" in odd and "not as this file" in odd
    assert "DIFFERS" not in next(line for line in out.splitlines()
                                 if line.strip().startswith("one"))
    assert "delivers to me" in out
    node = Node.of(config)
    assert node.config_hash == same and node.lease == 60.0


def test_a_node_whose_subscriptions_differ_is_named_in_the_log_once(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    async def db(fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)

    now = time.time()
    store.heartbeat("one", "0.1.0", "aaaa", now, 60.0, now)
    store.heartbeat("odd", "0.1.0", "bbbb", now, 60.0, now)
    me = Node("two", 60.0, "aaaa")
    for _ in range(2):
        asyncio.run(me.beat(store, db))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, warnings
    assert "odd (bbbb) differ from the others (not this node)" in warnings[0]


def test_a_claim_is_not_trusted_across_a_pause_longer_than_the_lease() -> None:
    node = Node("a", 3.0, "h")
    node.last_beat, node.unbroken_since = 100.0, 90.0
    assert node.holds(99.0, 102.9)  # renewed by the beat at 100
    assert not node.holds(99.0, 103.1)
    node.last_beat, node.unbroken_since = 110.0, 110.0  # woke at 110 after a pause
    assert not node.holds(99.0, 110.5)
    assert node.holds(110.2, 111.0)


def test_a_node_not_holding_the_lease_writes_nothing(store: Store) -> None:
    feed = setup_feed(store)
    owner = f"node-{uuid.uuid4().hex[:8]}"
    (claim,) = store.claim_feeds(owner, 1000.0, [feed], 1, 60.0)
    plain = PollRecord(feed_id=feed, polled_at=1001.0, next_due=1601.0, status=304)
    assert store.record_fenced([plain], "intruder", {feed: claim.lease_token}) == (0, [feed])
    assert store.record_fenced([plain], owner, {feed: claim.lease_token}) == (0, [])
    assert store.feeds_by_id([feed])[feed].last_status == 304


def test_claims_stranded_by_an_unwritable_state_are_given_back_when_it_recovers(
        store: Store) -> None:
    """A write that failed (disk full) could not release its claims; once the state is
    writable again the node gives back the deliveries it claimed before the failure and no
    longer works on, and keeps what it claimed since or still holds. Feed leases run out on
    their own (a feed given back at once would be asked again within a second)."""
    ids = feeds_for(store, 2)
    feed = setup_feed(store)
    store.record_polls([record(feed, [entry(n) for n in (1, 2, 3, 4)],
                               [QueuedNotice("thread", "me", entry(n).key) for n in (1, 2, 3, 4)],
                               now=900.0)])
    stranded = store.claim_due(1000.0, 2, 60.0, ["me"], "a")
    in_hand = store.claim_due(1000.0, 1, 60.0, ["me"], "a")
    claimed_feeds = store.claim_feeds("a", 1000.0, ids, 10, 60.0)
    later = store.claim_due(1030.0, 10, 60.0, ["me"], "a")  # taken after the failure
    assert len(stranded) == 2 and len(in_hand) == 1 and len(later) == 1
    store.release_stranded("a", 1010.0 + 60.0, {in_hand[0].claim_id or ""})
    # The stranded rows are due again at once; the others stay claimed.
    again = store.claim_due(1031.0, 10, 60.0, ["me"], "b")
    assert sorted(i.id for i in again) == sorted(i.id for i in stranded)
    assert store.claim_feeds("b", 1031.0, ids, 10, 60.0) == []
    assert len(claimed_feeds) == 2


def test_nodes_registering_at_once_do_not_crash_each_other(store: Store) -> None:
    # Several daemons starting together each note themselves for `notifier reload`. One
    # writes while another's note is not yet committed: the second must wait and replace
    # it, not die of a duplicate key (which stopped a node starting beside others).
    second = DaemonRecord(host="two", pid=2, started="2", config="b.yaml")
    store.register_daemon(DaemonRecord(host="old", pid=0, started="0", config="old.yaml"))
    other = Store(store.url)
    errors: list[BaseException] = []

    def register() -> None:
        try:
            other.register_daemon(second)
        except BaseException as exc:
            errors.append(exc)

    try:
        with store.db.begin() as conn:
            # As `register_daemon` of the first node, held open mid-way.
            conn.execute("DELETE FROM meta WHERE key = 'daemon'")
            conn.execute("INSERT INTO meta (key, value) VALUES ('daemon', :v)",
                         {"v": '{"pid": 1, "started": "1", "host": "one", '
                               '"config": "a.yaml"}'})
            racer = threading.Thread(target=register)
            racer.start()
            racer.join(timeout=1.0)  # blocked behind this transaction (SQLite: busy)
        racer.join(timeout=30)
        assert not racer.is_alive()
        assert errors == []
        assert store.daemon_record() == second
    finally:
        other.close()


class _PausableClock:
    """The wall clock, plus the time a test says the process spent stopped."""

    def __init__(self) -> None:
        self.paused = 0.0

    def __call__(self) -> float:
        return time.time() + self.paused


def test_a_node_paused_while_its_fetches_wait_asks_for_none_of_them(tmp_path: Path) -> None:
    # One slot for the host: the second feed's fetch waits while the first is served. The
    # node is stopped past its lease meanwhile (the clock jumps), as SIGSTOP or a long GC
    # would: on waking it must not ask for the waiting feed (another node holds it by
    # now), and it gives the feed back, so that it is polled again, not forgotten.
    clock = _PausableClock()
    with FeedFarm(2, delay=0.3) as farm:
        path = tmp_path / "notifier.yaml"
        path.write_text(yaml.safe_dump({
            "state": "sqlite:///state.db",
            "defaults": {"interval": "60s", "jitter": 0},
            "http": {"concurrency": 1, "per_host": 1},
            "cluster": {"lease": "30s", "node": "a"},
            "channels": {"me": {"type": "console"}},
            "subscriptions": [{"name": f"thread {i}", "url": farm.origin + farm.path(i),
                               "watch": "comments", "notify": ["me"]} for i in range(2)],
        }), encoding="utf-8")
        config = load_config(path)

        async def scenario() -> tuple[list[Hit], int, list[Hit]]:
            async with running_engine(config, clock=clock) as engine:
                await engine.poll(force=True)  # discovery and baseline
                farm.clear_hits()
                clock.paused += 61  # both feeds due
                served = farm.record

                def record(hit: Hit) -> None:
                    served(hit)
                    clock.paused += 100  # stopped while the other fetch waits

                farm.record = record  # type: ignore[method-assign]
                report = await engine.poll()
                farm.record = served  # type: ignore[method-assign]
                during = farm.hits
                farm.clear_hits()
                await engine.poll()
                return during, report.fenced, farm.hits

        during, fenced, after = asyncio.run(scenario())
    assert len(during) == 1, during  # the waiting fetch was called off, not sent
    assert fenced == 1
    assert [hit.thread for hit in after] == [1 - during[0].thread]  # polled again


def test_a_thread_another_node_began_following_is_polled_not_put_off(
        store: Store, tmp_path: Path) -> None:
    # Node a polls a `watch: threads` site and begins following a new thread; node b's
    # plan does not know that feed yet when its claim (any due feed) takes it. b must not
    # put the feed off by an interval as one nobody here reads: it reads the threads again
    # and polls it.
    if store.dialect != "postgresql":
        pytest.skip("one node on SQLite names the feeds it claims")
    with FeedFarm(2) as farm:
        path = tmp_path / "b.yaml"
        path.write_text(yaml.safe_dump({
            "state": store.url,
            "defaults": {"interval": "600s", "jitter": 0},
            "cluster": {"node": "b"},
            "channels": {"me": {"type": "console"}},
            "subscriptions": [
                {"name": "thread 0", "url": farm.origin + farm.path(0), "watch": "comments",
                 "notify": ["me"]},
                {"name": "site", "url": farm.origin + "/no-site-here/", "watch": "threads",
                 "notify": ["me"]}],
        }), encoding="utf-8")
        config = load_config(path)

        async def scenario() -> list[Hit]:
            async with running_engine(config, state=store.url) as engine:
                await engine.poll(force=True)  # b's plan: thread 0 only
                now = time.time()
                polled = store.subscription_states()["thread 0"].feed_id
                assert polled is not None
                store.record_polls([PollRecord(  # a's poll of the site's posts
                    feed_id=polled, polled_at=now, next_due=now + 600, status=304,
                    threads=(ThreadUpdate("site", (ThreadLink(
                        "site", farm.origin + farm.path(1), "post-1", now),),
                        retire_before=0.0, quiet=False),))])
                farm.clear_hits()
                for _ in range(2):
                    await engine.poll()
                return farm.hits

        hits = asyncio.run(scenario())
    assert [hit.thread for hit in hits] == [1]


def test_a_node_holds_no_more_feeds_than_it_fetches_at_once_across_cycles(
        store: Store, tmp_path: Path) -> None:
    # Slow feeds outlive their cycle (stragglers finish in the background). The next
    # cycles must count them: a node that claimed `http.concurrency` more each cycle would
    # pile up thousands of fetches and parses, each running out of its time budget.
    if store.dialect != "postgresql":
        pytest.skip("one node on SQLite claims its due feeds in one batch")
    with FeedFarm(12, delay=6.0) as farm:
        path = tmp_path / "a.yaml"
        path.write_text(yaml.safe_dump({
            "state": store.url,
            "defaults": {"interval": "600s", "jitter": 0},
            "http": {"concurrency": 2, "per_host": 12},
            "cluster": {"node": "a"},
            "channels": {"me": {"type": "console"}},
            "subscriptions": [{"name": f"thread {i}", "url": farm.origin + farm.path(i),
                               "watch": "comments", "notify": ["me"]} for i in range(12)],
        }), encoding="utf-8")
        config = load_config(path)
        for i in range(12):  # discovered and due, as after a first run
            store.save_discovery(f"thread {i}", farm.origin + farm.path(i), "comments",
                                 farm.origin + farm.path(i), None, 600.0, time.time())

        async def scenario() -> int:
            async with running_engine(config, state=store.url) as engine:
                for _ in range(3):
                    await engine.poll()
                with store.db.connect() as conn:
                    return int(conn.execute(
                        "SELECT count(*) FROM feeds WHERE lease_owner = 'a' "
                        "AND lease_until > :now", {"now": time.time()}).scalar())

        held = asyncio.run(scenario())
    assert 0 < held <= 2


def _while_another_process_writes(path: Path, statement: str, action: Callable[[], Any]
                                  ) -> list[Any]:
    """`action` run on a thread while another process holds SQLite's write lock and makes
    `statement`'s change, committed once the action had time to read (or wait)."""
    other = sqlite3.connect(path, isolation_level=None, timeout=10)
    outcome: list[Any] = []
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute(statement)
        worker = threading.Thread(target=lambda: outcome.append(action()))
        worker.start()
        time.sleep(0.3)  # the action waits for the lock, with or without having read first
        other.execute("COMMIT")
        worker.join(10)
    finally:
        other.close()
    return outcome


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[tuple[Store, Path]]:
    path = tmp_path / "state.db"
    s = Store(f"sqlite:///{path}")
    s.migrate()
    try:
        yield s, path
    finally:
        s.close()


def test_a_claim_that_lands_while_a_write_waits_for_the_lock_is_seen(
        sqlite_store: tuple[Store, Path]) -> None:
    """SQLite has no row locks: the tokens are read under its write lock, else a claim that
    another process committed after this node read them, before it could write, went
    unseen and a node that lost its lease wrote its poll anyway (PostgreSQL reads them FOR
    UPDATE)."""
    store, path = sqlite_store
    feed = setup_feed(store)
    (mine,) = store.claim_feeds("a", 1000.0, [feed], 10, 60.0)
    e = entry(1)
    stale = record(feed, [e], [QueuedNotice("thread", "me", e.key)], now=1001.0)
    outcome = _while_another_process_writes(
        path, f"UPDATE feeds SET lease_owner = 'b', lease_token = lease_token + 1 "
              f"WHERE id = {feed}",
        lambda: store.record_fenced([stale], "a", {feed: mine.lease_token}))
    assert outcome == [(0, [feed])]
    assert store.seen_entries({feed: [e.key]}) == {feed: {}}


def test_a_notification_another_process_claims_meanwhile_is_not_claimed_twice(
        sqlite_store: tuple[Store, Path]) -> None:
    """Two processes claiming one SQLite outbox at once take different rows: one that read
    a row as unclaimed before the other's claim committed would send it a second time."""
    store, path = sqlite_store
    feed = setup_feed(store)
    store.record_polls([record(feed, [entry(1)], [QueuedNotice("thread", "me", entry(1).key)])])
    outcome = _while_another_process_writes(
        path, "UPDATE outbox SET claimed_until = 4000, claim_owner = 'b', claim_id = 'theirs'",
        lambda: store.claim_due(3000.0, 10, 60.0, ["me"], "a"))
    assert outcome == [[]]


def test_a_discovery_is_claimed_by_one_node_until_its_claim_runs_out(store: Store) -> None:
    """Nodes starting together with the same subscriptions: each subscription's discovery
    goes to one of them; a node's own claim it takes again; a claim whose node died passes
    on when it runs out; a finished discovery ends it. On SQLite (one process per state)
    every discovery is the process's own."""
    names = ["s1", "s2", "s3"]
    a = store.claim_discoveries(names[:2], "a", 1000.0, 1060.0)
    b = store.claim_discoveries(names, "b", 1000.0, 1060.0)
    if store.dialect == "sqlite":
        assert a == {"s1", "s2"} and b == set(names)
        return
    assert a == {"s1", "s2"} and b == {"s3"}
    assert store.claim_discoveries(names, "a", 1010.0, 1070.0) == {"s1", "s2"}  # its own
    assert store.claim_discoveries(names, "c", 1065.0, 1125.0) == {"s3"}  # b's ran out
    store.save_discovery("s1", "http://blog.test/1/", "comments", "http://blog.test/1/feed/",
                         None, 600.0, 1066.0)
    store.release_discoveries(["s2"], "a")  # a stops: s2 is free at once
    assert store.claim_discoveries(names, "d", 1066.0, 1126.0) == {"s1", "s2"}


def test_nodes_starting_together_ask_each_page_once_between_them(
        tmp_path: Path, blog_server: BlogServer) -> None:
    """Two nodes on one PostgreSQL, started together with subscriptions that name blog
    pages (each a discovery: the page, then its feed): each page is asked for once, not
    once per node, and both nodes then poll every subscription's feed (the other node's
    discoveries read from the state at their next tick)."""
    pages = {"/": "posts", POST_PATH: "comments"}  # the blog's home page and one post
    with databases.state_url("postgresql", tmp_path) as url:
        path = tmp_path / "notifier.yaml"
        path.write_text(yaml.safe_dump({
            "state": url,
            "defaults": {"interval": "60s", "jitter": 0},
            "channels": {"me": {"type": "console"}},
            "subscriptions": [{"name": f"page {i}", "url": blog_server.url(page),
                               "watch": watch, "notify": ["me"]}
                              for i, (page, watch) in enumerate(pages.items())],
        }), encoding="utf-8")
        config = load_config(path)
        nodes = [Node(name, config.cluster.lease, config.subscriptions_hash())
                 for name in ("node-a", "node-b")]

        async def scenario() -> tuple[list[int], list[list[int | None]]]:
            async with running_engine(config, node=nodes[0]) as a, \
                    running_engine(config, node=nodes[1]) as b:
                await asyncio.gather(a.poll(force=True), b.poll(force=True))
                asked = [blog_server.count(page) for page in pages]
                await asyncio.gather(a.poll(force=True), b.poll(force=True))
                feeds = [[s.feed_id for s in (await engine.db(
                    engine.store.subscription_states)).values()] for engine in (a, b)]
                return asked, feeds

        asked, feeds = asyncio.run(asyncio.wait_for(scenario(), 120))
    assert asked == [1, 1]
    assert all(len(seen) == 2 and None not in seen for seen in feeds)
