"""`notifier status`: each channel's queue and each feed's health, from the state."""

from __future__ import annotations

import argparse
import time

from notifier import redact
from notifier.commands.common import EXIT_OK, Command, ago, duration, load, when
from notifier.store import ChannelStats, Store


def _status(args: argparse.Namespace) -> int:
    config = load(args)
    store = Store(config.state_url())
    try:
        store.migrate()
        stats = store.channel_stats()
        health = store.feed_health()
        states = store.subscription_states()
    finally:
        store.close()
    now = time.time()
    print(f"state: {Store.describe_url(config.state_url())}")
    print("channels (notifications: one per comment per channel, however many subscriptions "
          "matched it):")
    print(f"  {'name':<16} {'queued':>7} {'held':>7} {'sent':>7} {'failing':>7} {'dead':>7}  "
          "last error")
    for name in sorted(set(config.channels) | set(stats)):
        s = stats.get(name) or ChannelStats()
        note = "" if name in config.channels else "  (not in the configuration)"
        error = s.last_error or "-"
        if s.disabled_reason:
            error = f"DISABLED: {s.disabled_reason}"
        print(f"  {name:<16} {s.queued:>7} {s.held:>7} {s.sent:>7} {s.failed:>7} {s.dead:>7}  "
              f"{error}{note}")
        for line in _channel_notes(name, s):
            print(f"    {line}")
    print("feeds:")
    for feed in health:
        polled = ago(now, feed.last_polled) if feed.last_polled else "never polled"
        state = (f"failing x{feed.error_count}: {feed.last_error}" if feed.last_error
                 else f"ok ({feed.last_status})" if feed.last_status else "waiting")
        print(f"  {feed.url}\n    {state}; polled {polled}; next in "
              f"{duration(max(feed.next_due - now, 0))}; {feed.entries} entries seen; "
              f"for {', '.join(feed.subscriptions) or 'no subscription'}")
    # A subscription whose feed was never found has no feed row: show it, or it vanishes.
    lost = [sub for sub in config.subscriptions
            if (known := states.get(sub.name)) is None or known.feed_id is None]
    if lost:
        print("subscriptions without a feed:")
        for sub in lost:
            known = states.get(sub.name)
            reason = known.last_error if known and known.last_error else "not polled yet"
            print(f"  {sub.name}: {redact.feed_url(sub.url)}\n    discovery failing: {reason}")
    return EXIT_OK


def _channel_notes(name: str, s: ChannelStats) -> list[str]:
    """What the counts alone do not say: when held rows go, digests sent, a stopped channel."""
    notes = []
    if s.held and s.next_release is not None:
        notes.append(f"{s.held} held for a digest or quiet hours; next release "
                     f"{when(s.next_release)}")
    if s.digests:
        notes.append(f"{s.in_digests} of the sent went out in {s.digests} digest "
                     f"message{'s' if s.digests != 1 else ''}")
    if s.disabled_reason:
        waiting = s.queued + s.held
        notes.append(f"disabled: nothing is sent{f' ({waiting} waiting)' if waiting else ''} "
                     f"until `notifier retry --channel {name}`")
    return notes


COMMAND = Command("status", "Show each channel's queue and each feed's health from the "
                            "state.", _status)
