"""The database schema and its numbered migrations.

Tables are declared once, as they are now; `_migration_1` creates them so, and each later
migration adds to an older database only what it lacks. The schema version is kept in the
`meta` table, and a database from a newer notifier is refused rather than misread.

The declarations are the SQL both databases take, column by column (as SQLAlchemy Core
wrote them when it built the store, so a database created by an older notifier and one
created now are alike); the only difference is the type of a generated id (`{id}`:
SQLite's INTEGER row id, PostgreSQL's SERIAL).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from notifier.store.db import Connection


@dataclass(frozen=True, slots=True)
class Table:
    """A table's columns (name, SQL declaration), its primary key and other constraints."""

    name: str
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...]
    constraints: tuple[str, ...] = ()

    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def create(self, conn: Connection, id_type: str) -> None:
        """CREATE TABLE, unless the table exists."""
        parts = [f"{quoted(name)} {declared.format(id=id_type)}"
                 for name, declared in self.columns]
        parts.append(f"PRIMARY KEY ({', '.join(quoted(k) for k in self.key)})")
        parts.extend(self.constraints)
        conn.execute(f"CREATE TABLE IF NOT EXISTS {self.name} (\n\t"
                     + ", \n\t".join(parts) + "\n)")


def quoted(name: str) -> str:
    """A column's name as SQL takes it: `key` is a keyword in SQLite, quoted everywhere."""
    return f'"{name}"' if name == "key" else name


SCHEMA_VERSION = 9

meta_table = Table(
    "meta", (
    ("key", "VARCHAR(64) NOT NULL"),
    ("value", "TEXT NOT NULL"),
), key=("key",))

feeds = Table(
    "feeds", (
    ("id", "{id} NOT NULL"),
    ("url", "TEXT NOT NULL"),
    ("title", "TEXT DEFAULT '' NOT NULL"),
    ("api_root", "TEXT"),
    ("etag", "TEXT"),
    ("last_modified", "TEXT"),
    # Digest of the last body parsed: an identical body is not parsed again, which matters
    # for feeds whose validators cannot be trusted and are fetched in full every time.
    ("body_hash", "VARCHAR(64)"),
    ("interval", "FLOAT NOT NULL"),
    ("next_due", "FLOAT NOT NULL"),
    ("last_polled", "FLOAT"),
    ("last_status", "INTEGER"),
    ("last_error", "TEXT"),
    ("error_count", "INTEGER DEFAULT '0' NOT NULL"),
    ("entries_seen", "INTEGER DEFAULT '0' NOT NULL"),
    # Several nodes sharing one database: a poller holds a lease with a fencing token; a
    # poll is written only while the feed still carries the token it was claimed under
    # (another node's claim since moves it on). One node claims and writes the same way.
    ("lease_owner", "VARCHAR(64)"),
    ("lease_until", "FLOAT"),
    ("lease_token", "INTEGER DEFAULT '0' NOT NULL"),
    ("created", "FLOAT NOT NULL"),
    # Migration 2 (threads): the WordPress post a per-post comment feed belongs to, for REST
    # backfill, and when the feed is next read in full (without validators, through REST).
    ("post_id", "TEXT"),
    ("rescan_due", "FLOAT"),
    # Migration 6 (typed failures): the kind of the last error (`failures.FailureKind`).
    ("last_error_kind", "VARCHAR(32)"),
    # Migration 7 (several nodes): who wrote the last poll, under which fencing token.
    ("polled_by", "VARCHAR(64)"),
    ("polled_token", "INTEGER"),
), key=("id",), constraints=("UNIQUE (url)",))
ix_feeds_due = "CREATE INDEX IF NOT EXISTS ix_feeds_due ON feeds (next_due)"

subscriptions = Table(
    "subscriptions", (
    ("name", "VARCHAR(100) NOT NULL"),
    ("source_url", "TEXT NOT NULL"),
    ("watch", "VARCHAR(16) NOT NULL"),
    ("feed_id", "INTEGER"),
    ("discovered_at", "FLOAT"),
    ("baseline_at", "FLOAT"),
    ("last_error", "TEXT"),
    # Migration 5: failed discoveries back off like failed polls, across restarts.
    ("discovery_errors", "INTEGER DEFAULT '0' NOT NULL"),
    ("discovery_due", "FLOAT"),
    ("last_error_kind", "VARCHAR(32)"),  # migration 6
), key=("name",), constraints=("FOREIGN KEY(feed_id) REFERENCES feeds (id)",))

entries = Table(
    "entries", (
    ("id", "{id} NOT NULL"),
    ("feed_id", "INTEGER NOT NULL"),
    ("key", "TEXT NOT NULL"),
    ("kind", "VARCHAR(16) NOT NULL"),
    ("title", "TEXT NOT NULL"),
    ("author", "TEXT NOT NULL"),
    ("author_url", "TEXT NOT NULL"),
    ("published", "FLOAT"),
    ("updated", "FLOAT"),
    ("link", "TEXT NOT NULL"),
    ("content_html", "TEXT NOT NULL"),
    ("content_text", "TEXT NOT NULL"),
    ("post_key", "TEXT NOT NULL"),
    ("post_title", "TEXT NOT NULL"),
    ("post_link", "TEXT NOT NULL"),
    ("parent_key", "TEXT NOT NULL"),
    ("parent_author", "TEXT NOT NULL"),
    ("content_hash", "VARCHAR(64) NOT NULL"),
    ("first_seen", "FLOAT NOT NULL"),
    # Migration 2: edits counted (the outbox's revision), and the commenter's email hash.
    ("revision", "INTEGER DEFAULT '0' NOT NULL"),
    ("author_hash", "TEXT DEFAULT '' NOT NULL"),
), key=("id",), constraints=("CONSTRAINT uq_entries_feed_key UNIQUE (feed_id, \"key\")",
                 "FOREIGN KEY(feed_id) REFERENCES feeds (id)"))

thread_feeds = Table(
    # `watch: threads`: the comment feeds of recent posts a subscription follows besides its
    # posts feed. `quiet` marks a feed that joined with the subscription's own baseline, so its
    # first poll records what exists instead of reporting it.
    "thread_feeds", (
    ("subscription", "VARCHAR(100) NOT NULL"),
    ("feed_id", "INTEGER NOT NULL"),
    ("post_key", "TEXT NOT NULL"),
    ("post_published", "FLOAT"),
    ("quiet", "BOOLEAN NOT NULL"),
), key=("subscription", "feed_id"),
   constraints=("FOREIGN KEY(feed_id) REFERENCES feeds (id)",))
ix_entries_key = "CREATE INDEX IF NOT EXISTS ix_entries_key ON entries (\"key\")"

outbox = Table(
    "outbox", (
    ("id", "{id} NOT NULL"),
    ("notification_id", "VARCHAR(64) NOT NULL"),
    ("subscription", "VARCHAR(100) NOT NULL"),
    ("channel", "VARCHAR(100) NOT NULL"),
    ("entry_id", "INTEGER NOT NULL"),
    ("entry_key", "TEXT NOT NULL"),
    ("revision", "INTEGER DEFAULT '0' NOT NULL"),
    ("missing", "INTEGER DEFAULT '0' NOT NULL"),
    ("status", "VARCHAR(16) NOT NULL"),  # queued | held | sent | dead
    ("attempts", "INTEGER DEFAULT '0' NOT NULL"),
    ("next_attempt", "FLOAT NOT NULL"),
    ("claimed_until", "FLOAT"),
    ("created", "FLOAT NOT NULL"),
    ("sent_at", "FLOAT"),
    ("last_error", "TEXT"),
    # Migration 3 (digests): when a held row was released, and the digest message it went
    # (or goes) out in. A digest's members are written before it is sent, so a digest cut
    # short by a crash is sent again whole, with the same id.
    ("held_until", "FLOAT"),
    ("digest_id", "VARCHAR(64)"),
    # Migration 7: the node holding the claim and the claim's id, its fencing token: the
    # outcome of a send is written only under the claim that took the row.
    ("claim_owner", "VARCHAR(64)"),
    ("claim_id", "VARCHAR(32)"),
    # One message per comment per destination, even when several subscriptions match it.
), key=("id",), constraints=("CONSTRAINT uq_outbox_once UNIQUE (channel, entry_key, revision)",
                 "UNIQUE (notification_id)", "FOREIGN KEY(entry_id) REFERENCES entries (id)"))
ix_outbox_due = "CREATE INDEX IF NOT EXISTS ix_outbox_due ON outbox (status, next_attempt)"
ix_outbox_digest = "CREATE INDEX IF NOT EXISTS ix_outbox_digest ON outbox (digest_id)"

channel_state = Table(
    "channel_state", (
    ("name", "VARCHAR(100) NOT NULL"),
    ("disabled_reason", "TEXT"),
    ("disabled_at", "FLOAT"),
    # Migration 7: a pause a server asked for (429 Retry-After), seen by every node; and the
    # node that delivers to this channel for now, so one node paces it and builds digests.
    ("paused_until", "FLOAT"),
    ("lease_owner", "VARCHAR(64)"),
    ("lease_until", "FLOAT"),
), key=("name",))

# Migration 4 (conditional GET everywhere): the last look at each WordPress site's approved
# comment count. A thread feed is asked with its validators, which on WordPress are the
# site's; a count that moved without new comments to explain it (a late approval, an
# import, a trash) makes that site's followed threads be read in full once.
sites = Table(
    "sites", (
    ("api_root", "TEXT NOT NULL"),
    ("comment_total", "INTEGER NOT NULL"),
    ("newest_id", "INTEGER NOT NULL"),
    ("probed_at", "FLOAT NOT NULL"),
    ("next_probe", "FLOAT NOT NULL"),
    # Migration 8 (edits within one interval): comment id -> digest of its text, as JSON, for
    # the newest comments of sites where a subscription has `notify_edits`; else NULL.
    ("texts", "TEXT"),
), key=("api_root",))


# Migration 7 (several nodes): one row per node, written by its heartbeat.
nodes = Table(
    "nodes", (
    ("name", "VARCHAR(64) NOT NULL"),
    ("version", "VARCHAR(32) NOT NULL"),
    ("config_hash", "VARCHAR(64) NOT NULL"),
    ("started", "FLOAT NOT NULL"),
    ("heartbeat", "FLOAT NOT NULL"),
    ("lease", "FLOAT NOT NULL"),
    ("stopped", "FLOAT"),
), key=("name",))

# Migration 9 (several nodes): who is discovering a subscription's feed, and until when, so
# that nodes starting together ask each site for it once, not once per node.
discovery_claims = Table(
    "discovery_claims", (
    ("subscription", "VARCHAR(100) NOT NULL"),
    ("node", "VARCHAR(64) NOT NULL"),
    ("until", "FLOAT NOT NULL"),
), key=("subscription",))


def _create(conn: Connection, *tables: Table) -> None:
    id_type = "SERIAL" if conn.dialect == "postgresql" else "INTEGER"
    for table in tables:
        table.create(conn, id_type)


def _migration_1(conn: Connection) -> None:
    _create(conn, feeds, subscriptions, entries, outbox, channel_state)
    for index in (ix_entries_key, ix_outbox_due):
        conn.execute(index)


def _present_columns(conn: Connection, table: str) -> set[str]:
    if conn.dialect == "sqlite":
        return {row[1] for row in conn.execute(f"PRAGMA table_info({table})").tuples()}
    return set(conn.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = :table",
        {"table": table}).scalars())


def _add_missing_columns(conn: Connection, table: Table, names: Sequence[str]) -> None:
    """ALTER TABLE ADD COLUMN for each declared column the database lacks.

    Only where missing, because a database created by this version's `_migration_1` already
    has every column (it creates the tables as currently declared).
    """
    present = _present_columns(conn, table.name)
    declared = dict(table.columns)
    for name in names:
        if name not in present:
            # As the column was always added: NOT NULL before its default.
            kind, _, default = declared[name].removesuffix(" NOT NULL").partition(" DEFAULT ")
            added = f"{kind} NOT NULL DEFAULT {default}" if default else declared[name]
            conn.execute(f"ALTER TABLE {table.name} ADD COLUMN {name} {added}")


def _migration_2(conn: Connection) -> None:
    """Thread intelligence: rescans, REST backfill, edits, email hashes, `watch: threads`;
    and the digest of the last body parsed, so an identical body is not parsed again."""
    _add_missing_columns(conn, feeds, ("post_id", "rescan_due", "body_hash"))
    _add_missing_columns(conn, entries, ("revision", "author_hash"))
    _create(conn, thread_feeds)


def _migration_3(conn: Connection) -> None:
    """Digests and quiet hours: held rows and digest membership in the outbox."""
    _add_missing_columns(conn, outbox, ("held_until", "digest_id"))
    conn.execute(ix_outbox_digest)


def _migration_4(conn: Connection) -> None:
    """Site probes: one small request per WordPress site per interval instead of fetching
    every thread in full."""
    _create(conn, sites)


def _migration_5(conn: Connection) -> None:
    """Discovery back-off: a subscription whose feed cannot be found is not asked for it
    every cycle (Retry-After and 410 honoured from the first answer)."""
    _add_missing_columns(conn, subscriptions, ("discovery_errors", "discovery_due"))


def _migration_6(conn: Connection) -> None:
    """Typed failures: the kind of a feed's or a subscription's last error beside its text."""
    _add_missing_columns(conn, feeds, ("last_error_kind",))
    _add_missing_columns(conn, subscriptions, ("last_error_kind",))


def _migration_7(conn: Connection) -> None:
    """Several nodes on one database: heartbeats, who polled a feed, fenced outbox claims,
    shared channel pauses."""
    _add_missing_columns(conn, feeds, ("polled_by", "polled_token"))
    _add_missing_columns(conn, outbox, ("claim_owner", "claim_id"))
    _add_missing_columns(conn, channel_state, ("paused_until", "lease_owner", "lease_until"))
    conn.execute(ix_feeds_due)
    _create(conn, nodes)


def _migration_8(conn: Connection) -> None:
    """Edits found by the site probe: the digests of the newest comments' texts."""
    _add_missing_columns(conn, sites, ("texts",))


def _migration_9(conn: Connection) -> None:
    """Discovery claims: a subscription's feed discovered by one node of several."""
    _create(conn, discovery_claims)


_MIGRATIONS = [_migration_1, _migration_2, _migration_3, _migration_4, _migration_5,
               _migration_6, _migration_7, _migration_8, _migration_9]


def create_meta(conn: Connection) -> None:
    """The `meta` table, where the schema version is read before any migration."""
    _create(conn, meta_table)
