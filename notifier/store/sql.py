"""The Store: every query notifier makes, over the schema in `schema`.

SQLAlchemy Core keeps one code path for the embedded SQLite file and for PostgreSQL. The
store is synchronous and is driven from a single worker thread (see `pipeline`), which keeps
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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from notifier import __version__, redact
from notifier.failures import Failure
from notifier.models import Entry
from notifier.store.leases import LeaseStore, lock_for_writing, new_claim_id
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
from notifier.store.schema import (
    _MIGRATIONS,
    SCHEMA_VERSION,
    channel_state,
    discovery_claims,
    entries,
    feeds,
    meta_table,
    metadata,
    outbox,
    sites,
    subscriptions,
    thread_feeds,
)
from notifier.store.statefile import folder_problem, sqlite_path

MIGRATION_LOCK = 0x6E6F7469666965  # "notifie": the advisory lock key of migrations
_CHUNK = 500  # bound on parameters per statement (SQLite allows 32766; stay far below)

def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _dt(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


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


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _feed_row_only(record: PollRecord) -> bool:
    """A poll whose only write is plain values on its feed's row."""
    return (record.failure is None and not record.new_url and not record.new_entries
            and not record.changed_entries and not record.threads
            and not record.settle_thread and not record.baselines and not record.notices)


_BOUND = {name: f"v_{name}" for name in (
    "last_polled", "next_due", "last_status", "last_error", "last_error_kind", "error_count",
    "etag", "last_modified", "body_hash", "title", "post_id", "rescan_due", "polled_by",
    "polled_token", "lease_until")}
"""Each value `_write_polls` binds by name: a feed's column and its parameter."""


_PLAIN_NULLS = frozenset({"last_error", "last_error_kind", "lease_until"})
"""What a plain poll (no failure) always sets to NULL: written so in the statement, not
bound (SQLite's driver asks each None bound how to adapt it, three times a row)."""


@functools.lru_cache(maxsize=64)
def _plain_update(keys: tuple[str, ...]) -> Any:
    """The executemany UPDATE of feed rows setting `keys` (a shape of `_feed_values` of a
    poll without failure), built once per shape, not for every batch of every cycle."""
    return feeds.update().where(feeds.c.id == sa.bindparam("v_id")).values(
        {k: (feeds.c.entries_seen + sa.bindparam("v_entries_seen") if k == "entries_seen"
             else sa.null() if k in _PLAIN_NULLS else sa.bindparam(_BOUND[k]))
         for k in keys})


@functools.lru_cache(maxsize=64)
def _driver_sql(statement: Any, dialect: Any) -> tuple[str, tuple[str, ...]] | None:
    """`statement` compiled once for `dialect` as the driver's SQL and the names of its
    parameters in order, or None where the driver does not take them by position."""
    compiled = statement.compile(dialect=dialect)
    if not compiled.positional or compiled.positiontup is None:
        return None
    return compiled.string, tuple(compiled.positiontup)


def _execute_many(conn: Connection, statement: Any, rows: list[dict[str, Any]],
                  prefix: str = "") -> None:
    """`conn.execute(statement, rows)`; on SQLite straight to the driver's executemany,
    each row a tuple. SQLAlchemy builds each row's parameters anew (`construct_params`),
    which cost three times SQLite's own work for the 10,000 plain feed rows of an unchanged
    cycle. The rows hold only numbers, text and None, which need no conversion.

    With `prefix`, each parameter's name is the row's key after it (`v_etag` is a row's
    `etag`): the rows need not be copied under the statement's names."""
    compiled = _driver_sql(statement, conn.dialect) if conn.dialect.name == "sqlite" else None
    if compiled is None or len(rows) < 2:
        conn.execute(statement, [{prefix + k: v for k, v in row.items()} for row in rows]
                     if prefix else rows)
        return
    sql, names = compiled
    keys = [name.removeprefix(prefix) for name in names]
    conn.exec_driver_sql(sql, [tuple([row[key] for key in keys]) for row in rows])


def _end_discovery_claim(conn: Connection, name: str) -> None:
    """A discovery recorded, found or failed: its claim (`Store.claim_discoveries`) ends."""
    conn.execute(discovery_claims.delete().where(discovery_claims.c.subscription == name))


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
        try:
            self.engine: Engine = _make_engine(url, node, lease)
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError,
                ValueError) as exc:  # ValueError: a port that is not a number
            raise StoreError(f"cannot use state {redact.url(url)}: {exc}") from exc
        self._insert = (_sqlite_insert if self.engine.dialect.name == "sqlite"
                        else _pg_insert)

    def close(self) -> None:
        self.engine.dispose()

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
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                                 {"key": MIGRATION_LOCK})
                else:  # SQLite: take the write lock before reading the version
                    lock_for_writing(conn)
                metadata.create_all(conn, tables=[meta_table])
                row = conn.execute(sa.select(meta_table.c.value).where(
                    meta_table.c.key == "schema_version")).first()
                version = int(row.value) if row else 0
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
                    conn.execute(meta_table.delete().where(
                        meta_table.c.key == "schema_version"))
                    conn.execute(meta_table.insert().values(
                        key="schema_version", value=str(SCHEMA_VERSION)))
        except sa.exc.DatabaseError as exc:
            # A truncated or overwritten SQLite file lands here too ("file is not a
            # database", "database disk image is malformed"): say what to do, touch nothing.
            path = sqlite_path(self.url)
            problem = folder_problem(path) if path is not None else None
            if problem is not None:  # no state there to restore: the folder is missing
                raise StoreError(problem) from exc
            hint = ("; restore it from a backup (see `notifier backup`), or move it away to "
                    "start an empty state: notifier never overwrites it"
                    if self.engine.dialect.name == "sqlite" else "")
            raise StoreError(f"cannot open state {redact.url(self.url)}: {exc.orig}{hint}"
                             ) from exc

    # --- subscriptions and feeds --------------------------------------------------------

    def subscription_states(self) -> dict[str, SubscriptionState]:
        query = sa.select(subscriptions, feeds.c.url).select_from(
            subscriptions.outerjoin(feeds, subscriptions.c.feed_id == feeds.c.id))
        with self.engine.connect() as conn:
            return {
                row.name: SubscriptionState(
                    name=row.name, source_url=row.source_url, watch=row.watch,
                    feed_id=row.feed_id, feed_url=row.url, discovered_at=row.discovered_at,
                    baseline_at=row.baseline_at,
                    last_failure=Failure.stored(row.last_error_kind, row.last_error),
                    discovery_errors=row.discovery_errors or 0,
                    discovery_due=row.discovery_due)
                for row in conn.execute(query)
            }

    def feed_urls(self) -> dict[int, tuple[str, str | None]]:
        """Feed id -> (URL, its site's API root) for every feed: which hosts each is asked
        on, to share a run's feeds between processes (`notifier.poll.shards`)."""
        with self.engine.connect() as conn:
            return {int(i): (url, root) for i, url, root
                    in conn.execute(sa.select(feeds.c.id, feeds.c.url, feeds.c.api_root))}

    def polled_since(self, node: str, since: float) -> set[int]:
        """The feeds whose last poll `node` wrote at `since` or later: those a split run's
        second process finished before it died (`notifier.poll.shards`)."""
        with self.engine.connect() as conn:
            return {int(i) for i in conn.execute(sa.select(feeds.c.id).where(
                feeds.c.polled_by == node, feeds.c.last_polled >= since)).scalars()}

    def feed_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(feeds)).scalar_one())

    def baselined(self) -> dict[str, str | None]:
        """Subscription name -> its feed's URL, for every subscription with a baseline: what
        `run --once` compares before and after a pass, without building every state."""
        query = (sa.select(subscriptions.c.name, feeds.c.url)
                 .select_from(subscriptions.outerjoin(
                     feeds, subscriptions.c.feed_id == feeds.c.id))
                 .where(subscriptions.c.baseline_at.is_not(None)))
        with self.engine.connect() as conn:
            return {name: url for name, url in conn.execute(query)}

    def claim_discoveries(self, names: Sequence[str], node: str, now: float,
                          until: float) -> set[str]:
        """The subscriptions among `names` whose feed this node is to discover now: those no
        other node is discovering. Each is claimed until `until` (its discovery's time
        limit): nodes starting together with the same subscriptions, which would each
        have asked every site for every page, ask it once between them; a claim whose node
        died passes on when it runs out. `save_discovery` and `record_discovery_error`
        end the claim; a node's own claim it may take again. A SQLite state has one
        process (`statefile.hold_state`): there every discovery is its own."""
        if self.engine.dialect.name == "sqlite":
            return set(names)
        won: set[str] = set()
        with self.engine.begin() as conn:
            for start in range(0, len(names), _CHUNK):
                statement = self._insert(discovery_claims).values(
                    [{"subscription": name, "node": node, "until": until}
                     for name in names[start:start + _CHUNK]])
                statement = statement.on_conflict_do_update(
                    index_elements=[discovery_claims.c.subscription],
                    set_={"node": statement.excluded.node, "until": statement.excluded.until},
                    where=sa.or_(discovery_claims.c.until <= now,
                                 discovery_claims.c.node == node))
                won.update(conn.execute(
                    statement.returning(discovery_claims.c.subscription)).scalars())
        return won

    def release_discoveries(self, names: Sequence[str], node: str) -> None:
        """Give up this node's claims on these discoveries (cancelled: the node stops), so
        that another node takes them up at once rather than when they run out."""
        with self.engine.begin() as conn:
            for start in range(0, len(names), _CHUNK):
                conn.execute(discovery_claims.delete().where(
                    discovery_claims.c.node == node,
                    discovery_claims.c.subscription.in_(names[start:start + _CHUNK])))

    def save_discovery(self, name: str, source_url: str, watch: str, feed_url: str,
                       api_root: str | None, interval: float, now: float) -> int:
        """Point a subscription at its feed, creating the feed; a new feed means a new baseline."""
        with self.engine.begin() as conn:
            _end_discovery_claim(conn, name)
            feed_id = self._feed_id(conn, feed_url, interval, now)
            if api_root:
                conn.execute(feeds.update().where(feeds.c.id == feed_id)
                             .values(api_root=api_root))
            old = conn.execute(sa.select(subscriptions.c.feed_id, subscriptions.c.baseline_at)
                               .where(subscriptions.c.name == name)).first()
            values = {"source_url": source_url, "watch": watch, "feed_id": feed_id,
                      "discovered_at": now, "last_error": None, "last_error_kind": None,
                      "discovery_errors": 0, "discovery_due": None}
            if old is None:
                conn.execute(subscriptions.insert().values(name=name, baseline_at=None,
                                                           **values))
            else:
                if old.feed_id != feed_id:
                    values["baseline_at"] = None
                conn.execute(subscriptions.update().where(subscriptions.c.name == name)
                             .values(**values))
            return feed_id

    def record_discovery_error(self, name: str, source_url: str, watch: str, failure: Failure,
                               now: float, next_due: float | None = None) -> None:
        """Remember a failed discovery, its kind, and when to try again (`next_due`)."""
        error = {"last_error": failure.message, "last_error_kind": failure.kind.value}
        with self.engine.begin() as conn:
            _end_discovery_claim(conn, name)
            updated = conn.execute(subscriptions.update().where(subscriptions.c.name == name)
                                   .values(source_url=source_url, watch=watch,
                                           discovered_at=None,
                                           discovery_errors=subscriptions.c.discovery_errors + 1,
                                           discovery_due=next_due, **error)).rowcount
            if not updated:
                conn.execute(subscriptions.insert().values(
                    name=name, source_url=source_url, watch=watch, feed_id=None,
                    discovered_at=None, baseline_at=None,
                    discovery_errors=1, discovery_due=next_due, **error))

    def _feed_id(self, conn: Connection, url: str, interval: float, now: float) -> int:
        existing = conn.execute(sa.select(feeds.c.id).where(feeds.c.url == url)).scalar()
        if existing is not None:
            return int(existing)
        result = conn.execute(feeds.insert().values(
            url=url, interval=interval, next_due=now, created=now).returning(feeds.c.id))
        return int(result.scalar_one())

    def set_feed_intervals(self, intervals: Mapping[int, float]) -> None:
        """Apply configured intervals; a shorter interval makes the feed due sooner.

        Only feeds whose interval changed are written: this runs whenever the set of feeds
        is recomputed, which `watch: threads` makes frequent.
        """
        with self.engine.begin() as conn:
            current: dict[int, float] = {}
            for chunk in _chunks(sorted(intervals)):
                current.update({row.id: row.interval for row in conn.execute(
                    sa.select(feeds.c.id, feeds.c.interval).where(feeds.c.id.in_(chunk)))})
            for feed_id, interval in intervals.items():
                if current.get(feed_id) == interval:
                    continue
                conn.execute(feeds.update().where(feeds.c.id == feed_id).values(
                    interval=interval,
                    next_due=sa.case(
                        (feeds.c.next_due > sa.func.coalesce(feeds.c.last_polled, 0) + interval,
                         sa.func.coalesce(feeds.c.last_polled, 0) + interval),
                        else_=feeds.c.next_due)))

    def feeds_by_id(self, ids: Iterable[int]) -> dict[int, FeedState]:
        wanted = sorted(set(ids))
        out: dict[int, FeedState] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(wanted):
                for row in conn.execute(sa.select(feeds).where(feeds.c.id.in_(chunk))):
                    out[row.id] = _feed_state(row)
        return out

    def seen_entries(self, wanted: Mapping[int, Sequence[str]]) -> dict[int, dict[str, str]]:
        """For each feed, which of these keys it has stored, with their content hashes."""
        out: dict[int, dict[str, str]] = {feed_id: {} for feed_id in wanted}
        pairs = {(feed_id, key) for feed_id, keys in wanted.items() for key in keys}
        feed_ids = sorted(wanted)
        keys = sorted({key for _, key in pairs})
        # One query per chunk of keys for the whole batch, not one per feed.
        with self.engine.connect() as conn:
            for feed_chunk in _chunks(feed_ids):
                for key_chunk in _chunks(keys):
                    query = sa.select(entries.c.feed_id, entries.c.key, entries.c.content_hash
                                      ).where(entries.c.feed_id.in_(feed_chunk),
                                              entries.c.key.in_(key_chunk))
                    for row in conn.execute(query):
                        if (row.feed_id, row.key) in pairs:
                            out[row.feed_id][row.key] = row.content_hash
        return out

    def entry_revisions(self, feed_id: int, keys: Iterable[str]) -> dict[str, int]:
        """How many edits of each stored entry were seen: the next edit is reported as +1."""
        out: dict[str, int] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted(set(keys))):
                query = sa.select(entries.c.key, entries.c.revision).where(
                    entries.c.feed_id == feed_id, entries.c.key.in_(chunk))
                out.update({row.key: int(row.revision) for row in conn.execute(query)})
        return out

    def newest_entry_time(self, feed_id: int) -> float | None:
        """When the newest stored entry of a feed was published: a gap lies after it."""
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(sa.func.max(entries.c.published))
                                 .where(entries.c.feed_id == feed_id)).scalar()
        return float(value) if value is not None else None

    def comment_keys(self, feed_id: int, limit: int = 1) -> list[str]:
        """A few stored comment keys of a feed: a REST rescan keys its results like them."""
        with self.engine.connect() as conn:
            return list(conn.execute(
                sa.select(entries.c.key).where(entries.c.feed_id == feed_id,
                                               entries.c.kind == "comment")
                .order_by(entries.c.id.desc()).limit(limit)).scalars())

    def newest_entries(self, feed_id: int, limit: int = 1) -> list[Entry]:
        """A feed's newest stored entries, by publication time then arrival: `preview`."""
        query = sa.select(entries).where(entries.c.feed_id == feed_id).order_by(
            entries.c.published.is_(None), entries.c.published.desc(), entries.c.id.desc()
        ).limit(limit)
        with self.engine.connect() as conn:
            return [_row_entry(row) for row in conn.execute(query)]

    def has_entries(self, feed_ids: Iterable[int]) -> set[int]:
        wanted = sorted(set(feed_ids))
        found: set[int] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(wanted):
                query = sa.select(entries.c.feed_id).where(
                    entries.c.feed_id.in_(chunk)).group_by(entries.c.feed_id)
                found.update(int(v) for v in conn.execute(query).scalars())
        return found

    def entries_by_key(self, keys: Iterable[str]) -> dict[str, Entry]:
        """Stored entries by key, from any feed: how a reply finds the comment it answers."""
        wanted = sorted(set(k for k in keys if k))
        out: dict[str, Entry] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(wanted):
                for row in conn.execute(sa.select(entries).where(entries.c.key.in_(chunk))):
                    out.setdefault(row.key, _row_entry(row))
        return out

    def record_polls(self, records: Sequence[PollRecord]) -> int:
        """Write a batch of polls in one transaction; return how many notices were queued.

        Most polls of a cycle change nothing but the feed's own row (a 304, or a body with
        nothing new): those rows are written with one executemany per shape of update, not
        one statement each, which is most of the cost of an unchanged cycle."""
        with self.engine.begin() as conn:
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
                added = len(record.new_entries)
                shape = (*values, "entries_seen") if added else tuple(values)
                # Bound by name as `_plain_update` names them ("v_" and the key); what it
                # writes as NULL is not bound
                for key in _PLAIN_NULLS:
                    values.pop(key, None)
                values["id"] = record.feed_id
                if added:
                    values["entries_seen"] = added
                plain.setdefault(shape, []).append(values)
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
            _execute_many(conn, _plain_update(keys), rows, "v_")
        if news:
            conn.execute(self._insert(entries).on_conflict_do_nothing(), news)
        return self._queue_notices(conn, queued) if queued else 0

    def _write_feed_row(self, conn: Connection, record: PollRecord,
                        stamp: Mapping[str, Any] | None = None) -> None:
        """A failed poll's row (its error count goes up), or one whose feed moved."""
        values: dict[str, Any] = _feed_values(record)
        if stamp is not None:
            values.update(stamp)
        if record.failure is not None:
            values["error_count"] = feeds.c.error_count + 1
        if record.new_url:
            taken = conn.execute(sa.select(feeds.c.id).where(feeds.c.url == record.new_url)
                                 ).scalar()
            if taken is None:
                values["url"] = record.new_url
        if record.new_entries:
            values["entries_seen"] = feeds.c.entries_seen + len(record.new_entries)
        conn.execute(feeds.update().where(feeds.c.id == record.feed_id).values(**values))

    def _record_poll(self, conn: Connection, record: PollRecord) -> None:
        """What a poll changes besides its feed's row, its new entries and notifications."""
        for entry in record.changed_entries:
            conn.execute(entries.update().where(
                entries.c.feed_id == record.feed_id, entries.c.key == entry.key,
            ).values(revision=entries.c.revision + 1,
                     **{k: v for k, v in _entry_row(entry).items() if k != "key"}))
        for update in record.threads:
            self._update_threads(conn, update, record.polled_at)
        if record.settle_thread:
            conn.execute(thread_feeds.update().where(thread_feeds.c.feed_id == record.feed_id)
                         .values(quiet=False))
        if record.baselines:
            conn.execute(subscriptions.update().where(
                subscriptions.c.name.in_(list(record.baselines)),
                subscriptions.c.baseline_at.is_(None),
            ).values(baseline_at=record.polled_at))

    def _queue_notices(self, conn: Connection, records: Sequence[PollRecord]) -> int:
        """Queue the records' notifications, in order; how many were new."""
        wanted = sorted({(r.feed_id, n.entry_key) for r in records for n in r.notices})
        ids: dict[tuple[int, str], int] = {}
        for chunk in _chunks(wanted):
            found = conn.execute(sa.select(entries.c.feed_id, entries.c.key, entries.c.id).where(
                entries.c.feed_id.in_(sorted({f for f, _ in chunk})),
                entries.c.key.in_(sorted({k for _, k in chunk}))))
            ids.update({(row.feed_id, row.key): row.id for row in found})
        rows = [{
            "notification_id": new_notification_id(), "subscription": n.subscription,
            "channel": n.channel, "entry_id": ids[(r.feed_id, n.entry_key)],
            "entry_key": n.entry_key, "revision": n.revision, "missing": n.missing,
            "status": "queued", "attempts": 0, "next_attempt": r.polled_at,
            "created": r.polled_at, "digest_id": n.digest_id,
        } for r in records for n in r.notices if (r.feed_id, n.entry_key) in ids]
        if not rows:
            return 0
        # RETURNING counts what was really inserted; rowcount is unreliable for batches.
        inserted = conn.execute(
            self._insert(outbox).on_conflict_do_nothing().returning(outbox.c.id), rows)
        return len(inserted.all())

    def _feed_states_of(self, result: Any) -> list[FeedState]:
        return _feed_states(result)

    def _state_columns(self) -> tuple[Any, ...]:
        return _STATE_RETURNING

    def _update_threads(self, conn: Connection, update: ThreadUpdate, now: float) -> None:
        site = conn.execute(
            sa.select(feeds.c.interval, feeds.c.api_root)
            .join(subscriptions, subscriptions.c.feed_id == feeds.c.id)
            .where(subscriptions.c.name == update.subscription)).first()
        interval = float(site.interval) if site is not None else 600.0
        api_root = site.api_root if site is not None else None
        following = set(conn.execute(sa.select(thread_feeds.c.feed_id).where(
            thread_feeds.c.subscription == update.subscription)).scalars())
        for link in update.links:
            feed_id = self._feed_id(conn, link.url, interval, now)
            if api_root:  # the same site: its REST API backfills each thread
                conn.execute(feeds.update().where(feeds.c.id == feed_id,
                                                  feeds.c.api_root.is_(None))
                             .values(api_root=api_root))
            if feed_id not in following:
                following.add(feed_id)
                conn.execute(thread_feeds.insert().values(
                    subscription=update.subscription, feed_id=feed_id, post_key=link.post_key,
                    post_published=link.published, quiet=update.quiet))
        conn.execute(thread_feeds.delete().where(
            thread_feeds.c.subscription == update.subscription,
            thread_feeds.c.post_published < update.retire_before))

    # --- site probes ------------------------------------------------------------------

    def site_probes(self, api_roots: Iterable[str]) -> dict[str, SiteState]:
        """The last probe of each of these sites that has one."""
        found: dict[str, SiteState] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted(set(api_roots))):
                for row in conn.execute(sa.select(sites).where(sites.c.api_root.in_(chunk))):
                    found[row.api_root] = SiteState(row.api_root, row.comment_total,
                                                    row.newest_id, row.next_probe,
                                                    _site_texts(row.texts))
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
        with self.engine.begin() as conn:
            self._save_site_probes(conn, probes, now)
            self._rescan_threads(conn, rescans, now)
            self._reread_threads(conn, rereads)

    def _save_site_probes(self, conn: sa.Connection, probes: Sequence[SiteState],
                          now: float) -> None:
        if not probes:
            return
        rows = [{"api_root": p.api_root, "comment_total": p.comment_total,
                 "newest_id": p.newest_id, "probed_at": now, "next_probe": p.next_probe,
                 "texts": json.dumps({str(k): v for k, v in p.texts.items()})
                 if p.texts else None}
                for p in probes]
        statement = self._insert(sites)
        conn.execute(statement.on_conflict_do_update(
            index_elements=[sites.c.api_root],
            set_={name: statement.excluded[name] for name in
                  ("comment_total", "newest_id", "probed_at", "next_probe", "texts")}),
            rows)

    def rescan_threads(self, sites: Mapping[str, frozenset[str] | None], now: float) -> None:
        """Make threads of these sites rescan at their next poll, whoever polls it (a later
        claim batch, tick or node): of a site mapped to None every one, else those of the
        posts named and its site-wide feeds. Only feeds already listed once (`rescan_due`
        set) and not due anyway are touched; a rescan's poll sets the next one."""
        with self.engine.begin() as conn:
            self._rescan_threads(conn, sites, now)

    @staticmethod
    def _rescan_threads(conn: sa.Connection, sites: Mapping[str, frozenset[str] | None],
                        now: float) -> None:
        for api_root, posts in sites.items():
            where = [feeds.c.api_root == api_root, feeds.c.rescan_due > now]
            if posts is not None:
                where.append(sa.or_(feeds.c.post_id.is_(None),
                                    feeds.c.post_id.in_(sorted(posts))))
            conn.execute(feeds.update().where(*where).values(rescan_due=now))

    def reread_threads(self, sites: Mapping[str, frozenset[str]]) -> None:
        """Make threads of these sites' posts (and the sites' site-wide comment feeds) ask
        without validators at their next poll, whoever polls it: their stored validators
        are forgotten, and that poll stores the ones it is answered with. Only comment
        feeds, which are those already listed once (`rescan_due` set, as `rescan_threads`
        reads it): a site's posts feed keeps its validators."""
        with self.engine.begin() as conn:
            self._reread_threads(conn, sites)

    @staticmethod
    def _reread_threads(conn: sa.Connection, sites: Mapping[str, frozenset[str]]) -> None:
        for api_root, posts in sites.items():
            conn.execute(feeds.update().where(
                feeds.c.api_root == api_root, feeds.c.rescan_due.is_not(None),
                sa.or_(feeds.c.post_id.is_(None), feeds.c.post_id.in_(sorted(posts))),
                sa.or_(feeds.c.etag.is_not(None), feeds.c.last_modified.is_not(None)),
            ).values(etag=None, last_modified=None))

    def thread_feeds(self) -> dict[int, dict[str, bool]]:
        """Feed id -> {subscription: quiet} for every thread feed a subscription follows."""
        out: dict[int, dict[str, bool]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(sa.select(thread_feeds)):
                out.setdefault(int(row.feed_id), {})[row.subscription] = bool(row.quiet)
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
        query = (
            _outbox_select()
            .where(outbox.c.status.in_(_WAITING), outbox.c.next_attempt <= now,
                   sa.or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until < now))
            .order_by(outbox.c.next_attempt, entries.c.published, outbox.c.id)
            .limit(limit)
        )
        if channels is not None:
            query = query.where(outbox.c.channel.in_(list(channels)))
        return self._claim(query, now, lease, node, new_claim_id())

    def claim_digest_members(self, digest_ids: Iterable[str], now: float,
                             lease: float = 300.0, node: str | None = None,
                             claim: str | None = None) -> list[OutboxItem]:
        """The unsent, unclaimed rest of these digests: a digest is always sent whole.

        Taken under `claim` (that of the rows that started the digests) when given."""
        wanted = sorted(set(digest_ids))
        items: list[OutboxItem] = []
        for chunk in _chunks(wanted):
            query = (_outbox_select()
                     .where(outbox.c.digest_id.in_(chunk), outbox.c.status.in_(_WAITING),
                            sa.or_(outbox.c.claimed_until.is_(None),
                                   outbox.c.claimed_until < now))
                     .order_by(entries.c.published, outbox.c.id))
            items += self._claim(query, now, lease, node, claim or new_claim_id())
        return items

    def _claim(self, query: Any, now: float, lease: float, node: str | None,
               claim: str) -> list[OutboxItem]:
        # SKIP LOCKED: two nodes claiming at once take different rows, neither waits.
        query = query.with_for_update(skip_locked=True, of=outbox)
        with self.engine.begin() as conn:
            lock_for_writing(conn)
            rows = conn.execute(query).all()
            ids = [row.id for row in rows]
            for chunk in _chunks(ids):
                conn.execute(outbox.update().where(outbox.c.id.in_(chunk))
                             .values(claimed_until=now + lease, claim_owner=node,
                                     claim_id=claim))
        return [OutboxItem(
            id=row.id, notification_id=row.notification_id, subscription=row.subscription,
            channel=row.channel, attempts=row.attempts, created=row.created,
            missing=row.missing, entry=_row_entry(row), feed_title=row.feed_title,
            feed_url=row.feed_url, revision=row.revision, held_until=row.held_until,
            digest_id=row.digest_id, claim_id=claim) for row in rows]

    def hold(self, until: Mapping[int, float], claim: str | None = None) -> None:
        """Keep claimed rows back until their release time (a digest, quiet hours)."""
        by_time: dict[float, list[int]] = {}
        for item_id, when in until.items():
            by_time.setdefault(when, []).append(item_id)
        with self.engine.begin() as conn:
            for when, ids in by_time.items():
                for chunk in _chunks(ids):
                    conn.execute(outbox.update().where(outbox.c.id.in_(chunk),
                                                       *_fence(claim)).values(
                        status="held", next_attempt=when, held_until=when,
                        claimed_until=None))

    def assign_digest(self, digest_id: str, item_ids: Sequence[int],
                      claim: str | None = None) -> None:
        """Make rows members of one digest message, before it is sent (see the table)."""
        with self.engine.begin() as conn:
            for chunk in _chunks(list(item_ids)):
                conn.execute(outbox.update().where(outbox.c.id.in_(chunk), *_fence(claim))
                             .values(digest_id=digest_id, status="queued"))

    def release_claims(self) -> None:
        """Forget claims left by a process that died; only safe when no other node runs."""
        with self.engine.begin() as conn:
            conn.execute(outbox.update().where(outbox.c.claimed_until.is_not(None))
                         .values(claimed_until=None))

    def mark_sent(self, item_ids: int | Sequence[int], now: float,
                  claim: str | None = None) -> None:
        """Record acceptance; several ids (a digest's members) in one transaction.

        Once per message sent, each in its own transaction before the next is offered (a
        crash repeats at most the one in flight), so the statement is built once: building
        and compiling an UPDATE per call cost three times what executing it does."""
        rows: list[dict[str, Any]] = [{"item": item, "now": now} for item in _id_list(item_ids)]
        if claim is not None:
            for row in rows:
                row["claim"] = claim
        with self.engine.begin() as conn:
            conn.execute(_MARK_SENT if claim is None else _MARK_SENT_FENCED, rows)

    def mark_failed(self, item_ids: int | Sequence[int], error: str,
                    next_attempt: float | None, now: float, claim: str | None = None) -> None:
        """Record a failed attempt; `next_attempt` None means dead-lettered."""
        values: dict[str, Any] = {"attempts": outbox.c.attempts + 1, "last_error": error,
                                  "claimed_until": None}
        if next_attempt is None:
            values["status"] = "dead"
        else:
            values["next_attempt"] = next_attempt
        with self.engine.begin() as conn:
            for chunk in _chunks(_id_list(item_ids)):
                conn.execute(outbox.update().where(outbox.c.id.in_(chunk), *_fence(claim))
                             .values(**values))

    def release(self, item_ids: Sequence[int], claim: str | None = None) -> None:
        """Give back claimed rows that were not attempted (shutdown, disabled channel)."""
        with self.engine.begin() as conn:
            for chunk in _chunks(list(item_ids)):
                conn.execute(outbox.update().where(outbox.c.id.in_(chunk), *_fence(claim))
                             .values(claimed_until=None))

    def requeue_dead(self, now: float, channel: str | None = None) -> int:
        query = outbox.update().where(outbox.c.status == "dead")
        if channel is not None:
            query = query.where(outbox.c.channel == channel)
        with self.engine.begin() as conn:
            result = conn.execute(query.values(status="queued", next_attempt=now, attempts=0,
                                               created=now, claimed_until=None))
            return int(result.rowcount or 0)

    def retry_now(self, now: float, channel: str | None = None) -> tuple[int, int]:
        """Make failing rows due now and queue dead letters again: `retry --now`.

        Returns (failing made due, dead requeued). A running daemon sees the rows at its
        next delivery tick, since it reads due rows from here each time.
        """
        failing = outbox.update().where(outbox.c.status == "queued", outbox.c.attempts > 0,
                                        outbox.c.next_attempt > now)
        if channel is not None:
            failing = failing.where(outbox.c.channel == channel)
        with self.engine.begin() as conn:
            due = int(conn.execute(failing.values(next_attempt=now)).rowcount or 0)
        return due, self.requeue_dead(now, channel)

    def disable_channel(self, name: str, reason: str, now: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(self._insert(channel_state).on_conflict_do_nothing(), [{"name": name}])
            conn.execute(channel_state.update().where(channel_state.c.name == name)
                         .values(disabled_reason=reason, disabled_at=now))

    def enable_channel(self, name: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(channel_state.update().where(channel_state.c.name == name)
                         .values(disabled_reason=None, disabled_at=None, paused_until=None))

    def disabled_channels(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            return {row.name: row.disabled_reason or "" for row in
                    conn.execute(sa.select(channel_state)
                                 .where(channel_state.c.disabled_reason.is_not(None)))}

    def pending_count(self, now: float) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(outbox).where(
                outbox.c.status.in_(_WAITING), outbox.c.next_attempt <= now)).scalar() or 0)

    # --- status --------------------------------------------------------------------------

    def channel_stats(self) -> dict[str, ChannelStats]:
        stats: dict[str, ChannelStats] = {}
        failed = sa.case((sa.and_(outbox.c.status == "queued", outbox.c.attempts > 0), 1),
                         else_=0)
        query = sa.select(outbox.c.channel, outbox.c.status, sa.func.count(),
                          sa.func.sum(failed), sa.func.max(outbox.c.sent_at)).group_by(
            outbox.c.channel, outbox.c.status)
        with self.engine.connect() as conn:
            for channel, status, count, failing, last_sent in conn.execute(query):
                entry = stats.setdefault(channel, ChannelStats())
                if status in ("queued", "held", "sent", "dead"):
                    setattr(entry, status, int(count))
                entry.failed += int(failing or 0)
                if last_sent is not None:
                    entry.last_sent = float(last_sent)
            digests = sa.select(
                outbox.c.channel, sa.func.count(sa.distinct(outbox.c.digest_id)),
                sa.func.count()).where(outbox.c.status == "sent",
                                       outbox.c.digest_id.is_not(None)
                                       ).group_by(outbox.c.channel)
            for channel, messages, members in conn.execute(digests):
                entry = stats.setdefault(channel, ChannelStats())
                entry.digests, entry.in_digests = int(messages), int(members)
            releases = sa.select(outbox.c.channel, sa.func.min(outbox.c.next_attempt)).where(
                outbox.c.status == "held").group_by(outbox.c.channel)
            for channel, release in conn.execute(releases):
                stats.setdefault(channel, ChannelStats()).next_release = float(release)
            retries = sa.select(outbox.c.channel, sa.func.min(outbox.c.next_attempt)).where(
                outbox.c.status == "queued", outbox.c.attempts > 0).group_by(outbox.c.channel)
            for channel, retry_at in conn.execute(retries):
                stats.setdefault(channel, ChannelStats()).next_retry = float(retry_at)
            errors = sa.select(outbox.c.channel, outbox.c.last_error).where(
                outbox.c.last_error.is_not(None)).order_by(outbox.c.id.desc()).limit(1000)
            for channel, error in conn.execute(errors):
                entry = stats.setdefault(channel, ChannelStats())
                if entry.last_error is None:
                    entry.last_error = error
            for row in conn.execute(sa.select(channel_state)):
                stats.setdefault(row.name, ChannelStats()).disabled_reason = row.disabled_reason
        return stats

    def feed_health(self) -> list[FeedHealth]:
        with self.engine.connect() as conn:
            health = {row.id: FeedHealth(
                url=row.url, last_polled=row.last_polled, last_status=row.last_status,
                last_failure=Failure.stored(row.last_error_kind, row.last_error),
                error_count=row.error_count, next_due=row.next_due,
                entries=row.entries_seen, polled_by=row.polled_by,
                claimed_by=row.lease_owner if (row.lease_until or 0) >= time.time() else None)
                for row in conn.execute(sa.select(feeds))}
            for row in conn.execute(sa.select(subscriptions.c.name, subscriptions.c.feed_id)):
                if row.feed_id in health:
                    health[row.feed_id].subscriptions.append(row.name)
            for row in conn.execute(sa.select(thread_feeds.c.subscription,
                                              thread_feeds.c.feed_id)):
                if row.feed_id in health:
                    health[row.feed_id].subscriptions.append(f"{row.subscription} (thread)")
        return sorted(health.values(), key=lambda h: h.url)

    def entry_kinds(self, urls: Sequence[str]) -> dict[str, dict[str, int]]:
        """Feed URL -> how many of its stored entries were read as posts and as comments
        (for `status`, on the few feeds whose subscriptions watch different kinds)."""
        kinds: dict[str, dict[str, int]] = {url: {} for url in urls}
        if not urls:
            return kinds
        query = (sa.select(feeds.c.url, entries.c.kind, sa.func.count())
                 .select_from(entries.join(feeds, entries.c.feed_id == feeds.c.id))
                 .where(feeds.c.url.in_(list(urls))).group_by(feeds.c.url, entries.c.kind))
        with self.engine.connect() as conn:
            for url, kind, count in conn.execute(query):
                kinds[url][kind] = int(count)
        return kinds


    # --- operations: health, metrics, the status page, the running daemon ---------------

    def ping(self) -> None:
        """Raise unless the database answers a query that reads it (the health check)."""
        with self.engine.connect() as conn:
            conn.execute(sa.select(meta_table.c.value).limit(1)).all()

    def ops_snapshot(self) -> OpsSnapshot:
        """Per channel: rows waiting, dead, the oldest waiting; feeds and discoveries failing."""
        queues: dict[str, dict[str, Any]] = {}
        query = sa.select(outbox.c.channel, outbox.c.status, sa.func.count(),
                          sa.func.min(outbox.c.created)).where(
            outbox.c.status.in_((*_WAITING, "dead"))).group_by(outbox.c.channel,
                                                                 outbox.c.status)
        read = sa.union(sa.select(subscriptions.c.feed_id.label("id")),
                        sa.select(thread_feeds.c.feed_id.label("id"))).subquery()
        failing = sa.select(sa.func.count()).select_from(feeds).where(
            feeds.c.last_error.is_not(None), feeds.c.id.in_(sa.select(read.c.id)))
        with self.engine.connect() as conn:
            for channel, status, count, oldest in conn.execute(query):
                entry = queues.setdefault(channel, {"waiting": 0, "dead": 0,
                                                    "oldest_waiting": None})
                if status == "dead":
                    entry["dead"] += int(count)
                else:
                    entry["waiting"] += int(count)
                    if entry["oldest_waiting"] is None or oldest < entry["oldest_waiting"]:
                        entry["oldest_waiting"] = float(oldest)
            feeds_failing = int(conn.execute(failing).scalar() or 0)
            lost = tuple(row.name for row in conn.execute(
                sa.select(subscriptions.c.name).where(subscriptions.c.feed_id.is_(None),
                                                      subscriptions.c.last_error.is_not(None))))
        return OpsSnapshot({name: QueueGauge(**values) for name, values in queues.items()},
                           feeds_failing, lost)

    def recent_notifications(self, limit: int = 50) -> list[RecentNotification]:
        query = (sa.select(outbox.c.channel, outbox.c.subscription, outbox.c.status,
                           outbox.c.created, outbox.c.sent_at, outbox.c.attempts,
                           outbox.c.last_error, entries.c.kind, entries.c.title,
                           entries.c.author, entries.c.link, entries.c.post_title)
                 .select_from(outbox.join(entries, outbox.c.entry_id == entries.c.id))
                 .order_by(outbox.c.id.desc()).limit(limit))
        with self.engine.connect() as conn:
            return [RecentNotification(
                channel=row.channel, subscription=row.subscription, status=row.status,
                created=row.created, sent_at=row.sent_at, attempts=row.attempts,
                last_error=row.last_error, kind=row.kind, title=row.title, author=row.author,
                link=row.link, post_title=row.post_title) for row in conn.execute(query)]

    def register_daemon(self, record: DaemonRecord) -> None:
        """Note the running daemon (one per state); `clear_daemon` forgets it at its stop.

        One upsert: nodes starting together on PostgreSQL each replace the note, where a
        delete and an insert let the second of two die of a duplicate key."""
        value = json.dumps({"pid": record.pid, "started": record.started,
                            "host": record.host, "config": record.config})
        insert = self._insert(meta_table).values(key=_DAEMON_KEY, value=value)
        with self.engine.begin() as conn:
            conn.execute(insert.on_conflict_do_update(index_elements=[meta_table.c.key],
                                                      set_={"value": value}))

    def daemon_record(self) -> DaemonRecord | None:
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(meta_table.c.value).where(
                meta_table.c.key == _DAEMON_KEY)).scalar()
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
        with self.engine.begin() as conn:
            value = conn.execute(sa.select(meta_table.c.value).where(
                meta_table.c.key == _DAEMON_KEY)).scalar()
            with contextlib.suppress(ValueError, TypeError):
                if value and json.loads(value).get("pid") == pid:
                    conn.execute(meta_table.delete().where(meta_table.c.key == _DAEMON_KEY))


_DAEMON_KEY = "daemon"
_WAITING = ("queued", "held")
"""Statuses of rows not yet delivered nor given up on."""


def _outbox_select() -> Any:
    """Outbox rows with everything rendering needs: the entry and its feed."""
    return (sa.select(outbox, entries, feeds.c.title.label("feed_title"),
                      feeds.c.url.label("feed_url"))
            .select_from(outbox.join(entries, outbox.c.entry_id == entries.c.id)
                         .join(feeds, entries.c.feed_id == feeds.c.id)))


_SENT_VALUES: dict[str, Any] = {
    "status": "sent", "sent_at": sa.bindparam("now"), "attempts": outbox.c.attempts + 1,
    "claimed_until": None, "last_error": None}
_MARK_SENT = outbox.update().where(outbox.c.id == sa.bindparam("item")).values(_SENT_VALUES)
_MARK_SENT_FENCED = outbox.update().where(
    outbox.c.id == sa.bindparam("item"),
    outbox.c.claim_id == sa.bindparam("claim")).values(_SENT_VALUES)
"""`mark_sent`'s statements, built once (with `_fence`'s condition, and without)."""


def _fence(claim: str | None) -> list[Any]:
    """The condition that a row is still held by `claim`; none without one."""
    return [] if claim is None else [outbox.c.claim_id == claim]


def _id_list(ids: int | Sequence[int]) -> list[int]:
    return [ids] if isinstance(ids, int) else list(ids)


def new_notification_id() -> str:
    """Stable per notification: the email Message-ID, webhook-id and Matrix txn id."""
    return uuid.uuid4().hex


def _feed_state(row: Any) -> FeedState:
    # By key from the row's mapping: half the cost of attribute access on a Row, and every
    # claim builds one of these per feed (10,000 a daemon cycle).
    r = row._mapping
    return FeedState(
        id=r["id"], url=r["url"], title=r["title"], api_root=r["api_root"], etag=r["etag"],
        last_modified=r["last_modified"], body_hash=r["body_hash"],
        interval=r["interval"], next_due=r["next_due"],
        last_polled=r["last_polled"], last_status=r["last_status"],
        last_failure=Failure.stored(r["last_error_kind"], r["last_error"]),
        error_count=r["error_count"], post_id=r["post_id"], rescan_due=r["rescan_due"],
        entries_seen=r["entries_seen"], lease_token=r["lease_token"])


_STATE_COLUMNS = ("id", "url", "title", "api_root", "etag", "last_modified", "body_hash",
                  "interval", "next_due", "last_polled", "last_status", "last_error_kind",
                  "last_error", "error_count", "post_id", "rescan_due", "entries_seen",
                  "lease_token")


_STATE_RETURNING = tuple(feeds.c[name] for name in _STATE_COLUMNS)
"""What a claim returns: only what a `FeedState` holds (not the lease columns it has just
set), in the order `_feed_states` reads it."""


def _feed_states(result: Any) -> list[FeedState]:
    """`_feed_state` of every row of `result`, which holds at least `_STATE_COLUMNS`: the
    rows fetched at once and, when they are those columns in that order (a claim's), read
    as they come, each state built from positions (a claim reads 2,000 at a time)."""
    keys = tuple(result.keys())
    rows: Iterable[Any] = result.all()
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


def _make_engine(url: str, node: str | None = None, lease: float | None = None) -> Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    args = {"application_name": node} if node and url.startswith("postgresql") else {}
    engine = sa.create_engine(url, pool_pre_ping=True, connect_args=args)
    if lease is not None and engine.dialect.name == "postgresql":
        @sa.event.listens_for(engine, "connect")
        def _idle_limit(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute(f"SET idle_in_transaction_session_timeout = {int(lease * 1000)}")
            cursor.close()
            dbapi_conn.commit()

    return engine


def _sqlite_insert(table: sa.Table) -> Any:
    from sqlalchemy.dialects.sqlite import insert

    return insert(table)


def _pg_insert(table: sa.Table) -> Any:
    from sqlalchemy.dialects.postgresql import insert

    return insert(table)
