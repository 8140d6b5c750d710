"""What the store takes and returns: plain frozen records, no SQL types."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from notifier.errors import NotifierError
from notifier.failures import Failure
from notifier.frozen import quick_init
from notifier.models import Entry


class StoreError(NotifierError):
    """The database cannot be opened or is from a newer notifier."""


@dataclass(frozen=True, slots=True)
class SubscriptionState:
    name: str
    source_url: str
    watch: str
    feed_id: int | None
    feed_url: str | None
    discovered_at: float | None
    baseline_at: float | None
    last_failure: Failure | None  # why discovery failed, while it does
    discovery_errors: int = 0  # failed discoveries in a row
    discovery_due: float | None = None  # when a failed discovery may be tried again


@quick_init
@dataclass(frozen=True, slots=True)
class FeedState:
    id: int
    url: str
    title: str
    api_root: str | None
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    interval: float
    next_due: float
    last_polled: float | None
    last_status: int | None
    last_failure: Failure | None
    error_count: int
    post_id: str | None = None
    rescan_due: float | None = None
    entries_seen: int = 0
    lease_token: int = 0  # the fencing token of the claim this state was read under


@dataclass(frozen=True, slots=True)
class SiteState:
    """The last look at a site's approved comments (see `sources.wordpress.probe_site`)."""

    api_root: str
    comment_total: int
    newest_id: int
    next_probe: float
    texts: Mapping[int, str] = field(default_factory=dict)
    """Comment id -> digest of its text, for sites where someone wants edits (else empty)."""


@dataclass(frozen=True, slots=True)
class QueuedNotice:
    """A notification to enqueue: `entry_key` must be among the poll's stored entries."""

    subscription: str
    channel: str
    entry_key: str
    revision: int = 0
    missing: int = 0
    digest_id: str | None = None  # a flood's summary: its members go out as one message


@dataclass(frozen=True, slots=True)
class ThreadLink:
    """`watch: threads`: one post's comment feed that a subscription follows."""

    subscription: str
    url: str
    post_key: str
    published: float | None


@dataclass(frozen=True, slots=True)
class ThreadUpdate:
    """What a posts-feed poll says about one `watch: threads` subscription's thread feeds.

    `links` join (quietly, recording a baseline, when `quiet`: the subscription's own first
    poll); links to posts published before `retire_before` are dropped.
    """

    subscription: str
    links: Sequence[ThreadLink]
    retire_before: float
    quiet: bool


@quick_init
@dataclass(frozen=True, slots=True)
class PollRecord:
    """Everything one poll of one feed changes, written in one transaction with its batch."""

    feed_id: int
    polled_at: float
    next_due: float
    status: int | None
    failure: Failure | None = None
    etag: str | None = None
    last_modified: str | None = None
    validators_changed: bool = True
    """False for a 304 that kept the validators the feed was claimed with: they are not
    written back then, so validators forgotten meanwhile (`Store.reread_threads`, by the
    probe of another batch or node) stay forgotten."""
    body_hash: str | None = None
    new_url: str | None = None
    title: str | None = None
    new_entries: Sequence[Entry] = ()
    changed_entries: Sequence[Entry] = ()
    baselines: Sequence[str] = ()
    notices: Sequence[QueuedNotice] = ()
    post_id: str | None = None  # learnt from this poll's answer; None keeps the stored one
    rescan_due: float | None = None  # set when this poll was (or began) a full rescan
    threads: Sequence[ThreadUpdate] = ()
    settle_thread: bool = False  # this poll was the quiet baseline of a followed thread feed


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    notification_id: str
    subscription: str
    channel: str
    attempts: int
    created: float
    missing: int
    entry: Entry
    feed_title: str
    feed_url: str
    revision: int = 0  # > 0: the notification reports an edit of the entry
    held_until: float | None = None  # set once the row was held for a digest or quiet hours
    digest_id: str | None = None  # the digest message it is part of
    claim_id: str | None = None  # the claim it was taken under: its outcome is fenced by it

    @property
    def age_from(self) -> float:
        """Where `give_up_after` counts from: a digest's wait is not a delivery failure."""
        return max(self.created, self.held_until or 0.0)


@dataclass(slots=True)
class ChannelStats:
    queued: int = 0
    held: int = 0  # waiting for a digest time or the end of quiet hours
    sent: int = 0
    failed: int = 0  # queued rows that have failed at least once
    dead: int = 0
    last_error: str | None = None
    last_sent: float | None = None
    disabled_reason: str | None = None
    next_release: float | None = None  # when the earliest held row goes out
    next_retry: float | None = None  # when the earliest failing row is tried again
    digests: int = 0  # digest messages sent
    in_digests: int = 0  # notifications sent as part of those


@dataclass(slots=True)
class FeedHealth:
    url: str
    last_polled: float | None
    last_status: int | None
    last_failure: Failure | None
    error_count: int
    next_due: float
    entries: int
    subscriptions: list[str] = field(default_factory=list)
    polled_by: str | None = None  # the node that wrote the last poll
    claimed_by: str | None = None  # the node polling it now (an unexpired lease)


@dataclass(frozen=True, slots=True)
class NodeState:
    """One node sharing the database, as its heartbeats left it."""

    name: str
    version: str
    config_hash: str
    started: float
    heartbeat: float
    lease: float
    stopped: float | None
    feeds_claimed: int  # feeds it holds an unexpired lease on now
    feeds_polled: int  # feeds whose last poll it wrote
    channels: tuple[str, ...]  # channels it delivers to now

    def alive(self, now: float) -> bool:
        """Heartbeat within one lease and not stopped: its claims still hold."""
        return self.stopped is None and self.heartbeat + self.lease >= now


@dataclass(frozen=True, slots=True)
class QueueGauge:
    """One channel's outbox at a glance, for metrics: what waits, what was given up on."""

    waiting: int = 0  # queued or held
    dead: int = 0
    oldest_waiting: float | None = None  # creation time of the oldest waiting row


@dataclass(frozen=True, slots=True)
class OpsSnapshot:
    """The gauges the admin listener reads from the state at each scrape."""

    queues: dict[str, QueueGauge]
    feeds_failing: int  # feeds read by a subscription whose last poll failed
    discoveries_failing: tuple[str, ...]  # subscriptions whose feed could not be found


@dataclass(frozen=True, slots=True)
class RecentNotification:
    """An outbox row as the status page lists it."""

    channel: str
    subscription: str
    status: str
    created: float
    sent_at: float | None
    attempts: int
    last_error: str | None
    kind: str
    title: str
    author: str
    link: str
    post_title: str


@dataclass(frozen=True, slots=True)
class DaemonRecord:
    """Which process runs the daemon on this state, so `notifier reload` can signal it."""

    host: str
    pid: int
    started: str  # the process's start time as the OS tells it (pid reuse check)
    config: str  # the configuration file it reads again on SIGHUP


# --- conversions -------------------------------------------------------------------------
