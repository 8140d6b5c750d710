"""The Store: every query notifier makes, over the schema in `schema`.

The SQL is written out, one text for the embedded SQLite file and for PostgreSQL; where the
two differ, `db.Connection` says how (row locks, a list as one parameter). The store is
synchronous and is driven from a single worker thread (see `poll.cycle`), which keeps
SQLite's one-writer rule trivially true and the event loop free.

Why the outbox lives here with the entries: new entries and the notifications they cause are
written in one transaction, so a crash can neither lose a notification (entry stored, nothing
queued) nor repeat one (queued again because the entry looked new after restart).
"""

from __future__ import annotations

import contextlib
import functools
import json
import operator
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from notifier import __version__, redact
from notifier.failures import Failure
from notifier.models import Entry
from notifier.store.db import CHUNK, Connection, Database, Result, chunks, listed
from notifier.store.leases import LeaseStore, new_claim_id
from notifier.store.records import (
    ChannelStats,
    DaemonRecord,
    FeedHealth,
    FeedState,
    OpsSnapshot,
    OutboxItem,
    PollRecord,
    QueueGauge,
    RecentNotification,
    SiteState,
    StoreError,
    SubscriptionState,
    ThreadUpdate,
)
from notifier.store.schema import _MIGRATIONS, SCHEMA_VERSION, create_meta, quoted
from notifier.store.statefile import folder_problem, sqlite_path

MIGRATION_LOCK = 0x6E6F7469666965  # "notifie": the advisory lock key of migrations


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _dt(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


_ENTRY_COLUMNS = ("key", "kind", "title", "author", "author_url", "published", "updated",
                  "link", "content_html", "content_text", "post_key", "post_title",
                  "post_link", "parent_key", "parent_author", "content_hash", "author_hash")
"""An entry's columns as `_entry_row` writes them and `_row_entry` reads them."""

_ENTRY_SELECT = ", ".join(f"entries.{quoted(c)}" for c in _ENTRY_COLUMNS)


def _entry_row(entry: Entry) -> dict[str, Any]:
    return {
        "key": entry.key, "kind": entry.kind, "title": entry.title, "author": entry.author,
        "author_url": entry.author_url, "published": _ts(entry.published),
        "updated": _ts(entry.updated), "link": entry.link, "content_html": entry.content_html,
        "content_text": entry.content_text, "post_key": entry.post_key,
        "post_title": entry.post_title, "post_link": entry.post_link,
        "parent_key": entry.parent_key, "parent_author": entry.parent_author,
        "content_hash": entry.content_hash, "author_hash": entry.author_hash,
    }


def _row_entry(row: Any) -> Entry:
    return Entry(
        key=row.key, kind=row.kind, title=row.title, author=row.author,
        author_url=row.author_url, published=_dt(row.published), updated=_dt(row.updated),
        link=row.link, content_html=row.content_html, content_text=row.content_text,
        post_key=row.post_key, post_title=row.post_title, post_link=row.post_link,
        parent_key=row.parent_key, parent_author=row.parent_author,
        content_hash=row.content_hash, author_hash=row.author_hash,
    )


def _site_texts(stored: str | None) -> dict[int, str]:
    """The stored text digests of a site's newest comments; unreadable reads as none (the
    next probe is then a new baseline, and `rescan` covers the interval)."""
    try:
        data = json.loads(stored) if stored else {}
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {int(k): v for k, v in data.items()
            if isinstance(k, str) and k.isdigit() and len(k) < 19 and isinstance(v, str)}


def _feed_row_only(record: PollRecord) -> bool:
    """A poll whose only write is plain values on its feed's row."""
    return (record.failure is None and not record.new_url and not record.new_entries
            and not record.changed_entries and not record.threads
            and not record.settle_thread and not record.baselines and not record.notices)


_PLAIN_NULLS = frozenset({"last_error", "last_error_kind", "lease_until"})
"""What a plain poll (no failure) always sets to NULL: written so in the statement, not
bound (SQLite's driver asks each None bound how to adapt it, three times a row)."""


@functools.lru_cache(maxsize=64)
def _plain_update(keys: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """The UPDATE of feed rows setting `keys` (a shape of `_feed_values` of a poll without
    failure), and the values each row binds, in order: built once per shape, and run as
    one executemany of tuples per batch (a dict per row cost the driver more)."""
    sets: list[str] = []
    bound: list[str] = []
    for key in keys:
        if key in _PLAIN_NULLS:
            sets.append(f"{key} = NULL")
        elif key == "entries_seen":
            sets.append("entries_seen = entries_seen + ?")
            bound.append(key)
        else:
            sets.append(f"{key} = ?")
            bound.append(key)
    return f"UPDATE feeds SET {', '.join(sets)} WHERE id = ?", (*bound, "id")


def _of_posts(posts: frozenset[str]) -> tuple[str, dict[str, Any]]:
    """The condition that a feed of a site is its site-wide comment feed (no post) or the
    thread of one of `posts`, and its parameters."""
    if not posts:
        return "post_id IS NULL", {}
    named, params = listed("p", sorted(posts))
    return f"(post_id IS NULL OR post_id IN {named})", params


def _end_discovery_claim(conn: Connection, name: str) -> None:
    """A discovery recorded, found or failed: its claim (`Store.claim_discoveries`) ends."""
    conn.execute("DELETE FROM discovery_claims WHERE subscription = :name", {"name": name})


def _feed_values(record: PollRecord) -> dict[str, Any]:
    """The plain values a poll writes on its feed's row (no SQL expressions)."""
    values: dict[str, Any] = {
        "last_polled": record.polled_at, "next_due": record.next_due,
        "last_status": record.status,
        "last_error": record.failure.message if record.failure else None,
        "last_error_kind": record.failure.kind.value if record.failure else None,
    }
    if record.failure is None:
        values["error_count"] = 0
        if record.validators_changed:
            values["etag"] = record.etag
            values["last_modified"] = record.last_modified
        if record.body_hash:
            values["body_hash"] = record.body_hash
    if record.title:
        values["title"] = record.title
    if record.post_id:
        values["post_id"] = record.post_id
    if record.rescan_due is not None:
        values["rescan_due"] = record.rescan_due
    return values


def _insert(table: str, columns: Sequence[str], conflict: str = "") -> str:
    """INSERT of one row of these columns, bound by name; `conflict` its ON CONFLICT."""
    names = ", ".join(quoted(c) for c in columns)
    values = ", ".join(f":{c}" for c in columns)
    return f"INSERT INTO {table} ({names}) VALUES ({values}){conflict}"


# --- the store ---------------------------------------------------------------------------


class Store(LeaseStore):
    """State behind the pipeline. Methods are named after what their callers need; the
    claims and heartbeats of several nodes are in `LeaseStore`."""

    def __init__(self, url: str, node: str | None = None, lease: float | None = None
                 ) -> None:
        """`node` names this node's connections (PostgreSQL's `application_name`, seen in
        `pg_stat_activity`). With `lease`, PostgreSQL ends a session of this node left idle
        inside a transaction for that long: a node paused mid-transaction would otherwise
        keep its row locks, and so its feeds, until it woke."""
        self.url = url
        self.db = Database(url, node, lease)
        self.dialect = self.db.dialect
        """"sqlite" or "postgresql"."""

    def close(self) -> None:
        self.db.dispose()

    @staticmethod
    def describe_url(url: str) -> str:
        return redact.url(url)

    def migrate(self) -> None:
        """Create or upgrade the schema; refuse a database written by a newer notifier.

        Nodes starting together against one PostgreSQL queue on an advisory lock held for
        the transaction, so the first migrates and the others find the schema current
        (on SQLite, processes opening one file at once queue on its write lock).
        """
        try:
            with self.db.begin() as conn:
                if conn.dialect == "postgresql":
                    conn.execute("SELECT pg_advisory_xact_lock(:key)", {"key": MIGRATION_LOCK})
                else:  # SQLite: take the write lock before reading the version
                    conn.lock_for_writing()
                create_meta(conn)
                value = conn.execute("SELECT value FROM meta WHERE \"key\" = 'schema_version'"
                                     ).scalar()
                version = int(value) if value is not None else 0
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"state {redact.url(self.url)} has schema version {version}, newer "
                        f"than this notifier {__version__} understands ({SCHEMA_VERSION}): "
                        "another node was upgraded; upgrade notifier on this node too "
                        "(or restore a backup made by this version)")
                for number, step in enumerate(_MIGRATIONS, start=1):
                    if number > version:
                        step(conn)
                if version != SCHEMA_VERSION:
                    conn.execute("DELETE FROM meta WHERE \"key\" = 'schema_version'")
                    conn.execute("INSERT INTO meta (\"key\", value) "
                                 "VALUES ('schema_version', :value)",
                                 {"value": str(SCHEMA_VERSION)})
        except self.db.DatabaseError as exc:
            # A truncated or overwritten SQLite file lands here too ("file is not a
            # database", "database disk image is malformed"): say what to do, touch nothing.
            path = sqlite_path(self.url)
            problem = folder_problem(path) if path is not None else None
            if problem is not None:  # no state there to restore: the folder is missing
                raise StoreError(problem) from exc
            hint = ("; restore it from a backup (see `notifier backup`), or move it away to "
                    "start an empty state: notifier never overwrites it"
                    if self.dialect == "sqlite" else "")
            raise StoreError(f"cannot open state {redact.url(self.url)}: {exc}{hint}"
                             ) from exc
        except self.db.Error as exc:  # psycopg's OperationalError: the server is not there
            raise StoreError(f"cannot open state {redact.url(self.url)}: {exc}") from exc

    # --- subscriptions and feeds --------------------------------------------------------

    def subscription_states(self) -> dict[str, SubscriptionState]:
        with self.db.connect() as conn:
            return {
                row.name: SubscriptionState(
                    name=row.name, source_url=row.source_url, watch=row.watch,
                    feed_id=row.feed_id, feed_url=row.url, discovered_at=row.discovered_at,
                    baseline_at=row.baseline_at,
                    last_failure=Failure.stored(row.last_error_kind, row.last_error),
                    discovery_errors=row.discovery_errors or 0,
                    discovery_due=row.discovery_due)
                for row in conn.execute(
                    "SELECT s.name, s.source_url, s.watch, s.feed_id, s.discovered_at, "
                    "s.baseline_at, s.last_error, s.discovery_errors, s.discovery_due, "
                    "s.last_error_kind, f.url FROM subscriptions s "
                    "LEFT OUTER JOIN feeds f ON s.feed_id = f.id")
            }

    def feed_urls(self) -> dict[int, tuple[str, str | None]]:
        """Feed id -> (URL, its site's API root) for every feed: which hosts each is asked
        on, to share a run's feeds between processes (`notifier.poll.shards`)."""
        with self.db.connect() as conn:
            return {int(i): (url, root) for i, url, root
                    in conn.execute("SELECT id, url, api_root FROM feeds").tuples()}

    def polled_since(self, node: str, since: float) -> set[int]:
        """The feeds whose last poll `node` wrote at `since` or later: those a split run's
        second process finished before it died (`notifier.poll.shards`)."""
        with self.db.connect() as conn:
            return {int(i) for i in conn.execute(
                "SELECT id FROM feeds WHERE polled_by = :node AND last_polled >= :since",
                {"node": node, "since": since}).scalars()}

    def feed_count(self) -> int:
        with self.db.connect() as conn:
            return int(conn.execute("SELECT count(*) FROM feeds").scalar())

    def baselined(self) -> dict[str, str | None]:
        """Subscription name -> its feed's URL, for every subscription with a baseline: what
        `run --once` compares before and after a pass, without building every state."""
        with self.db.connect() as conn:
            return dict(conn.execute(
                "SELECT s.name, f.url FROM subscriptions s "
                "LEFT OUTER JOIN feeds f ON s.feed_id = f.id "
                "WHERE s.baseline_at IS NOT NULL").tuples())

    def claim_discoveries(self, names: Sequence[str], node: str, now: float,
                          until: float) -> set[str]:
        """The subscriptions among `names` whose feed this node is to discover now: those no
        other node is discovering. Each is claimed until `until` (its discovery's time
        limit): nodes starting together with the same subscriptions, which would each
        have asked every site for every page, ask it once between them; a claim whose node
        died passes on when it runs out. `save_discovery` and `record_discovery_error`
        end the claim; a node's own claim it may take again. A SQLite state has one
        process (`statefile.hold_state`): there every discovery is its own."""
        if self.dialect == "sqlite":
            return set(names)
        won: set[str] = set()
        with self.db.begin() as conn:
            for chunk in chunks(names):
                rows = ", ".join(f"(:s{i}, :node, :until)" for i in range(len(chunk)))
                params: dict[str, Any] = {f"s{i}": name for i, name in enumerate(chunk)}
                params.update(node=node, until=until, now=now)
                won.update(conn.execute(
                    f"INSERT INTO discovery_claims (subscription, node, until) VALUES {rows} "
                    "ON CONFLICT (subscription) DO UPDATE SET node = excluded.node, "
                    "until = excluded.until WHERE discovery_claims.until <= :now "
                    "OR discovery_claims.node = :node RETURNING subscription",
                    params).scalars())
        return won

    def release_discoveries(self, names: Sequence[str], node: str) -> None:
        """Give up this node's claims on these discoveries (cancelled: the node stops), so
        that another node takes them up at once rather than when they run out."""
        with self.db.begin() as conn:
            for chunk in chunks(names):
                claimed, params = listed("s", chunk)
                conn.execute(f"DELETE FROM discovery_claims WHERE node = :node "
                             f"AND subscription IN {claimed}", {**params, "node": node})

    def save_discovery(self, name: str, source_url: str, watch: str, feed_url: str,
                       api_root: str | None, interval: float, now: float) -> int:
        """Point a subscription at its feed, creating the feed; a new feed means a new baseline."""
        with self.db.begin() as conn:
            _end_discovery_claim(conn, name)
            feed_id = self._feed_id(conn, feed_url, interval, now)
            if api_root:
                conn.execute("UPDATE feeds SET api_root = :root WHERE id = :id",
                             {"root": api_root, "id": feed_id})
            old = conn.execute("SELECT feed_id, baseline_at FROM subscriptions "
                               "WHERE name = :name", {"name": name}).first()
            values: dict[str, Any] = {
                "name": name, "source_url": source_url, "watch": watch, "feed_id": feed_id,
                "discovered_at": now, "last_error": None, "last_error_kind": None,
                "discovery_errors": 0, "discovery_due": None}
            if old is None:
                conn.execute(_insert("subscriptions", [*values, "baseline_at"]),
                             {**values, "baseline_at": None})
            else:
                keys = [k for k in values if k != "name"]
                if old.feed_id != feed_id:
                    values["baseline_at"] = None
                    keys.append("baseline_at")
                conn.execute("UPDATE subscriptions SET "
                             + ", ".join(f"{k} = :{k}" for k in keys)
                             + " WHERE name = :name", values)
            return feed_id

    def record_discovery_error(self, name: str, source_url: str, watch: str, failure: Failure,
                               now: float, next_due: float | None = None) -> None:
        """Remember a failed discovery, its kind, and when to try again (`next_due`)."""
        values = {"name": name, "source_url": source_url, "watch": watch,
                  "due": next_due, "error": failure.message, "kind": failure.kind.value}
        with self.db.begin() as conn:
            _end_discovery_claim(conn, name)
            updated = conn.execute(
                "UPDATE subscriptions SET source_url = :source_url, watch = :watch, "
                "discovered_at = NULL, discovery_errors = discovery_errors + 1, "
                "discovery_due = :due, last_error = :error, last_error_kind = :kind "
                "WHERE name = :name", values).rowcount
            if not updated:
                conn.execute(
                    "INSERT INTO subscriptions (name, source_url, watch, feed_id, "
                    "discovered_at, baseline_at, discovery_errors, discovery_due, last_error, "
                    "last_error_kind) VALUES (:name, :source_url, :watch, NULL, NULL, NULL, "
                    "1, :due, :error, :kind)", values)

    def _feed_id(self, conn: Connection, url: str, interval: float, now: float) -> int:
        existing = conn.execute("SELECT id FROM feeds WHERE url = :url", {"url": url}).scalar()
        if existing is not None:
            return int(existing)
        return int(conn.execute(
            "INSERT INTO feeds (url, interval, next_due, created) "
            "VALUES (:url, :interval, :now, :now) RETURNING id",
            {"url": url, "interval": interval, "now": now}).scalar())

    def set_feed_intervals(self, intervals: Mapping[int, float]) -> None:
        """Apply configured intervals; a shorter interval makes the feed due sooner.

        Only feeds whose interval changed are written: this runs whenever the set of feeds
        is recomputed, which `watch: threads` makes frequent.
        """
        with self.db.begin() as conn:
            current: dict[int, float] = {}
            for chunk in chunks(sorted(intervals)):
                ids, params = listed("id", chunk)
                current.update(conn.execute(
                    f"SELECT id, interval FROM feeds WHERE id IN {ids}", params).tuples())
            for feed_id, interval in intervals.items():
                if current.get(feed_id) == interval:
                    continue
                conn.execute(
                    "UPDATE feeds SET interval = :interval, next_due = CASE "
                    "WHEN next_due > coalesce(last_polled, 0) + :interval "
                    "THEN coalesce(last_polled, 0) + :interval ELSE next_due END "
                    "WHERE id = :id", {"interval": interval, "id": feed_id})

    def feeds_by_id(self, ids: Iterable[int]) -> dict[int, FeedState]:
        wanted = sorted(set(ids))
        out: dict[int, FeedState] = {}
        with self.db.connect() as conn:
            for chunk in chunks(wanted):
                listed_ids, params = listed("id", chunk)
                for state in _feed_states(conn.execute(
                        f"SELECT {_STATE_SELECT} FROM feeds WHERE id IN {listed_ids}",
                        params)):
                    out[state.id] = state
        return out

    def seen_entries(self, wanted: Mapping[int, Sequence[str]]) -> dict[int, dict[str, str]]:
        """For each feed, which of these keys it has stored, with their content hashes."""
        out: dict[int, dict[str, str]] = {feed_id: {} for feed_id in wanted}
        pairs = {(feed_id, key) for feed_id, keys in wanted.items() for key in keys}
        feed_ids = sorted(wanted)
        keys = sorted({key for _, key in pairs})
        # One query per chunk of keys for the whole batch, not one per feed.
        with self.db.connect() as conn:
            for feed_chunk in chunks(feed_ids):
                for key_chunk in chunks(keys):
                    in_feeds, params = listed("f", feed_chunk)
                    in_keys, key_params = listed("k", key_chunk)
                    params.update(key_params)
                    for feed_id, key, content_hash in conn.execute(
                            'SELECT feed_id, "key", content_hash FROM entries '
                            f'WHERE feed_id IN {in_feeds} AND "key" IN {in_keys}',
                            params).tuples():
                        if (feed_id, key) in pairs:
                            out[feed_id][key] = content_hash
        return out

    def entry_revisions(self, feed_id: int, keys: Iterable[str]) -> dict[str, int]:
        """How many edits of each stored entry were seen: the next edit is reported as +1."""
        out: dict[str, int] = {}
        with self.db.connect() as conn:
            for chunk in chunks(sorted(set(keys))):
                in_keys, params = listed("k", chunk)
                out.update({key: int(revision) for key, revision in conn.execute(
                    f'SELECT "key", revision FROM entries WHERE feed_id = :feed '
                    f'AND "key" IN {in_keys}', {**params, "feed": feed_id}).tuples()})
        return out

    def newest_entry_time(self, feed_id: int) -> float | None:
        """When the newest stored entry of a feed was published: a gap lies after it."""
        with self.db.connect() as conn:
            value = conn.execute("SELECT max(published) FROM entries WHERE feed_id = :feed",
                                 {"feed": feed_id}).scalar()
        return float(value) if value is not None else None

    def comment_keys(self, feed_id: int, limit: int = 1) -> list[str]:
        """A few stored comment keys of a feed: a REST rescan keys its results like them."""
        with self.db.connect() as conn:
            return conn.execute(
                "SELECT \"key\" FROM entries WHERE feed_id = :feed AND kind = 'comment' "
                "ORDER BY id DESC LIMIT :limit", {"feed": feed_id, "limit": limit}).scalars()

    def newest_entries(self, feed_id: int, limit: int = 1) -> list[Entry]:
        """A feed's newest stored entries, by publication time then arrival: `preview`."""
        with self.db.connect() as conn:
            return [_row_entry(row) for row in conn.execute(
                f"SELECT {_ENTRY_SELECT} FROM entries WHERE feed_id = :feed "
                "ORDER BY published IS NULL, published DESC, id DESC LIMIT :limit",
                {"feed": feed_id, "limit": limit})]

    def has_entries(self, feed_ids: Iterable[int]) -> set[int]:
        wanted = sorted(set(feed_ids))
        found: set[int] = set()
        with self.db.connect() as conn:
            for chunk in chunks(wanted):
                ids, params = listed("f", chunk)
                found.update(int(v) for v in conn.execute(
                    f"SELECT feed_id FROM entries WHERE feed_id IN {ids} GROUP BY feed_id",
                    params).scalars())
        return found

    def entries_by_key(self, keys: Iterable[str]) -> dict[str, Entry]:
        """Stored entries by key, from any feed: how a reply finds the comment it answers."""
        wanted = sorted(set(k for k in keys if k))
        out: dict[str, Entry] = {}
        with self.db.connect() as conn:
            for chunk in chunks(wanted):
                in_keys, params = listed("k", chunk)
                for row in conn.execute(f'SELECT {_ENTRY_SELECT} FROM entries '
                                        f'WHERE "key" IN {in_keys} ORDER BY id', params):
                    out.setdefault(row.key, _row_entry(row))
        return out

    def record_polls(self, records: Sequence[PollRecord]) -> int:
        """Write a batch of polls in one transaction; return how many notices were queued.

        Most polls of a cycle change nothing but the feed's own row (a 304, or a body with
        nothing new): those rows are written with one executemany per shape of update, not
        one statement each, which is most of the cost of an unchanged cycle."""
        with self.db.begin() as conn:
            return self._write_polls(conn, records)

    def _write_polls(self, conn: Connection, records: Iterable[PollRecord],
                     fence: tuple[str, Mapping[int, int]] | None = None) -> int:
        """`record_polls` inside the caller's transaction (also the fenced write's).

        Statements of one shape are sent together (an executemany), whichever feeds they
        are for: the feed rows, the new entries, the notifications. A changed feed wrote
        four statements of its own, most of what it cost the store beyond a 304. The
        notifications are inserted last, in the order of the records and of their notices,
        so their ids (the order of delivery among equals) are as one by one.

        With `fence` (the node, and the token each feed was claimed under and still
        carries), each feed's row also says who polled it and under which token, and its
        lease ends: in the same statement as the poll's values, not a second update of
        the same rows."""
        plain: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        news: list[dict[str, Any]] = []
        queued: list[PollRecord] = []
        for record in records:
            if record.failure is None and not record.new_url:
                values = _feed_values(record)
                if fence is not None:
                    values["polled_by"] = fence[0]
                    values["polled_token"] = fence[1][record.feed_id]
                    values["lease_until"] = None
                if record.new_entries:
                    values["entries_seen"] = len(record.new_entries)
                values["id"] = record.feed_id
                plain.setdefault(tuple(values), []).append(values)
            else:
                stamp = None if fence is None else {
                    "polled_by": fence[0], "polled_token": fence[1][record.feed_id],
                    "lease_until": None}
                self._write_feed_row(conn, record, stamp)
            if not _feed_row_only(record):
                news.extend({**_entry_row(e), "feed_id": record.feed_id,
                             "first_seen": record.polled_at} for e in record.new_entries)
                self._record_poll(conn, record)
                if record.notices:
                    queued.append(record)
        for keys, rows in plain.items():
            sql, bound = _plain_update(keys[:-1])  # the last key is the row's id
            conn.execute_many(sql, [tuple([row[k] for k in bound]) for row in rows])
        if news:
            conn.execute_many(_INSERT_ENTRY, news)
        return self._queue_notices(conn, queued) if queued else 0

    def _write_feed_row(self, conn: Connection, record: PollRecord,
                        stamp: Mapping[str, Any] | None = None) -> None:
        """A failed poll's row (its error count goes up), or one whose feed moved."""
        values: dict[str, Any] = _feed_values(record)
        if stamp is not None:
            values.update(stamp)
        sets = [f"{key} = :{key}" for key in values]
        if record.failure is not None:
            sets.append("error_count = error_count + 1")
        if record.new_url:
            taken = conn.execute("SELECT id FROM feeds WHERE url = :url",
                                 {"url": record.new_url}).scalar()
            if taken is None:
                sets.append("url = :new_url")
                values["new_url"] = record.new_url
        if record.new_entries:
            sets.append("entries_seen = entries_seen + :added")
            values["added"] = len(record.new_entries)
        values["feed_id"] = record.feed_id
        conn.execute(f"UPDATE feeds SET {', '.join(sets)} WHERE id = :feed_id", values)

    def _record_poll(self, conn: Connection, record: PollRecord) -> None:
        """What a poll changes besides its feed's row, its new entries and notifications."""
        for entry in record.changed_entries:
            values = _entry_row(entry)
            values["feed_id"] = record.feed_id
            conn.execute("UPDATE entries SET revision = revision + 1, "
                         + ", ".join(f"{c} = :{c}" for c in _ENTRY_COLUMNS if c != "key")
                         + ' WHERE feed_id = :feed_id AND "key" = :key', values)
        for update in record.threads:
            self._update_threads(conn, update, record.polled_at)
        if record.settle_thread:
            conn.execute("UPDATE thread_feeds SET quiet = :quiet WHERE feed_id = :feed_id",
                         {"quiet": False, "feed_id": record.feed_id})
        if record.baselines:
            names, params = listed("s", sorted(record.baselines))
            conn.execute(f"UPDATE subscriptions SET baseline_at = :at WHERE name IN {names} "
                         "AND baseline_at IS NULL", {**params, "at": record.polled_at})

    def _queue_notices(self, conn: Connection, records: Sequence[PollRecord]) -> int:
        """Queue the records' notifications, in order; how many were new."""
        wanted = sorted({(r.feed_id, n.entry_key) for r in records for n in r.notices})
        ids: dict[tuple[int, str], int] = {}
        for chunk in chunks(wanted):
            in_feeds, params = listed("f", sorted({f for f, _ in chunk}))
            in_keys, key_params = listed("k", sorted({k for _, k in chunk}))
            params.update(key_params)
            ids.update({(feed_id, key): entry_id for feed_id, key, entry_id in conn.execute(
                f'SELECT feed_id, "key", id FROM entries WHERE feed_id IN {in_feeds} '
                f'AND "key" IN {in_keys}', params).tuples()})
        rows = [(
            new_notification_id(), n.subscription, n.channel, ids[(r.feed_id, n.entry_key)],
            n.entry_key, n.revision, n.missing, "queued", 0, r.polled_at, r.polled_at,
            n.digest_id,
        ) for r in records for n in r.notices if (r.feed_id, n.entry_key) in ids]
        # Several rows per statement, in order (their ids are the order of delivery among
        # equals); RETURNING counts what was really inserted (a row already queued for the
        # same comment and destination is not).
        inserted = 0
        per_statement = CHUNK // len(_OUTBOX_COLUMNS)
        for chunk in chunks(rows, per_statement):
            values = ", ".join(["(" + ", ".join("?" * len(_OUTBOX_COLUMNS)) + ")"] * len(chunk))
            inserted += len(conn.execute(
                f"INSERT INTO outbox ({', '.join(_OUTBOX_COLUMNS)}) VALUES {values} "
                "ON CONFLICT DO NOTHING RETURNING id",
                [value for row in chunk for value in row]).tuples())
        return inserted

    def _feed_states_of(self, result: Result) -> list[FeedState]:
        return _feed_states(result)

    def _state_columns(self) -> str:
        return _STATE_SELECT

    def _update_threads(self, conn: Connection, update: ThreadUpdate, now: float) -> None:
        site = conn.execute(
            "SELECT f.interval, f.api_root FROM feeds f JOIN subscriptions s "
            "ON s.feed_id = f.id WHERE s.name = :name", {"name": update.subscription}).first()
        interval = float(site.interval) if site is not None else 600.0
        api_root = site.api_root if site is not None else None
        following = set(conn.execute(
            "SELECT feed_id FROM thread_feeds WHERE subscription = :name",
            {"name": update.subscription}).scalars())
        for link in update.links:
            feed_id = self._feed_id(conn, link.url, interval, now)
            if api_root:  # the same site: its REST API backfills each thread
                conn.execute("UPDATE feeds SET api_root = :root WHERE id = :id "
                             "AND api_root IS NULL", {"root": api_root, "id": feed_id})
            if feed_id not in following:
                following.add(feed_id)
                conn.execute(
                    "INSERT INTO thread_feeds (subscription, feed_id, post_key, "
                    "post_published, quiet) VALUES (:name, :feed_id, :post_key, "
                    ":published, :quiet)",
                    {"name": update.subscription, "feed_id": feed_id,
                     "post_key": link.post_key, "published": link.published,
                     "quiet": update.quiet})
        conn.execute("DELETE FROM thread_feeds WHERE subscription = :name "
                     "AND post_published < :before",
                     {"name": update.subscription, "before": update.retire_before})

    # --- site probes ------------------------------------------------------------------

    def site_probes(self, api_roots: Iterable[str]) -> dict[str, SiteState]:
        """The last probe of each of these sites that has one."""
        found: dict[str, SiteState] = {}
        with self.db.connect() as conn:
            for chunk in chunks(sorted(set(api_roots))):
                roots, params = listed("r", chunk)
                for api_root, total, newest, next_probe, texts in conn.execute(
                        "SELECT api_root, comment_total, newest_id, next_probe, texts "
                        f"FROM sites WHERE api_root IN {roots}", params).tuples():
                    found[api_root] = SiteState(api_root, total, newest, next_probe,
                                                _site_texts(texts))
        return found

    def record_probes(self, probes: Sequence[SiteState],
                      rescans: Mapping[str, frozenset[str] | None],
                      rereads: Mapping[str, frozenset[str]], now: float) -> None:
        """What a batch's site probes found, in one transaction: each site's new probe
        (replacing what was stored), and the rescans (`rescan_threads`) and rereads
        (`reread_threads`) it calls for. Together, because the stored probe is what the
        next probe compares with: had it landed without them (a crash, a lost database
        between two transactions), the count it saw move would be explained already, and
        the late approval behind it left to the periodic rescan."""
        with self.db.begin() as conn:
            self._save_site_probes(conn, probes, now)
            self._rescan_threads(conn, rescans, now)
            self._reread_threads(conn, rereads)

    def _save_site_probes(self, conn: Connection, probes: Sequence[SiteState],
                          now: float) -> None:
        if not probes:
            return
        rows = [{"api_root": p.api_root, "comment_total": p.comment_total,
                 "newest_id": p.newest_id, "probed_at": now, "next_probe": p.next_probe,
                 "texts": json.dumps({str(k): v for k, v in p.texts.items()})
                 if p.texts else None}
                for p in probes]
        conn.execute_many(
            "INSERT INTO sites (api_root, comment_total, newest_id, probed_at, next_probe, "
            "texts) VALUES (:api_root, :comment_total, :newest_id, :probed_at, :next_probe, "
            ":texts) ON CONFLICT (api_root) DO UPDATE SET "
            "comment_total = excluded.comment_total, newest_id = excluded.newest_id, "
            "probed_at = excluded.probed_at, next_probe = excluded.next_probe, "
            "texts = excluded.texts", rows)

    def rescan_threads(self, sites: Mapping[str, frozenset[str] | None], now: float) -> None:
        """Make threads of these sites rescan at their next poll, whoever polls it (a later
        claim batch, tick or node): of a site mapped to None every one, else those of the
        posts named and its site-wide feeds. Only feeds already listed once (`rescan_due`
        set) and not due anyway are touched; a rescan's poll sets the next one."""
        with self.db.begin() as conn:
            self._rescan_threads(conn, sites, now)

    @staticmethod
    def _rescan_threads(conn: Connection, sites: Mapping[str, frozenset[str] | None],
                        now: float) -> None:
        for api_root, posts in sites.items():
            which, params = ("1 = 1", {}) if posts is None else _of_posts(posts)
            conn.execute("UPDATE feeds SET rescan_due = :now WHERE api_root = :root "
                         f"AND rescan_due > :now AND {which}",
                         {**params, "root": api_root, "now": now})

    def reread_threads(self, sites: Mapping[str, frozenset[str]]) -> None:
        """Make threads of these sites' posts (and the sites' site-wide comment feeds) ask
        without validators at their next poll, whoever polls it: their stored validators
        are forgotten, and that poll stores the ones it is answered with. Only comment
        feeds, which are those already listed once (`rescan_due` set, as `rescan_threads`
        reads it): a site's posts feed keeps its validators."""
        with self.db.begin() as conn:
            self._reread_threads(conn, sites)

    @staticmethod
    def _reread_threads(conn: Connection, sites: Mapping[str, frozenset[str]]) -> None:
        for api_root, posts in sites.items():
            which, params = _of_posts(posts)
            conn.execute("UPDATE feeds SET etag = NULL, last_modified = NULL "
                         f"WHERE api_root = :root AND rescan_due IS NOT NULL AND {which} "
                         "AND (etag IS NOT NULL OR last_modified IS NOT NULL)",
                         {**params, "root": api_root})

    def thread_feeds(self) -> dict[int, dict[str, bool]]:
        """Feed id -> {subscription: quiet} for every thread feed a subscription follows."""
        out: dict[int, dict[str, bool]] = {}
        with self.db.connect() as conn:
            for feed_id, subscription, quiet in conn.execute(
                    "SELECT feed_id, subscription, quiet FROM thread_feeds").tuples():
                out.setdefault(int(feed_id), {})[subscription] = bool(quiet)
        return out

    # --- outbox --------------------------------------------------------------------------

    def claim_due(self, now: float, limit: int, lease: float = 300.0,
                  channels: Iterable[str] | None = None, node: str | None = None
                  ) -> list[OutboxItem]:
        """Take queued notifications whose time has come, oldest first, for `lease` seconds.

        Held rows whose release time has come are taken too: the caller gathers them into
        a digest. The rows share one new claim id (`OutboxItem.claim_id`); writes that pass
        it change a row only while that claim holds it.
        """
        params: dict[str, Any] = {"now": now, "limit": limit}
        which = ""
        if channels is not None:
            wanted = list(channels)
            if not wanted:
                return []
            named, listed_channels = listed("c", wanted)
            which = f" AND o.channel IN {named}"
            params.update(listed_channels)
        return self._claim(
            f"{_OUTBOX_SELECT} WHERE o.status IN ('queued', 'held') "
            "AND o.next_attempt <= :now AND (o.claimed_until IS NULL OR o.claimed_until < :now)"
            f"{which} ORDER BY o.next_attempt, e.published, o.id LIMIT :limit",
            params, now, lease, node, new_claim_id())

    def claim_digest_members(self, digest_ids: Iterable[str], now: float,
                             lease: float = 300.0, node: str | None = None,
                             claim: str | None = None) -> list[OutboxItem]:
        """The unsent, unclaimed rest of these digests: a digest is always sent whole.

        Taken under `claim` (that of the rows that started the digests) when given."""
        wanted = sorted(set(digest_ids))
        items: list[OutboxItem] = []
        for chunk in chunks(wanted):
            named, params = listed("d", chunk)
            params["now"] = now
            items += self._claim(
                f"{_OUTBOX_SELECT} WHERE o.digest_id IN {named} "
                "AND o.status IN ('queued', 'held') "
                "AND (o.claimed_until IS NULL OR o.claimed_until < :now) "
                "ORDER BY e.published, o.id", params, now, lease, node,
                claim or new_claim_id())
        return items

    def _claim(self, query: str, params: dict[str, Any], now: float, lease: float,
               node: str | None, claim: str) -> list[OutboxItem]:
        with self.db.begin() as conn:
            conn.lock_for_writing()
            # SKIP LOCKED: two nodes claiming at once take different rows, neither waits.
            rows = conn.execute(query + conn.for_update(of="o", skip_locked=True),
                                params).all()
            for chunk in chunks([row.id for row in rows]):
                ids, id_params = listed("id", chunk)
                conn.execute(f"UPDATE outbox SET claimed_until = :until, claim_owner = :node, "
                             f"claim_id = :claim WHERE id IN {ids}",
                             {**id_params, "until": now + lease, "node": node,
                              "claim": claim})
        return [OutboxItem(
            id=row.id, notification_id=row.notification_id, subscription=row.subscription,
            channel=row.channel, attempts=row.attempts, created=row.created,
            missing=row.missing, entry=_row_entry(row), feed_title=row.feed_title,
            feed_url=row.feed_url, revision=row.revision, held_until=row.held_until,
            digest_id=row.digest_id, claim_id=claim) for row in rows]

    def _update_outbox(self, sets: str, item_ids: Sequence[int], claim: str | None,
                       params: Mapping[str, Any] | None = None) -> None:
        """`UPDATE outbox SET <sets>` of these rows (those still held by `claim`, when
        given), in one transaction."""
        fence = "" if claim is None else " AND claim_id = :claim"
        with self.db.begin() as conn:
            for chunk in chunks(list(item_ids)):
                ids, bound = listed("id", chunk)
                conn.execute(f"UPDATE outbox SET {sets} WHERE id IN {ids}{fence}",
                             {**bound, **(params or {}), "claim": claim})

    def hold(self, until: Mapping[int, float], claim: str | None = None) -> None:
        """Keep claimed rows back until their release time (a digest, quiet hours)."""
        by_time: dict[float, list[int]] = {}
        for item_id, when in until.items():
            by_time.setdefault(when, []).append(item_id)
        fence = "" if claim is None else " AND claim_id = :claim"
        with self.db.begin() as conn:
            for when, ids in by_time.items():
                for chunk in chunks(ids):
                    named, params = listed("id", chunk)
                    conn.execute("UPDATE outbox SET status = 'held', next_attempt = :when, "
                                 "held_until = :when, claimed_until = NULL "
                                 f"WHERE id IN {named}{fence}",
                                 {**params, "when": when, "claim": claim})

    def assign_digest(self, digest_id: str, item_ids: Sequence[int],
                      claim: str | None = None) -> None:
        """Make rows members of one digest message, before it is sent (see the table)."""
        self._update_outbox("digest_id = :digest, status = 'queued'", item_ids, claim,
                            {"digest": digest_id})

    def release_claims(self) -> None:
        """Forget claims left by a process that died; only safe when no other node runs."""
        with self.db.begin() as conn:
            conn.execute("UPDATE outbox SET claimed_until = NULL "
                         "WHERE claimed_until IS NOT NULL")

    def mark_sent(self, item_ids: int | Sequence[int], now: float,
                  claim: str | None = None) -> None:
        """Record acceptance; several ids (a digest's members) in one transaction.

        Once per message sent, each in its own transaction before the next is offered (a
        crash repeats at most the one in flight)."""
        rows: list[dict[str, Any]] = [{"item": item, "now": now, "claim": claim}
                                      for item in _id_list(item_ids)]
        with self.db.begin() as conn:
            conn.execute_many(_MARK_SENT if claim is None else _MARK_SENT_FENCED, rows)

    def mark_failed(self, item_ids: int | Sequence[int], error: str,
                    next_attempt: float | None, now: float, claim: str | None = None) -> None:
        """Record a failed attempt; `next_attempt` None means dead-lettered."""
        then = "status = 'dead'" if next_attempt is None else "next_attempt = :next"
        self._update_outbox(f"attempts = attempts + 1, last_error = :error, "
                            f"claimed_until = NULL, {then}", _id_list(item_ids), claim,
                            {"error": error, "next": next_attempt})

    def release(self, item_ids: Sequence[int], claim: str | None = None) -> None:
        """Give back claimed rows that were not attempted (shutdown, disabled channel)."""
        self._update_outbox("claimed_until = NULL", item_ids, claim)

    def requeue_dead(self, now: float, channel: str | None = None) -> int:
        which = "" if channel is None else " AND channel = :channel"
        with self.db.begin() as conn:
            return int(conn.execute(
                "UPDATE outbox SET status = 'queued', next_attempt = :now, attempts = 0, "
                "created = :now, claimed_until = NULL WHERE status = 'dead'" + which,
                {"now": now, "channel": channel}).rowcount or 0)

    def retry_now(self, now: float, channel: str | None = None) -> tuple[int, int]:
        """Make failing rows due now and queue dead letters again: `retry --now`.

        Returns (failing made due, dead requeued). A running daemon sees the rows at its
        next delivery tick, since it reads due rows from here each time.
        """
        which = "" if channel is None else " AND channel = :channel"
        with self.db.begin() as conn:
            due = int(conn.execute(
                "UPDATE outbox SET next_attempt = :now WHERE status = 'queued' "
                "AND attempts > 0 AND next_attempt > :now" + which,
                {"now": now, "channel": channel}).rowcount or 0)
        return due, self.requeue_dead(now, channel)

    def disable_channel(self, name: str, reason: str, now: float) -> None:
        with self.db.begin() as conn:
            conn.execute("INSERT INTO channel_state (name) VALUES (:name) "
                         "ON CONFLICT DO NOTHING", {"name": name})
            conn.execute("UPDATE channel_state SET disabled_reason = :reason, "
                         "disabled_at = :now WHERE name = :name",
                         {"name": name, "reason": reason, "now": now})

    def enable_channel(self, name: str) -> None:
        with self.db.begin() as conn:
            conn.execute("UPDATE channel_state SET disabled_reason = NULL, disabled_at = NULL, "
                         "paused_until = NULL WHERE name = :name", {"name": name})

    def disabled_channels(self) -> dict[str, str]:
        with self.db.connect() as conn:
            return {name: reason or "" for name, reason in conn.execute(
                "SELECT name, disabled_reason FROM channel_state "
                "WHERE disabled_reason IS NOT NULL").tuples()}

    def pending_count(self, now: float) -> int:
        with self.db.connect() as conn:
            return int(conn.execute(
                "SELECT count(*) FROM outbox WHERE status IN ('queued', 'held') "
                "AND next_attempt <= :now", {"now": now}).scalar() or 0)

    # --- status --------------------------------------------------------------------------

    def channel_stats(self) -> dict[str, ChannelStats]:
        stats: dict[str, ChannelStats] = {}
        with self.db.connect() as conn:
            for channel, status, count, failing, last_sent in conn.execute(
                    "SELECT channel, status, count(*), "
                    "sum(CASE WHEN status = 'queued' AND attempts > 0 THEN 1 ELSE 0 END), "
                    "max(sent_at) FROM outbox GROUP BY channel, status").tuples():
                entry = stats.setdefault(channel, ChannelStats())
                if status in ("queued", "held", "sent", "dead"):
                    setattr(entry, status, int(count))
                entry.failed += int(failing or 0)
                if last_sent is not None:
                    entry.last_sent = float(last_sent)
            for channel, messages, members in conn.execute(
                    "SELECT channel, count(DISTINCT digest_id), count(*) FROM outbox "
                    "WHERE status = 'sent' AND digest_id IS NOT NULL GROUP BY channel"
                    ).tuples():
                entry = stats.setdefault(channel, ChannelStats())
                entry.digests, entry.in_digests = int(messages), int(members)
            for channel, release in conn.execute(
                    "SELECT channel, min(next_attempt) FROM outbox WHERE status = 'held' "
                    "GROUP BY channel").tuples():
                stats.setdefault(channel, ChannelStats()).next_release = float(release)
            for channel, retry_at in conn.execute(
                    "SELECT channel, min(next_attempt) FROM outbox WHERE status = 'queued' "
                    "AND attempts > 0 GROUP BY channel").tuples():
                stats.setdefault(channel, ChannelStats()).next_retry = float(retry_at)
            for channel, error in conn.execute(
                    "SELECT channel, last_error FROM outbox WHERE last_error IS NOT NULL "
                    "ORDER BY id DESC LIMIT 1000").tuples():
                entry = stats.setdefault(channel, ChannelStats())
                if entry.last_error is None:
                    entry.last_error = error
            for name, reason in conn.execute(
                    "SELECT name, disabled_reason FROM channel_state").tuples():
                stats.setdefault(name, ChannelStats()).disabled_reason = reason
        return stats

    def feed_health(self) -> list[FeedHealth]:
        with self.db.connect() as conn:
            health = {row.id: FeedHealth(
                url=row.url, last_polled=row.last_polled, last_status=row.last_status,
                last_failure=Failure.stored(row.last_error_kind, row.last_error),
                error_count=row.error_count, next_due=row.next_due,
                entries=row.entries_seen, polled_by=row.polled_by,
                claimed_by=row.lease_owner if (row.lease_until or 0) >= time.time() else None)
                for row in conn.execute(
                    "SELECT id, url, last_polled, last_status, last_error_kind, last_error, "
                    "error_count, next_due, entries_seen, polled_by, lease_owner, lease_until "
                    "FROM feeds")}
            for name, feed_id in conn.execute(
                    "SELECT name, feed_id FROM subscriptions").tuples():
                if feed_id in health:
                    health[feed_id].subscriptions.append(name)
            for subscription, feed_id in conn.execute(
                    "SELECT subscription, feed_id FROM thread_feeds").tuples():
                if feed_id in health:
                    health[feed_id].subscriptions.append(f"{subscription} (thread)")
        return sorted(health.values(), key=lambda h: h.url)

    def entry_kinds(self, urls: Sequence[str]) -> dict[str, dict[str, int]]:
        """Feed URL -> how many of its stored entries were read as posts and as comments
        (for `status`, on the few feeds whose subscriptions watch different kinds)."""
        kinds: dict[str, dict[str, int]] = {url: {} for url in urls}
        if not urls:
            return kinds
        with self.db.connect() as conn:
            for chunk in chunks(list(urls)):
                named, params = listed("u", chunk)
                for url, kind, count in conn.execute(
                        "SELECT f.url, e.kind, count(*) FROM entries e JOIN feeds f "
                        f"ON e.feed_id = f.id WHERE f.url IN {named} GROUP BY f.url, e.kind",
                        params).tuples():
                    kinds[url][kind] = int(count)
        return kinds


    # --- operations: health, metrics, the status page, the running daemon ---------------

    def ping(self) -> None:
        """Raise unless the database answers a query that reads it (the health check)."""
        with self.db.connect() as conn:
            conn.execute("SELECT value FROM meta LIMIT 1")

    def ops_snapshot(self) -> OpsSnapshot:
        """Per channel: rows waiting, dead, the oldest waiting; feeds and discoveries failing."""
        queues: dict[str, dict[str, Any]] = {}
        with self.db.connect() as conn:
            for channel, status, count, oldest in conn.execute(
                    "SELECT channel, status, count(*), min(created) FROM outbox "
                    "WHERE status IN ('queued', 'held', 'dead') GROUP BY channel, status"
                    ).tuples():
                entry = queues.setdefault(channel, {"waiting": 0, "dead": 0,
                                                    "oldest_waiting": None})
                if status == "dead":
                    entry["dead"] += int(count)
                else:
                    entry["waiting"] += int(count)
                    if entry["oldest_waiting"] is None or oldest < entry["oldest_waiting"]:
                        entry["oldest_waiting"] = float(oldest)
            feeds_failing = int(conn.execute(
                "SELECT count(*) FROM feeds WHERE last_error IS NOT NULL AND id IN "
                "(SELECT feed_id FROM subscriptions UNION SELECT feed_id FROM thread_feeds)"
                ).scalar() or 0)
            lost = tuple(conn.execute(
                "SELECT name FROM subscriptions WHERE feed_id IS NULL "
                "AND last_error IS NOT NULL").scalars())
        return OpsSnapshot({name: QueueGauge(**values) for name, values in queues.items()},
                           feeds_failing, lost)

    def recent_notifications(self, limit: int = 50) -> list[RecentNotification]:
        with self.db.connect() as conn:
            return [RecentNotification(
                channel=row.channel, subscription=row.subscription, status=row.status,
                created=row.created, sent_at=row.sent_at, attempts=row.attempts,
                last_error=row.last_error, kind=row.kind, title=row.title, author=row.author,
                link=row.link, post_title=row.post_title) for row in conn.execute(
                    "SELECT o.channel, o.subscription, o.status, o.created, o.sent_at, "
                    "o.attempts, o.last_error, e.kind, e.title, e.author, e.link, "
                    "e.post_title FROM outbox o JOIN entries e ON o.entry_id = e.id "
                    "ORDER BY o.id DESC LIMIT :limit", {"limit": limit})]

    def register_daemon(self, record: DaemonRecord) -> None:
        """Note the running daemon (one per state); `clear_daemon` forgets it at its stop.

        One upsert: nodes starting together on PostgreSQL each replace the note, where a
        delete and an insert let the second of two die of a duplicate key."""
        value = json.dumps({"pid": record.pid, "started": record.started,
                            "host": record.host, "config": record.config})
        with self.db.begin() as conn:
            conn.execute('INSERT INTO meta ("key", value) VALUES (:key, :value) '
                         'ON CONFLICT ("key") DO UPDATE SET value = excluded.value',
                         {"key": _DAEMON_KEY, "value": value})

    def daemon_record(self) -> DaemonRecord | None:
        with self.db.connect() as conn:
            value = conn.execute('SELECT value FROM meta WHERE "key" = :key',
                                 {"key": _DAEMON_KEY}).scalar()
        if not value:
            return None
        try:
            fields = json.loads(value)
            return DaemonRecord(host=str(fields["host"]), pid=int(fields["pid"]),
                                started=str(fields["started"]), config=str(fields["config"]))
        except (ValueError, TypeError, KeyError):
            return None

    def clear_daemon(self, pid: int) -> None:
        """Forget the daemon record if it is still this process's (a newer one may own it)."""
        with self.db.begin() as conn:
            value = conn.execute('SELECT value FROM meta WHERE "key" = :key',
                                 {"key": _DAEMON_KEY}).scalar()
            with contextlib.suppress(ValueError, TypeError):
                if value and json.loads(value).get("pid") == pid:
                    conn.execute('DELETE FROM meta WHERE "key" = :key', {"key": _DAEMON_KEY})


_DAEMON_KEY = "daemon"

_OUTBOX_SELECT = (
    "SELECT o.id, o.notification_id, o.subscription, o.channel, o.attempts, o.created, "
    "o.missing, o.revision, o.held_until, o.digest_id, "
    + ", ".join(f"e.{quoted(c)}" for c in _ENTRY_COLUMNS)
    + ", f.title AS feed_title, f.url AS feed_url FROM outbox o "
    "JOIN entries e ON o.entry_id = e.id JOIN feeds f ON e.feed_id = f.id")
"""Outbox rows with everything rendering needs: the entry and its feed."""

_OUTBOX_COLUMNS = ("notification_id", "subscription", "channel", "entry_id", "entry_key",
                   "revision", "missing", "status", "attempts", "next_attempt", "created",
                   "digest_id")
"""The columns a queued notification is inserted with, in `_queue_notices`' order."""

_INSERT_ENTRY = _insert("entries", (*_ENTRY_COLUMNS, "feed_id", "first_seen"),
                        " ON CONFLICT DO NOTHING")

_MARK_SENT = ("UPDATE outbox SET status = 'sent', sent_at = :now, attempts = attempts + 1, "
              "claimed_until = NULL, last_error = NULL WHERE id = :item")
_MARK_SENT_FENCED = _MARK_SENT + " AND claim_id = :claim"
"""`mark_sent`'s statements: without a claim, and only while the claim holds the row."""


def _id_list(ids: int | Sequence[int]) -> list[int]:
    return [ids] if isinstance(ids, int) else list(ids)


def new_notification_id() -> str:
    """Stable per notification: the email Message-ID, webhook-id and Matrix txn id."""
    return uuid.uuid4().hex


_STATE_COLUMNS = ("id", "url", "title", "api_root", "etag", "last_modified", "body_hash",
                  "interval", "next_due", "last_polled", "last_status", "last_error_kind",
                  "last_error", "error_count", "post_id", "rescan_due", "entries_seen",
                  "lease_token")
"""What a claim returns: only what a `FeedState` holds (not the lease columns it has just
set), in the order `_feed_states` reads it."""

_STATE_SELECT = ", ".join(_STATE_COLUMNS)


def _feed_states(result: Result) -> list[FeedState]:
    """A `FeedState` of every row of `result`, which holds at least `_STATE_COLUMNS`: when
    they are those columns in that order (a claim's), each state is built from positions
    as the rows come (a claim reads 2,000 at a time)."""
    keys = result.keys()
    rows: Iterable[Any] = result.tuples()
    if keys != _STATE_COLUMNS:
        pick = operator.itemgetter(*(keys.index(name) for name in _STATE_COLUMNS))
        rows = map(pick, rows)
    stored = Failure.stored
    return [FeedState(fid, url, title, api_root, etag, last_modified, body_hash, interval,
                      next_due, last_polled, last_status,
                      stored(error_kind, error) if error is not None else None,
                      error_count, post_id, rescan_due, entries_seen, lease_token)
            for (fid, url, title, api_root, etag, last_modified, body_hash, interval,
                 next_due, last_polled, last_status, error_kind, error, error_count,
                 post_id, rescan_due, entries_seen, lease_token) in rows]
