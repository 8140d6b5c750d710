"""The daemon's Prometheus metrics, all `notifier_`-prefixed, in a registry of their own.

Counters are fed from the reports the poll and delivery cycles already return (nothing in
the poll path knows about metrics); the gauges that describe the state (queue depth, dead
letters, the oldest waiting notification, failing feeds) are read from the database at each
scrape, so they are true also for what another process (`notifier retry`) changed.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from notifier import __version__
from notifier.delivery.cycle import DeliveryReport
from notifier.failures import FailureKind, count_kinds
from notifier.poll import PollReport
from notifier.store import OpsSnapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
POLL_RESULTS = ("fetched", "not_modified", "failed")
OUTCOMES = ("sent", "failed", "dead")
FETCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 60.0)


class Metrics:
    """One daemon's metrics; `render()` is the body of `GET /metrics`."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.polls = Counter(
            "notifier_polls", "Feed polls by result: fetched (a body was read), not_modified "
            "(304 or the same body as last time), failed (a fetch, parse or discovery error)",
            ["result"], registry=registry)
        self.poll_failures = Counter(
            "notifier_poll_failures", "Failed polls and discoveries by kind (network, "
            "timeout, http, refused, not-a-feed, parser, discovery, state: see `notifier "
            "status` for which feed)", ["kind"], registry=registry)
        self.fetch_seconds = Histogram(
            "notifier_fetch_seconds", "Time to fetch one feed, from request to full body",
            buckets=FETCH_BUCKETS, registry=registry)
        self.new_entries = Counter(
            "notifier_new_entries", "New posts and comments found", registry=registry)
        self.queued = Counter(
            "notifier_notifications_queued", "Notifications queued for delivery",
            registry=registry)
        self.notifications = Counter(
            "notifier_notifications", "Delivery attempts by channel and outcome: sent, "
            "failed (to be retried), dead (given up on)", ["channel", "outcome"],
            registry=registry)
        self.queue_depth = Gauge(
            "notifier_queue_depth", "Notifications waiting to be sent (queued or held for a "
            "digest or quiet hours), by channel", ["channel"], registry=registry)
        self.dead_letters = Gauge(
            "notifier_dead_letters", "Notifications given up on, by channel (`notifier "
            "retry` queues them again)", ["channel"], registry=registry)
        self.oldest_queued = Gauge(
            "notifier_oldest_queued_age_seconds", "Age of the oldest notification waiting to "
            "be sent, by channel (0 when none waits)", ["channel"], registry=registry)
        self.feeds_failing = Gauge(
            "notifier_feeds_failing", "Feeds whose last poll failed, plus subscriptions "
            "whose feed could not be discovered", registry=registry)
        self.channels_disabled = Gauge(
            "notifier_channel_disabled", "1 for a channel stopped after a permanent refusal",
            ["channel"], registry=registry)
        self.last_poll = Gauge(
            "notifier_last_poll_timestamp_seconds", "When the last poll cycle ended (Unix "
            "time)", registry=registry)
        self.reloads = Counter(
            "notifier_config_reloads", "Configuration reloads by result: applied, refused",
            ["result"], registry=registry)
        self.info = Gauge("notifier_build_info", "The running notifier's version, always 1",
                          ["version"], registry=registry)
        self.info.labels(version=__version__).set(1)
        for result in POLL_RESULTS:
            self.polls.labels(result=result)
        for kind in FailureKind:
            self.poll_failures.labels(kind=kind.value)
        for result in ("applied", "refused"):
            self.reloads.labels(result=result)

    def channels(self, names: list[str]) -> None:
        """Start each configured channel's series at 0, so a rate() has a first point."""
        for name in names:
            for outcome in OUTCOMES:
                self.notifications.labels(channel=name, outcome=outcome)

    def observe_poll(self, report: PollReport) -> None:
        """Count a written batch of polls (see `Poller.on_polled`)."""
        fetched = report.feeds_polled - report.feeds_failed - report.not_modified
        self.polls.labels(result="fetched").inc(max(fetched, 0))
        self.polls.labels(result="not_modified").inc(report.not_modified)
        # A failed discovery is a failed poll of the subscription's page.
        self.polls.labels(result="failed").inc(report.feeds_failed + report.discovery_failed)
        for kind, count in count_kinds(report.errors).items():
            self.poll_failures.labels(kind=kind).inc(count)
        for seconds in report.fetch_seconds:
            self.fetch_seconds.observe(seconds)
        self.new_entries.inc(report.new_entries)
        self.queued.inc(report.queued)

    def observe_delivery(self, channel: str, report: DeliveryReport) -> None:
        for outcome, count in (("sent", report.sent), ("failed", report.failed),
                               ("dead", report.dead)):
            self.notifications.labels(channel=channel, outcome=outcome).inc(count)

    def observe_state(self, snapshot: OpsSnapshot, disabled: dict[str, str],
                      channels: list[str], now: float) -> None:
        """Set the gauges from the state: every configured channel gets a value, 0 if idle."""
        for gauge in (self.queue_depth, self.dead_letters, self.oldest_queued,
                      self.channels_disabled):
            gauge.clear()
        for name in sorted(set(channels) | set(snapshot.queues)):
            queue = snapshot.queues.get(name)
            self.queue_depth.labels(channel=name).set(queue.waiting if queue else 0)
            self.dead_letters.labels(channel=name).set(queue.dead if queue else 0)
            oldest = queue.oldest_waiting if queue else None
            self.oldest_queued.labels(channel=name).set(
                max(now - oldest, 0.0) if oldest is not None else 0.0)
            self.channels_disabled.labels(channel=name).set(1 if name in disabled else 0)
        self.feeds_failing.set(snapshot.feeds_failing + len(snapshot.discoveries_failing))

    def render(self) -> bytes:
        return generate_latest(self.registry)
