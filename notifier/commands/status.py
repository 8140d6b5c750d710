"""`notifier status`: each channel's queue and each feed's health, from the state.

The table and `--json` are built from the same `StatusReport`, so they never disagree.
Times are absolute (a stored "retry in 593 s" is wrong a second later).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from notifier import redact
from notifier.cluster import disagreeing
from notifier.commands.common import EXIT_OK, Command, ago, at, iso, load, when
from notifier.config import Config
from notifier.failures import Failure
from notifier.store import ChannelStats, NodeState, Store
from notifier.store.statefile import not_created


@dataclass
class ChannelStatus:
    name: str
    configured: bool
    queued: int
    held: int
    sent: int
    failing: int
    dead: int
    last_error: str | None
    last_sent: float | None
    next_retry: float | None
    next_release: float | None
    disabled: str | None
    digests: int
    in_digests: int
    needs_variables: list[str] = field(default_factory=list)


@dataclass
class FeedStatus:
    url: str
    state: str  # ok | failing | waiting
    last_status: int | None
    last_error: str | None
    error_kind: str | None  # `failures.FailureKind`: network, timeout, http, not-a-feed...
    error_count: int
    last_polled: float | None
    next_poll: float
    entries_seen: int
    subscriptions: list[str]
    polled_by: str | None = None  # the node that wrote its last poll
    claimed_by: str | None = None  # the node polling it now
    notes: list[str] = field(default_factory=list)  # e.g. a subscription told nothing from it


@dataclass
class NodeStatus:
    """A node sharing the state (see README, "Several nodes"), from its heartbeats."""

    name: str
    state: str  # alive | silent (no heartbeat for a lease) | stopped
    heartbeat: float
    feeds_claimed: int
    feeds_polled: int
    channels: list[str]
    version: str
    subscriptions: str  # the hash of its subscriptions
    same_as_this_file: bool
    differs_from_others: bool


@dataclass
class DiscoveryStatus:
    subscription: str
    url: str
    error: str | None  # None: not polled yet
    failures: int = 0  # failed discoveries in a row
    next_try: float | None = None  # when discovery is tried again (backoff, Retry-After, 410)
    error_kind: str | None = None


@dataclass
class StatusReport:
    state: str
    generated: float
    channels: list[ChannelStatus]
    feeds: list[FeedStatus]
    discovery_failing: list[DiscoveryStatus]
    nodes: list[NodeStatus] = field(default_factory=list)
    state_missing: bool = False
    """A SQLite state not created yet: `status` reads nothing and creates nothing (the first
    `run` does, with its warning that every subscription starts with a baseline)."""


_TIMES = ("last_sent", "next_retry", "next_release", "last_polled", "next_poll", "generated",
          "next_try", "heartbeat")


def collect(config: Config, now: float | None = None) -> StatusReport:
    # A state not created yet is read as an empty one, not created here (`not_created`).
    missing = not_created(config.state_url()) is not None
    store = Store("sqlite://" if missing else config.state_url())
    try:
        store.migrate()
        stats = store.channel_stats()
        health = store.feed_health()
        states = store.subscription_states()
        watch = {sub.name: sub.watch for sub in config.subscriptions}
        wanted = {feed.url: _wanted(watch, feed.subscriptions) for feed in health}
        kinds = store.entry_kinds([url for url, by_sub in wanted.items()
                                   if len(set(by_sub.values())) > 1])
        nodes = store.nodes(time.time() if now is None else now)
    finally:
        store.close()
    channels = []
    for name in sorted(set(config.channels) | set(config.unresolved) | set(stats)):
        s = stats.get(name) or ChannelStats()
        channels.append(ChannelStatus(
            name=name, configured=name in config.channels or name in config.unresolved,
            queued=s.queued, held=s.held, sent=s.sent, failing=s.failed, dead=s.dead,
            last_error=s.last_error, last_sent=s.last_sent,
            next_retry=s.next_retry if s.failed else None, next_release=s.next_release,
            disabled=s.disabled_reason, digests=s.digests, in_digests=s.in_digests,
            needs_variables=list(config.unresolved.get(name, ()))))
    feeds = [FeedStatus(
        url=redact.short(redact.url(feed.url)),
        state="failing" if feed.last_failure else "ok" if feed.last_status else "waiting",
        last_status=feed.last_status,
        last_error=feed.last_failure.message if feed.last_failure else None,
        error_kind=feed.last_failure.kind.value if feed.last_failure else None,
        error_count=feed.error_count, last_polled=feed.last_polled, next_poll=feed.next_due,
        entries_seen=feed.entries, subscriptions=list(feed.subscriptions),
        polled_by=feed.polled_by, claimed_by=feed.claimed_by,
        notes=_deaf(wanted[feed.url], kinds.get(feed.url, {})))
        for feed in health]
    # A subscription whose feed was never found has no feed row: show it, or it vanishes.
    lost = []
    for sub in config.subscriptions:
        known = states.get(sub.name)
        if known is None or known.feed_id is None:
            failure = known.last_failure if known else None
            lost.append(DiscoveryStatus(
                sub.name, redact.short(redact.url(sub.url)),
                failure.message if failure else None,
                known.discovery_errors if known else 0, known.discovery_due if known else None,
                failure.kind.value if failure else None))
    generated = time.time() if now is None else now
    return StatusReport(Store.describe_url(config.state_url()), generated, channels, feeds,
                        lost, node_statuses(config, nodes, generated), state_missing=missing)


def _wanted(watch: Mapping[str, str], readers: Sequence[str]) -> dict[str, str]:
    """Each subscription reading the feed -> the kind of entry it is told about there.

    `watch: threads` reads its own (posts) feed for posts and the followed thread feeds,
    listed as "name (thread)", for comments.
    """
    wanted: dict[str, str] = {}
    for label in readers:
        name = label.removesuffix(" (thread)")
        if name not in watch:
            continue
        if label != name or watch[name] == "comments":
            wanted[name] = "comment"
        else:
            wanted[name] = "post"
    return wanted


def _deaf(wanted: dict[str, str], kinds: dict[str, int]) -> list[str]:
    """Why a subscription hears nothing from a feed its fellow subscriptions read as another
    kind: the document decided (see `poll.decide.deaf_note`), and nothing in it is its kind."""
    if not sum(kinds.values()):
        return []
    notes = []
    for name, kind in sorted(wanted.items()):
        if kinds.get(kind):
            continue
        other = "comment" if kind == "post" else "post"
        notes.append(f"{name} watches {kind}s but this feed's entries were read as "
                     f"{other}s (its subscriptions watch different kinds, so the feed "
                     f"decided): {name} is told nothing from it; give it a feed of {kind}s, "
                     f"or watch {other}s")
    return notes


def node_statuses(config: Config, nodes: list[NodeState], now: float) -> list[NodeStatus]:
    odd = {n.name for n in disagreeing(nodes, now)}
    mine = config.subscriptions_hash()
    return [NodeStatus(
        name=n.name,
        state="stopped" if n.stopped is not None else "alive" if n.alive(now) else "silent",
        heartbeat=n.heartbeat, feeds_claimed=n.feeds_claimed, feeds_polled=n.feeds_polled,
        channels=list(n.channels), version=n.version, subscriptions=n.config_hash,
        same_as_this_file=n.config_hash == mine, differs_from_others=n.name in odd)
        for n in nodes]


def as_json(report: StatusReport) -> str:
    def convert(value: object, key: str = "") -> object:
        if isinstance(value, dict):
            return {k: convert(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(v) for v in value]
        if key in _TIMES and isinstance(value, float | int):
            return iso(float(value))
        return value

    return json.dumps(convert(asdict(report)), indent=2, ensure_ascii=False)


def print_table(report: StatusReport) -> None:
    now = report.generated
    print(f"state: {report.state}" + (" (not created yet: `notifier run` creates it; nothing "
                                      "polled or sent so far)" if report.state_missing else ""))
    print("channels (notifications: one per comment per channel, however many subscriptions "
          "matched it):")
    print(f"  {'name':<16} {'queued':>7} {'held':>7} {'sent':>7} {'failing':>7} {'dead':>7}  "
          "last error")
    for c in report.channels:
        note = "" if c.configured else "  (not in the configuration)"
        error = c.last_error or "-"
        if c.disabled:
            error = f"DISABLED: {c.disabled}"
        print(f"  {c.name:<16} {c.queued:>7} {c.held:>7} {c.sent:>7} {c.failing:>7} "
              f"{c.dead:>7}  {error}{note}")
        for line in _channel_notes(c, now):
            print(f"    {line}")
    print("feeds:")
    for feed in report.feeds:
        polled = ago(now, feed.last_polled) if feed.last_polled else "never polled"
        state = (f"failing x{feed.error_count}: {_error(feed.last_error, feed.error_kind)}"
                 if feed.state == "failing"
                 else f"ok ({feed.last_status})" if feed.state == "ok" else "waiting")
        by = f" by {feed.polled_by}" if feed.polled_by and len(report.nodes) > 1 else ""
        busy = f"; being polled by {feed.claimed_by}" if feed.claimed_by else ""
        print(f"  {feed.url}\n    {state}; polled {polled}{by}; next poll "
              f"{at(now, feed.next_poll)}{busy}; {feed.entries_seen} entries seen; "
              f"for {', '.join(feed.subscriptions) or 'no subscription'}")
        for note in feed.notes:
            print(f"    NOTE: {note}")
    if report.discovery_failing:
        print("subscriptions without a feed:")
        for lost in report.discovery_failing:
            if lost.error is None:
                print(f"  {lost.subscription}: {lost.url}\n    not discovered yet")
                continue
            retry = f"; next try {at(now, lost.next_try)}" if lost.next_try is not None else ""
            print(f"  {lost.subscription}: {lost.url}\n    discovery failing "
                  f"x{lost.failures}: {_error(lost.error, lost.error_kind)}{retry}")
    print_nodes(report.nodes, now)


def print_nodes(nodes: list[NodeStatus], now: float) -> None:
    """Who shares this state and does what; a node that ran on it has a row (on SQLite
    until a later run finds it is no feed's last poller, `Store.release_node`)."""
    if not nodes:
        return
    print("nodes (a node's feeds and channels pass to the others one lease after its last "
          "heartbeat):")
    print(f"  {'name':<24} {'state':<8} {'heartbeat':<14} {'claimed':>7} {'polled':>7}  "
          "version  subscriptions")
    for n in nodes:
        subs = n.subscriptions + (" (as this file)" if n.same_as_this_file
                                  else " (not as this file)")
        if n.differs_from_others:
            subs += "  DIFFERS FROM THE OTHER NODES"
        beat = f"{max(now - n.heartbeat, 0):.0f} s ago"
        print(f"  {n.name:<24} {n.state:<8} {beat:<14} {n.feeds_claimed:>7} "
              f"{n.feeds_polled:>7}  {n.version:<7}  {subs}")
        if n.channels:
            print(f"    delivers to {', '.join(n.channels)}")


def _error(message: str | None, kind: str | None) -> str:
    """The message, then its kind, and whether waiting can help: `status` is where people
    look for what they must fix."""
    failure = Failure.stored(kind, message)
    if failure is None:
        return "-"
    hint = "; waiting will not fix it" if failure.kind.needs_a_person else ""
    return f"{failure.message} [{failure.kind}{hint}]"


def _channel_notes(c: ChannelStatus, now: float) -> list[str]:
    """What the counts alone do not say: next attempts, held rows, digests, a stopped channel."""
    notes = []
    if c.failing and c.next_retry is not None and not c.disabled:
        notes.append(f"{c.failing} failing; next attempt {at(now, c.next_retry)}; "
                     f"`notifier retry --now --channel {c.name}` tries them now")
    if c.held and c.next_release is not None:
        notes.append(f"{c.held} held for a digest or quiet hours; next release "
                     f"{when(c.next_release)}")
    if c.digests:
        notes.append(f"{c.in_digests} of the sent went out in {c.digests} digest "
                     f"message{'s' if c.digests != 1 else ''}")
    if c.disabled:
        waiting = c.queued + c.held + c.dead
        notes.append(f"disabled: nothing is sent{f' ({waiting} kept)' if waiting else ''} "
                     f"until `notifier retry --now --channel {c.name}`")
    if c.needs_variables:
        notes.append(f"settings need {', '.join(c.needs_variables)} (not set in this shell)")
    return notes


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="the same facts as JSON, times in ISO 8601 UTC")


def _status(args: argparse.Namespace) -> int:
    report = collect(load(args, require_secrets=False))
    if args.json:
        print(as_json(report))
    else:
        print_table(report)
    return EXIT_OK


COMMAND = Command(_status, _configure)
