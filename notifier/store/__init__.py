"""The one place that speaks SQL: feeds, subscriptions, seen entries and the outbox.

`schema` declares the tables and their migrations, `records` the plain records the store
takes and returns, `sql` the `Store` with every query. Nothing outside this package imports
SQLAlchemy.
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
