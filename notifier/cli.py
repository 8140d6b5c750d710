"""The `notifier` command: run the daemon, check a config, read the state.

Exit status: 0 all well; 1 something failed at run time (a feed, a delivery); 2 the
configuration or the command line is wrong, or the state cannot be opened.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from notifier import __version__, redact
from notifier.cluster import disagreeing
from notifier.config import Config, ConfigError, load_config
from notifier.delivery.digest import DeliveryTiming
from notifier.store import ChannelStats, NodeState, Store, StoreError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_CONFIG = os.environ.get("NOTIFIER_CONFIG", "notifier.yaml")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="notifier",
        description="Watches blog posts and comment threads and tells people, by email or "
                    "chat, when something new is said: a new post, a new comment, a reply.",
        epilog="Exit status: 0 success, 1 a feed or delivery failed (run --once), "
               "2 bad configuration or usage. See README.md for the configuration format.")
    parser.add_argument("--version", action="version", version=f"notifier {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("-c", "--config", default=DEFAULT_CONFIG, metavar="FILE",
                         help="configuration file (default: $NOTIFIER_CONFIG or "
                              "notifier.yaml)")
        sub.add_argument("-v", "--verbose", action="count", default=0,
                         help="debug detail in the log")
        sub.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
        return sub

    run = add("run", "Run the daemon in the foreground until SIGTERM or SIGINT.")
    run.add_argument("--once", action="store_true",
                     help="poll every subscription once, deliver every pending notification, "
                          "then exit (non-zero if anything failed); for cron and tests")
    add("check", "Validate the configuration file and print a summary.")
    add("status", "Show each channel's queue and each feed's health from the state.")
    retry = add("retry", "Queue dead-lettered notifications again.")
    retry.add_argument("--channel", metavar="NAME", help="only this channel's")
    test_channel = add("test-channel", "Send a made-up test notification through one channel "
                                       "and say whether its server accepted it.")
    test_channel.add_argument("name", metavar="NAME", help="the channel's name")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose, args.quiet)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"notifier: configuration is not valid:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "check":
            return _check(config)
        if args.command == "run":
            return _run(config, once=args.once)
        if args.command == "status":
            return _status(config)
        if args.command == "retry":
            return _retry(config, args.channel)
        if args.command == "test-channel":
            return _test_channel(config, args.name)
    except StoreError as exc:
        print(f"notifier: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_FAILED
    raise AssertionError(args.command)


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(message)s",
                        datefmt="%Y-%m-%dT%H:%M:%S", stream=sys.stderr)
    # Third-party loggers print full request URLs, which can hold webhook tokens.
    for name in ("httpx", "httpcore", "apscheduler", "aiosmtpd", "mail.log"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


def _check(config: Config) -> int:
    from notifier.channels import CHANNEL_KINDS

    print(f"{config.path}: OK")
    print(f"  state: {Store.describe_url(config.state_url())}")
    print(f"  channels ({len(config.channels)}):")
    for name, channel in config.channels.items():
        summary = CHANNEL_KINDS[channel.type].summarize(channel)
        timing = _timing(channel)
        if channel.pace is not None:
            timing.append(f"at most one message per {_duration(channel.pace)}")
        if channel.burst_limit is not None:
            timing.append(f"more than {channel.burst_limit} at once as one summary")
        print(f"    {name}: {summary}{''.join(f'; {t}' for t in timing)}")
    print(f"  subscriptions ({len(config.subscriptions)}):")
    for sub in config.subscriptions:
        filters = []
        if sub.replies_to:
            filters.append(("replies (and their subthreads) to " if sub.include_subthread
                            else "replies to ") + ", ".join(sub.replies_to))
            if not sub.exclude_self:
                filters.append("their own comments too")
        if sub.watch == "threads":
            filters.append(f"posts of the last {_duration(config.threads_max_age(sub))}")
        if sub.notify_edits:
            filters.append("edits too")
        if sub.watch != "posts":
            filters.append(f"rescan every {_duration(config.rescan(sub))}")
        if sub.authors:
            filters.append("by " + ", ".join(sub.authors))
        if sub.exclude_authors:
            filters.append("not by " + ", ".join(sub.exclude_authors))
        filters += _timing(sub)
        extra = f" ({'; '.join(filters)})" if filters else ""
        print(f"    {sub.name}: {sub.watch} of {sub.url}{extra} every "
              f"{_duration(config.interval(sub))} -> {', '.join(sub.notify)}")
    return EXIT_OK


def _run(config: Config, *, once: bool) -> int:
    from notifier.daemon import run_forever, run_once

    if once:
        result = asyncio.run(run_once(config))
        for error in result.poll.errors + result.delivery.errors:
            print(f"notifier: {error}", file=sys.stderr)
        return EXIT_OK if result.ok else EXIT_FAILED
    asyncio.run(run_forever(config))
    return EXIT_OK


def _status(config: Config) -> int:
    store = Store(config.state_url())
    try:
        store.migrate()
        stats = store.channel_stats()
        health = store.feed_health()
        states = store.subscription_states()
        nodes = store.nodes(time.time())
    finally:
        store.close()
    now = time.time()
    print(f"state: {Store.describe_url(config.state_url())}")
    _print_nodes(config, nodes, now)
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
        when = _ago(now, feed.last_polled) if feed.last_polled else "never polled"
        state = (f"failing x{feed.error_count}: {feed.last_error}" if feed.last_error
                 else f"ok ({feed.last_status})" if feed.last_status else "waiting")
        by = f" by {feed.polled_by}" if feed.polled_by and len(nodes) > 1 else ""
        now_by = f"; being polled by {feed.claimed_by}" if feed.claimed_by else ""
        print(f"  {feed.url}\n    {state}; polled {when}{by}; next in "
              f"{_duration(max(feed.next_due - now, 0))}{now_by}; {feed.entries} entries "
              f"seen; for {', '.join(feed.subscriptions) or 'no subscription'}")
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


def _print_nodes(config: Config, nodes: list[NodeState], now: float) -> None:
    """The nodes sharing this state, from their heartbeats: who is alive, who does what."""
    if not nodes:
        return
    odd = {n.name for n in disagreeing(nodes, now)}
    mine = config.subscriptions_hash()
    print("nodes (a node's feeds and channels pass to the others one lease after its last "
          "heartbeat):")
    print(f"  {'name':<24} {'state':<8} {'heartbeat':<12} {'claimed':>7} {'polled':>7}  "
          "version  subscriptions")
    for n in nodes:
        state = ("stopped" if n.stopped is not None else "alive" if n.alive(now)
                 else "silent")
        subs = n.config_hash + (" (as this file)" if n.config_hash == mine
                                else " (not as this file)")
        if n.name in odd:
            subs += "  DIFFERS FROM THE OTHER NODES"
        beat = f"{_duration(max(now - n.heartbeat, 0))} ago"
        print(f"  {n.name:<24} {state:<8} {beat:<12} {n.feeds_claimed:>7} "
              f"{n.feeds_polled:>7}  {n.version:<7}  {subs}")
        if n.channels:
            print(f"    delivers to {', '.join(n.channels)}")


def _timing(timing: DeliveryTiming) -> list[str]:
    """`digest 0 8 * * * (Europe/Berlin)`, `quiet 22:00-07:00 (UTC)`, for `check`."""
    out = []
    if timing.digest is not None:
        out.append(f"digest {timing.digest} ({timing.timezone})")
    if timing.quiet_hours is not None:
        out.append(f"quiet {timing.quiet_hours.start}-{timing.quiet_hours.end} "
                   f"({timing.timezone})")
    return out


def _channel_notes(name: str, s: ChannelStats) -> list[str]:
    """What the counts alone do not say: when held rows go, digests sent, a stopped channel."""
    notes = []
    if s.held and s.next_release is not None:
        notes.append(f"{s.held} held for a digest or quiet hours; next release "
                     f"{_when(s.next_release)}")
    if s.digests:
        notes.append(f"{s.in_digests} of the sent went out in {s.digests} digest "
                     f"message{'s' if s.digests != 1 else ''}")
    if s.disabled_reason:
        waiting = s.queued + s.held
        notes.append(f"disabled: nothing is sent{f' ({waiting} waiting)' if waiting else ''} "
                     f"until `notifier retry --channel {name}`")
    return notes


def _retry(config: Config, channel: str | None) -> int:
    if channel is not None and channel not in config.channels:
        print(f"notifier: no channel named {channel!r}; channels: "
              f"{', '.join(config.channels)}", file=sys.stderr)
        return EXIT_USAGE
    store = Store(config.state_url())
    try:
        store.migrate()
        count = store.requeue_dead(time.time(), channel)
        for name in [channel] if channel else list(config.channels):
            store.enable_channel(name)
    finally:
        store.close()
    print(f"queued {count} dead-lettered notification{'s' if count != 1 else ''} again")
    return EXIT_OK


def _test_channel(config: Config, name: str) -> int:
    """Render and send a sample through the channel, bypassing the outbox (see `sample`)."""
    from notifier.channels.sample import describe, send_sample
    from notifier.delivery.channel import PermanentFailure
    from notifier.render import Renderer

    channel = config.channels.get(name)
    if channel is None:
        print(f"notifier: no channel named {name!r}; channels: "
              f"{', '.join(config.channels)}", file=sys.stderr)
        return EXIT_USAGE
    # The first subscription that notifies this channel, so its own templates are used too.
    subscription = next((s.name for s in config.subscriptions if name in s.notify), None)
    renderer = Renderer(config.base_dir, {s.name: s.templates for s in config.subscriptions})
    print(f"{name}: sending a test notification ({describe(channel)})")
    error = asyncio.run(send_sample(name, channel, renderer, subscription))
    if error is None:
        print(f"{name}: accepted by the server")
        return EXIT_OK
    if isinstance(error, PermanentFailure):
        kind = "refused for good" + (", the daemon would disable the channel"
                                     if error.disable else "")
    else:
        kind = "failed for now, the daemon would retry"
    print(f"{name}: NOT accepted ({kind}): {error}")
    return EXIT_FAILED


def _duration(seconds: float) -> str:
    """`45s`, `9m03s`, `10m`, `2h05m`, `3d`: at most two units, as a person reads them."""
    total = round(seconds)
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    for index, (unit, size) in enumerate(units[:-1]):
        if total >= size:
            whole, rest = divmod(total, size)
            small, small_size = units[index + 1]
            part = rest // small_size
            return f"{whole}{unit}{part:02d}{small}" if part else f"{whole}{unit}"
    return f"{total}s"


def _ago(now: float, then: float) -> str:
    return f"{_duration(max(now - then, 0))} ago ({_when(then)})"


def _when(then: float) -> str:
    return datetime.fromtimestamp(then, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


if __name__ == "__main__":
    raise SystemExit(main())
