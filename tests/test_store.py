"""The state: what survives a restart, what is written together, what is refused.

Runs on SQLite always and on PostgreSQL too when NOTIFIER_TEST_POSTGRES_URL names a
database (`.ci/run` starts one).
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from notifier.failures import Failure, FailureKind
from notifier.models import Entry
from notifier.store import (
    PollRecord,
    QueuedNotice,
    Store,
    StoreError,
    ThreadLink,
    ThreadUpdate,
)
from notifier.store.db import Database
from tests.support import databases


@pytest.fixture(params=databases.KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with databases.state_url(request.param, tmp_path) as url:
        s = Store(url)
        s.migrate()
        try:
            yield s
        finally:
            s.close()


def entry(n: int, text: str = "hi") -> Entry:
    return Entry(key=f"http://blog.test/p/#comment-{n}", kind="comment", author=f"A{n}",
                 published=datetime(2013, 10, 21, 9, n, tzinfo=UTC), content_text=text,
                 content_html=f"<p>{text}</p>", content_hash=f"h{n}{text}",
                 link=f"http://blog.test/p/#comment-{n}", post_link="http://blog.test/p/")


def setup_feed(store: Store) -> int:
    return store.save_discovery("thread", "http://blog.test/p/", "comments",
                                "http://blog.test/p/feed/atom/", None, 600.0, 1000.0)


def record(feed_id: int, entries: list[Entry], notices: list[QueuedNotice],
           now: float = 2000.0) -> PollRecord:
    return PollRecord(feed_id=feed_id, polled_at=now, next_due=now + 600, status=200,
                      etag='"abc"', new_entries=entries, notices=notices,
                      baselines=["thread"])


def test_entries_and_notices_are_written_together_and_once(store: Store) -> None:
    feed = setup_feed(store)
    e = entry(5)
    notices = [QueuedNotice("thread", "me", e.key), QueuedNotice("thread", "team", e.key)]
    assert store.record_polls([record(feed, [e], notices)]) == 2
    # The same comment queued again (another subscription, another feed) is not doubled.
    assert store.record_polls([record(feed, [e], notices)]) == 0
    assert store.seen_entries({feed: [e.key, "other"]}) == {feed: {e.key: e.content_hash}}
    items = store.claim_due(3000.0, 10)
    assert sorted(i.channel for i in items) == ["me", "team"]
    assert items[0].entry.content_text == "hi"
    assert items[0].entry.published == e.published
    assert store.subscription_states()["thread"].baseline_at == 2000.0


def test_entry_kinds_count_what_each_feed_was_read_as(store: Store) -> None:
    feed = setup_feed(store)
    post = Entry(key="http://blog.test/p/", kind="post", title="P", content_hash="p")
    store.record_polls([record(feed, [entry(1), entry(2), post], [])])
    kinds = store.entry_kinds(["http://blog.test/p/feed/atom/", "http://other.test/feed/"])
    assert kinds == {"http://blog.test/p/feed/atom/": {"comment": 2, "post": 1},
                     "http://other.test/feed/": {}}
    assert store.entry_kinds([]) == {}


def test_a_failed_batch_writes_nothing(store: Store) -> None:
    feed = setup_feed(store)
    good = record(feed, [entry(1)], [QueuedNotice("thread", "me", entry(1).key)])
    bad = record(feed + 999, [entry(2)], [])  # no such feed: the foreign key refuses it
    with pytest.raises(store.db.IntegrityError):
        store.record_polls([good, bad])
    assert store.seen_entries({feed: [entry(1).key]}) == {feed: {}}
    assert store.claim_due(3000.0, 10) == []


def test_claims_hide_rows_until_released_or_expired(store: Store) -> None:
    feed = setup_feed(store)
    store.record_polls([record(feed, [entry(1)], [QueuedNotice("thread", "me", entry(1).key)])])
    assert len(store.claim_due(3000.0, 10, lease=60)) == 1
    assert store.claim_due(3001.0, 10) == []
    assert len(store.claim_due(3061.0, 10)) == 1
    store.release_claims()
    assert len(store.claim_due(3062.0, 10)) == 1


def test_sent_failed_dead_and_requeue(store: Store) -> None:
    feed = setup_feed(store)
    es = [entry(n) for n in (1, 2, 3)]
    store.record_polls([record(feed, es, [QueuedNotice("thread", "me", e.key) for e in es])])
    a, b, c = store.claim_due(3000.0, 10)
    store.mark_sent(a.id, 3001.0)
    store.mark_failed(b.id, "HTTP 500", 3100.0, 3001.0)
    store.mark_failed(c.id, "HTTP 400", None, 3001.0)
    stats = store.channel_stats()["me"]
    assert (stats.sent, stats.queued, stats.failed, stats.dead) == (1, 1, 1, 1)
    assert stats.last_error in ("HTTP 500", "HTTP 400")
    assert store.claim_due(3050.0, 10) == []
    assert [i.id for i in store.claim_due(3100.0, 10)] == [b.id]
    assert store.requeue_dead(3200.0, "me") == 1
    assert [i.id for i in store.claim_due(3200.0, 10)] == [c.id]


def test_retry_now_makes_failing_rows_due_and_requeues_dead_ones(store: Store) -> None:
    """`notifier retry --now [--channel]`: the next attempt is now, whatever the backoff."""
    feed = setup_feed(store)
    es = [entry(n) for n in (1, 2, 3, 4)]
    store.record_polls([record(feed, es, [QueuedNotice("thread", "me", es[0].key),
                                          QueuedNotice("thread", "me", es[1].key),
                                          QueuedNotice("thread", "me", es[2].key),
                                          QueuedNotice("thread", "other", es[3].key)])])
    a, b, c, d = sorted(store.claim_due(3000.0, 10), key=lambda i: i.entry.key)
    store.mark_failed(a.id, "HTTP 503", 9000.0, 3001.0)
    store.mark_failed(b.id, "HTTP 400", None, 3001.0)
    store.mark_sent(c.id, 3001.0)
    store.mark_failed(d.id, "HTTP 503", 8000.0, 3001.0)
    assert store.channel_stats()["me"].next_retry == 9000.0
    assert store.retry_now(3500.0, "me") == (1, 1)
    assert store.channel_stats()["me"].next_retry == 3500.0
    assert sorted(i.id for i in store.claim_due(3500.0, 10)) == sorted([a.id, b.id])
    assert store.channel_stats()["other"].next_retry == 8000.0  # another channel: untouched
    assert store.retry_now(3600.0) == (1, 0)
    assert [i.id for i in store.claim_due(3600.0, 10)] == [d.id]


def test_newest_entries_by_publication(store: Store) -> None:
    feed = setup_feed(store)
    es = [entry(n) for n in (3, 1, 2)]
    store.record_polls([record(feed, es, [])])
    assert [e.key for e in store.newest_entries(feed, 2)] == [entry(3).key, entry(2).key]


def test_new_feed_for_a_subscription_means_a_new_baseline(store: Store) -> None:
    feed = setup_feed(store)
    store.record_polls([record(feed, [], [])])
    assert store.subscription_states()["thread"].baseline_at is not None
    store.save_discovery("thread", "http://blog.test/p/", "comments",
                         "http://blog.test/p/feed/", None, 600.0, 3000.0)
    assert store.subscription_states()["thread"].baseline_at is None


def test_permanent_redirect_moves_the_feed(store: Store) -> None:
    feed = setup_feed(store)
    moved = dataclasses.replace(record(feed, [], []), new_url="https://blog.test/p/feed/atom/")
    store.record_polls([moved])
    assert store.feeds_by_id([feed])[feed].url == "https://blog.test/p/feed/atom/"
    assert store.subscription_states()["thread"].feed_url == "https://blog.test/p/feed/atom/"


def test_due_feeds_and_error_counts(store: Store) -> None:
    feed = setup_feed(store)
    assert store.claim_feeds("a", 999.0, [feed], 10, 60.0) == []
    assert [f.id for f in store.claim_feeds("a", 1000.0, [feed], 10, 60.0)] == [feed]
    failing = PollRecord(feed_id=feed, polled_at=1000.0, next_due=5000.0, status=500,
                         failure=Failure(FailureKind.HTTP, "HTTP 500"))
    store.record_polls([failing])
    store.record_polls([failing])
    state = store.feeds_by_id([feed])[feed]
    assert state.error_count == 2
    assert state.last_failure == Failure(FailureKind.HTTP, "HTTP 500")  # kind kept too
    assert store.claim_feeds("a", 4999.0, None, 10, 60.0) == []  # backing off till 5000
    assert [f.id for f in store.claim_feeds("a", 5000.0, None, 10, 60.0)] == [feed]


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    Store(url).migrate()
    engine = Database(url)
    with engine.begin() as conn:
        conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    engine.dispose()
    with pytest.raises(StoreError, match="newer than this notifier"):
        Store(url).migrate()


_LATER_COLUMNS = (
    ("feeds", "post_id"), ("feeds", "rescan_due"), ("feeds", "body_hash"),  # 2
    ("entries", "revision"), ("entries", "author_hash"),  # 2
    ("outbox", "held_until"), ("outbox", "digest_id"),  # 3
    ("subscriptions", "discovery_errors"), ("subscriptions", "discovery_due"),  # 5
    ("feeds", "last_error_kind"), ("subscriptions", "last_error_kind"),  # 6
    ("feeds", "polled_by"), ("feeds", "polled_token"), ("outbox", "claim_owner"),  # 7
    ("outbox", "claim_id"), ("channel_state", "paused_until"),  # 7
    ("channel_state", "lease_owner"), ("channel_state", "lease_until"),  # 7
)
"""The columns migrations 2 to 7 added to version 1's tables (migration 8's is in a table
of migration 4, dropped whole)."""


def _schema(db: Database) -> dict[str, list[tuple[object, ...]]]:
    """Every table's columns as the database describes them (name, type, nullability,
    default), and the indexes: what an upgraded state and a new one must agree on."""
    with db.connect() as conn:
        if conn.dialect == "sqlite":
            tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                                  ).scalars()
            found: dict[str, list[tuple[object, ...]]] = {
                t: sorted((r[1], r[2], r[3], r[4]) for r in conn.execute(
                    f"PRAGMA table_info({t})").tuples()) for t in tables}
            found["indexes"] = sorted((name,) for name in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index'").scalars())
            return found
        found = {"indexes": sorted((name,) for name in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
            ).scalars())}
        for row in conn.execute(
                "SELECT table_name, column_name, data_type, character_maximum_length, "
                "is_nullable, column_default FROM information_schema.columns "
                "WHERE table_schema = current_schema()").tuples():
            found.setdefault(row[0], []).append(row[1:])
        return {t: sorted(columns, key=str) for t, columns in found.items()}


@pytest.mark.parametrize("kind", databases.KINDS)
def test_a_version_1_state_is_upgraded_keeping_what_it_saw(tmp_path: Path, kind: str) -> None:
    """Migrations 2 to 9 add what came after version 1 to a state written by version 1:
    its rows are kept, and its tables end as a new state's, column for column."""
    with databases.state_url(kind, tmp_path) as url:
        old = Store(url)
        old.migrate()
        feed = setup_feed(old)
        old.record_polls([record(feed, [entry(1)], [])])
        new_schema = _schema(old.db)
        old.close()
        engine = Database(url)
        with engine.begin() as conn:  # back to version 1's shape
            for index in ("ix_outbox_digest", "ix_feeds_due"):
                conn.execute(f"DROP INDEX {index}")
            for table, column in _LATER_COLUMNS:
                conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
            for table in ("thread_feeds", "sites", "nodes", "discovery_claims"):
                conn.execute(f"DROP TABLE {table}")
            conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")

        store = Store(url)
        store.migrate()
        assert _schema(engine) == new_schema
        engine.dispose()
        assert store.seen_entries({feed: [entry(1).key]}) == {feed: {entry(1).key: "h1hi"}}
        assert store.entry_revisions(feed, [entry(1).key]) == {entry(1).key: 0}
        edited = entry(1, "edited")
        store.record_polls([PollRecord(feed_id=feed, polled_at=3000.0, next_due=3600.0,
                                       status=200, changed_entries=[edited], post_id="4",
                                       rescan_due=9000.0)])
        assert store.entry_revisions(feed, [edited.key]) == {edited.key: 1}
        state = store.feeds_by_id([feed])[feed]
        assert (state.post_id, state.rescan_due, state.body_hash) == ("4", 9000.0, None)
        assert store.thread_feeds() == {}
        store.close()


def test_a_sites_threads_are_marked_for_a_rescan_at_their_next_poll(store: Store) -> None:
    """What a site probe found reaches threads polled later (another tick, another node):
    a moved count marks all of the site's listed threads, an edit only its post's (and the
    site-wide comment feed); threads not yet listed, already due or on another site keep
    their own rescan time."""
    site, other = "http://blog.test/wp-json/", "http://other.test/wp-json/"
    ids = {}
    for name, root, post in (("p4", site, "4"), ("p5", site, "5"), ("all", site, None),
                             ("new", site, "6"), ("due", site, "7"), ("far", other, "4")):
        ids[name] = store.save_discovery(name, f"http://x.test/{name}/", "comments",
                                         f"http://x.test/{name}/feed/", root, 600.0, 1000.0)
        rescan = {"new": None, "due": 1500.0}.get(name, 9000.0)
        store.record_polls([PollRecord(feed_id=ids[name], polled_at=1000.0, next_due=1600.0,
                                       status=200, post_id=post, rescan_due=rescan)])

    def due() -> dict[str, float | None]:
        states = store.feeds_by_id(ids.values())
        return {name: states[i].rescan_due for name, i in ids.items()}

    store.rescan_threads({site: frozenset({"5"})}, 2000.0)
    assert due() == {"p4": 9000.0, "p5": 2000.0, "all": 2000.0, "new": None, "due": 1500.0,
                     "far": 9000.0}
    store.rescan_threads({site: None}, 2100.0)
    assert due() == {"p4": 2100.0, "p5": 2000.0, "all": 2000.0, "new": None, "due": 1500.0,
                     "far": 9000.0}


def test_thread_feeds_join_quietly_at_baseline_and_retire_by_age(store: Store) -> None:
    site = store.save_discovery("site", "http://blog.test/", "threads",
                                "http://blog.test/feed/atom/", None, 600.0, 1000.0)
    old = ThreadLink("site", "http://blog.test/old/feed/atom/", "old", 100.0)
    new = ThreadLink("site", "http://blog.test/new/feed/atom/", "new", 5000.0)
    baseline = PollRecord(feed_id=site, polled_at=6000.0, next_due=6600.0, status=200,
                          threads=[ThreadUpdate("site", [old, new], 50.0, quiet=True)])
    store.record_polls([baseline])
    following = store.thread_feeds()
    assert sorted(following.values(), key=str) == [{"site": True}, {"site": True}]
    (new_id,) = [fid for fid, s in following.items()
                 if store.feeds_by_id([fid])[fid].url == new.url]
    store.record_polls([PollRecord(feed_id=new_id, polled_at=6100.0, next_due=6700.0,
                                   status=200, settle_thread=True)])
    later = ThreadLink("site", "http://blog.test/later/feed/atom/", "later", 7000.0)
    store.record_polls([PollRecord(feed_id=site, polled_at=8000.0, next_due=8600.0,
                                   status=200,
                                   threads=[ThreadUpdate("site", [new, later], 1000.0,
                                                         quiet=False)])])
    urls = {store.feeds_by_id([fid])[fid].url: quiet
            for fid, subs in store.thread_feeds().items() for quiet in subs.values()}
    assert urls == {new.url: False, later.url: False}  # old retired; later joined loud


def test_held_rows_digests_and_their_counts(store: Store) -> None:
    feed = setup_feed(store)
    es = [entry(n) for n in (1, 2, 3, 4)]
    store.record_polls([record(feed, es, [QueuedNotice("thread", "me", e.key) for e in es])])
    a, b, c, d = store.claim_due(3000.0, 10)
    store.hold({a.id: 5000.0, b.id: 5000.0, c.id: 6000.0})
    store.release([d.id])
    assert [i.id for i in store.claim_due(4000.0, 10)] == [d.id]
    store.mark_failed(d.id, "HTTP 500", 7000.0, 4000.0)
    stats = store.channel_stats()["me"]
    assert (stats.queued, stats.held, stats.failed, stats.next_release) == (1, 3, 1, 5000.0)
    # Released rows come back with the time they were held until; a digest is claimed whole.
    released = store.claim_due(5000.0, 1)
    assert [i.held_until for i in released] == [5000.0]
    store.assign_digest("digest-1", [a.id, b.id])
    rest = store.claim_digest_members(["digest-1"], 5000.0)
    assert {i.id for i in released + rest} == {a.id, b.id}
    assert all(i.digest_id == "digest-1" for i in rest)
    store.mark_sent([a.id, b.id], 5001.0)
    stats = store.channel_stats()["me"]
    assert (stats.held, stats.sent, stats.digests, stats.in_digests) == (1, 2, 1, 2)
    assert [i.id for i in store.claim_due(7000.0, 10)] == [c.id, d.id]
    store.mark_failed([c.id, d.id], "HTTP 500", None, 7000.0)
    assert store.channel_stats()["me"].dead == 2


def test_a_state_url_reads_as_it_always_did(tmp_path: Path) -> None:
    """`%20` in a SQLite state URL is a space (as SQLAlchemy read it, so an upgrade finds
    the same file), `?timeout=` is taken, and an option the store does not know is refused
    with what it takes, not ignored."""
    folder = tmp_path / "my states"
    folder.mkdir()
    url = f"sqlite:///{str(folder).replace(' ', '%20')}/state.db?timeout=5"
    store = Store(url)
    store.migrate()
    setup_feed(store)
    store.close()
    assert (folder / "state.db").exists() and len(list(tmp_path.iterdir())) == 1
    again = Store(url)
    assert again.feed_count() == 1
    again.close()
    with pytest.raises(StoreError, match=r"unknown option mode='ro'.*\?timeout=SECONDS"):
        Store(f"sqlite:///{tmp_path / 'x.db'}?mode=ro")
    with pytest.raises(StoreError, match="expected sqlite:///FILE or postgresql://"):
        Store("mysql://u@db.test/notifier")
    # ?timeout= is how long a write waits for another process's lock: 0, not 30 s.
    holder = sqlite3.connect(folder / "state.db")
    try:
        holder.execute("BEGIN IMMEDIATE")
        impatient = Store(url.replace("timeout=5", "timeout=0"))
        began = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            impatient.record_polls([record(1, [entry(2)], [])])
        assert time.monotonic() - began < 5
        impatient.close()
    finally:
        holder.close()


def test_a_percent_or_colon_in_a_literal_is_no_parameter(store: Store) -> None:
    """The store's SQL is written once for both databases, with sqlite3's placeholders; on
    PostgreSQL they are rewritten for psycopg, which must leave literals, comments and
    casts alone (a `%` in a literal would read as a placeholder there)."""
    with store.db.connect() as conn:
        row = conn.execute("SELECT 'a%b:c', :x -- isn't :y a name?\n", {"x": "it's"}).first()
    assert tuple(row) == ("a%b:c", "it's")


def test_a_postgresql_connection_the_server_dropped_is_replaced(tmp_path: Path) -> None:
    """A server restart or failover drops the connections the store keeps open between
    transactions: the next transaction gets a new one instead of failing. One dropped in
    the middle of a transaction fails that transaction with the server's reason, which the
    daemon reads as a state it cannot use right now (it waits and tries again), and the
    one after it works."""
    from notifier.store.statefile import unwritable

    with databases.state_url("postgresql", tmp_path) as url:
        name = f"dropped-{uuid.uuid4().hex[:12]}"  # this test's connections only
        store = Store(url, node=name)
        store.migrate()
        feed = setup_feed(store)
        admin = Database(url)

        def drop() -> int:
            """Terminate this store's connections and wait until they are gone."""
            with admin.begin() as conn:
                return len(conn.execute(
                    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                    "WHERE application_name = :name", {"name": name}).scalars())

        try:
            assert drop() >= 1  # the store's idle connection
            store.record_polls([record(feed, [entry(1)], [])])
            assert store.seen_entries({feed: [entry(1).key]}) == {
                feed: {entry(1).key: entry(1).content_hash}}
            with pytest.raises(store.db.Error) as failed, store.db.begin() as conn:
                conn.execute("UPDATE feeds SET title = 'half-written'")
                drop()
                conn.execute("UPDATE feeds SET title = 'never'")
            assert unwritable(failed.value)
            assert store.feed_count() == 1
            assert store.feeds_by_id([feed])[feed].title != "half-written"
        finally:
            store.close()
            admin.dispose()
