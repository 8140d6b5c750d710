"""The database schema and its numbered migrations.

Tables are declared once, as they are now; `_migration_1` creates them so, and each later
migration adds to an older database only what it lacks. The schema version is kept in the
`meta` table, and a database from a newer notifier is refused rather than misread.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

SCHEMA_VERSION = 9

metadata = sa.MetaData()

meta_table = sa.Table(
    "meta", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

feeds = sa.Table(
    "feeds", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("url", sa.Text, nullable=False, unique=True),
    sa.Column("title", sa.Text, nullable=False, server_default=""),
    sa.Column("api_root", sa.Text),
    sa.Column("etag", sa.Text),
    sa.Column("last_modified", sa.Text),
    # Digest of the last body parsed: an identical body is not parsed again, which matters
    # for feeds whose validators cannot be trusted and are fetched in full every time.
    sa.Column("body_hash", sa.String(64)),
    sa.Column("interval", sa.Float, nullable=False),
    sa.Column("next_due", sa.Float, nullable=False),
    sa.Column("last_polled", sa.Float),
    sa.Column("last_status", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("error_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("entries_seen", sa.Integer, nullable=False, server_default="0"),
    # Room for several nodes sharing one database: a poller holds a lease with a fencing
    # token; writes from a node whose lease expired are refused. Unused by one node.
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_until", sa.Float),
    sa.Column("lease_token", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created", sa.Float, nullable=False),
    # Migration 2 (threads): the WordPress post a per-post comment feed belongs to, for REST
    # backfill, and when the feed is next read in full (without validators, through REST).
    sa.Column("post_id", sa.Text),
    sa.Column("rescan_due", sa.Float),
    # Migration 6 (typed failures): the kind of the last error (`failures.FailureKind`).
    sa.Column("last_error_kind", sa.String(32)),
    # Migration 7 (several nodes): who wrote the last poll, under which fencing token.
    sa.Column("polled_by", sa.String(64)),
    sa.Column("polled_token", sa.Integer),
)
ix_feeds_due = sa.Index("ix_feeds_due", feeds.c.next_due)

subscriptions = sa.Table(
    "subscriptions", metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("source_url", sa.Text, nullable=False),
    sa.Column("watch", sa.String(16), nullable=False),
    sa.Column("feed_id", sa.Integer, sa.ForeignKey("feeds.id")),
    sa.Column("discovered_at", sa.Float),
    sa.Column("baseline_at", sa.Float),
    sa.Column("last_error", sa.Text),
    # Migration 5: failed discoveries back off like failed polls, across restarts.
    sa.Column("discovery_errors", sa.Integer, nullable=False, server_default="0"),
    sa.Column("discovery_due", sa.Float),
    sa.Column("last_error_kind", sa.String(32)),  # migration 6
)

entries = sa.Table(
    "entries", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("feed_id", sa.Integer, sa.ForeignKey("feeds.id"), nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("author", sa.Text, nullable=False),
    sa.Column("author_url", sa.Text, nullable=False),
    sa.Column("published", sa.Float),
    sa.Column("updated", sa.Float),
    sa.Column("link", sa.Text, nullable=False),
    sa.Column("content_html", sa.Text, nullable=False),
    sa.Column("content_text", sa.Text, nullable=False),
    sa.Column("post_key", sa.Text, nullable=False),
    sa.Column("post_title", sa.Text, nullable=False),
    sa.Column("post_link", sa.Text, nullable=False),
    sa.Column("parent_key", sa.Text, nullable=False),
    sa.Column("parent_author", sa.Text, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("first_seen", sa.Float, nullable=False),
    # Migration 2: edits counted (the outbox's revision), and the commenter's email hash.
    sa.Column("revision", sa.Integer, nullable=False, server_default="0"),
    sa.Column("author_hash", sa.Text, nullable=False, server_default=""),
    sa.UniqueConstraint("feed_id", "key", name="uq_entries_feed_key"),
)

thread_feeds = sa.Table(
    # `watch: threads`: the comment feeds of recent posts a subscription follows besides its
    # posts feed. `quiet` marks a feed that joined with the subscription's own baseline, so its
    # first poll records what exists instead of reporting it.
    "thread_feeds", metadata,
    sa.Column("subscription", sa.String(100), primary_key=True),
    sa.Column("feed_id", sa.Integer, sa.ForeignKey("feeds.id"), primary_key=True),
    sa.Column("post_key", sa.Text, nullable=False),
    sa.Column("post_published", sa.Float),
    sa.Column("quiet", sa.Boolean, nullable=False),
)
sa.Index("ix_entries_key", entries.c.key)

outbox = sa.Table(
    "outbox", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("notification_id", sa.String(64), nullable=False, unique=True),
    sa.Column("subscription", sa.String(100), nullable=False),
    sa.Column("channel", sa.String(100), nullable=False),
    sa.Column("entry_id", sa.Integer, sa.ForeignKey("entries.id"), nullable=False),
    sa.Column("entry_key", sa.Text, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False, server_default="0"),
    sa.Column("missing", sa.Integer, nullable=False, server_default="0"),
    sa.Column("status", sa.String(16), nullable=False),  # queued | held | sent | dead
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt", sa.Float, nullable=False),
    sa.Column("claimed_until", sa.Float),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("sent_at", sa.Float),
    sa.Column("last_error", sa.Text),
    # Migration 3 (digests): when a held row was released, and the digest message it went
    # (or goes) out in. A digest's members are written before it is sent, so a digest cut
    # short by a crash is sent again whole, with the same id.
    sa.Column("held_until", sa.Float),
    sa.Column("digest_id", sa.String(64)),
    # Migration 7: the node holding the claim and the claim's id, its fencing token: the
    # outcome of a send is written only under the claim that took the row.
    sa.Column("claim_owner", sa.String(64)),
    sa.Column("claim_id", sa.String(32)),
    # One message per comment per destination, even when several subscriptions match it.
    sa.UniqueConstraint("channel", "entry_key", "revision", name="uq_outbox_once"),
)
sa.Index("ix_outbox_due", outbox.c.status, outbox.c.next_attempt)
ix_outbox_digest = sa.Index("ix_outbox_digest", outbox.c.digest_id)

channel_state = sa.Table(
    "channel_state", metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("disabled_reason", sa.Text),
    sa.Column("disabled_at", sa.Float),
    # Migration 7: a pause a server asked for (429 Retry-After), seen by every node; and the
    # node that delivers to this channel for now, so one node paces it and builds digests.
    sa.Column("paused_until", sa.Float),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_until", sa.Float),
)

# Migration 4 (conditional GET everywhere): the last look at each WordPress site's approved
# comment count. A thread feed is asked with its validators, which on WordPress are the
# site's; a count that moved without new comments to explain it (a late approval, an
# import, a trash) makes that site's followed threads be read in full once.
sites = sa.Table(
    "sites", metadata,
    sa.Column("api_root", sa.Text, primary_key=True),
    sa.Column("comment_total", sa.Integer, nullable=False),
    sa.Column("newest_id", sa.Integer, nullable=False),
    sa.Column("probed_at", sa.Float, nullable=False),
    sa.Column("next_probe", sa.Float, nullable=False),
    # Migration 8 (edits within one interval): comment id -> digest of its text, as JSON, for
    # the newest comments of sites where a subscription has `notify_edits`; else NULL.
    sa.Column("texts", sa.Text),
)


# Migration 7 (several nodes): one row per node, written by its heartbeat.
nodes = sa.Table(
    "nodes", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", sa.String(32), nullable=False),
    sa.Column("config_hash", sa.String(64), nullable=False),
    sa.Column("started", sa.Float, nullable=False),
    sa.Column("heartbeat", sa.Float, nullable=False),
    sa.Column("lease", sa.Float, nullable=False),
    sa.Column("stopped", sa.Float),
)

# Migration 9 (several nodes): who is discovering a subscription's feed, and until when, so
# that nodes starting together ask each site for it once, not once per node.
discovery_claims = sa.Table(
    "discovery_claims", metadata,
    sa.Column("subscription", sa.String(100), primary_key=True),
    sa.Column("node", sa.String(64), nullable=False),
    sa.Column("until", sa.Float, nullable=False),
)


def _migration_1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[feeds, subscriptions, entries, outbox, channel_state])


def _add_missing_columns(conn: Connection, table: sa.Table, names: Sequence[str]) -> None:
    """ALTER TABLE ADD COLUMN for each declared column the database lacks.

    Only where missing, because a database created by this version's `_migration_1` already
    has every column (it creates the tables as currently declared).
    """
    present = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
    for name in names:
        if name in present:
            continue
        column = table.c[name]
        kind = column.type.compile(dialect=conn.dialect)
        server_default = getattr(column.server_default, "arg", None)
        default = f" NOT NULL DEFAULT '{server_default}'" if server_default is not None else ""
        conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {name} {kind}{default}"))


def _migration_2(conn: Connection) -> None:
    """Thread intelligence: rescans, REST backfill, edits, email hashes, `watch: threads`;
    and the digest of the last body parsed, so an identical body is not parsed again."""
    _add_missing_columns(conn, feeds, ("post_id", "rescan_due", "body_hash"))
    _add_missing_columns(conn, entries, ("revision", "author_hash"))
    metadata.create_all(conn, tables=[thread_feeds])


def _migration_3(conn: Connection) -> None:
    """Digests and quiet hours: held rows and digest membership in the outbox."""
    _add_missing_columns(conn, outbox, ("held_until", "digest_id"))
    ix_outbox_digest.create(conn, checkfirst=True)


def _migration_4(conn: Connection) -> None:
    """Site probes: one small request per WordPress site per interval instead of fetching
    every thread in full."""
    metadata.create_all(conn, tables=[sites])


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
    ix_feeds_due.create(conn, checkfirst=True)
    metadata.create_all(conn, tables=[nodes])


def _migration_8(conn: Connection) -> None:
    """Edits found by the site probe: the digests of the newest comments' texts."""
    _add_missing_columns(conn, sites, ("texts",))


def _migration_9(conn: Connection) -> None:
    """Discovery claims: a subscription's feed discovered by one node of several."""
    metadata.create_all(conn, tables=[discovery_claims])


_MIGRATIONS = [_migration_1, _migration_2, _migration_3, _migration_4, _migration_5,
               _migration_6, _migration_7, _migration_8, _migration_9]
