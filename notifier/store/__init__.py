"""The one place that speaks SQL: feeds, subscriptions, seen entries and the outbox.

`db` opens the database (sqlite3, or psycopg for PostgreSQL) and names where the two
differ, `schema` declares the tables and their migrations, `records` the plain records the
store takes and returns, `sql` the `Store` with every query (`leases` its several-node half).
Nothing outside this package writes SQL or imports a database driver.
"""

from notifier.store.records import (
    ChannelStats,
    DaemonRecord,
    FeedHealth,
    FeedState,
    NodeState,
    OpsSnapshot,
    OutboxItem,
    PollRecord,
    QueuedNotice,
    QueueGauge,
    RecentNotification,
    SiteState,
    StoreError,
    SubscriptionState,
    ThreadLink,
    ThreadUpdate,
)
from notifier.store.schema import SCHEMA_VERSION
from notifier.store.sql import Store, new_notification_id

__all__ = [
    "SCHEMA_VERSION",
    "ChannelStats",
    "DaemonRecord",
    "FeedHealth",
    "FeedState",
    "NodeState",
    "OpsSnapshot",
    "OutboxItem",
    "PollRecord",
    "QueueGauge",
    "QueuedNotice",
    "RecentNotification",
    "SiteState",
    "Store",
    "StoreError",
    "SubscriptionState",
    "ThreadLink",
    "ThreadUpdate",
    "new_notification_id",
]
