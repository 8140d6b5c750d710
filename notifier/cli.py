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

from notifier import __version__
from notifier.config import Config, ConfigError, load_config
from notifier.store import Store, StoreError

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
                         help="more log detail (-v info is the default for run; -vv debug)")
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
    except StoreError as exc:
        print(f"notifier: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_FAILED
    raise AssertionError(args.command)


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose >= 2 else logging.INFO)
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
        print(f"    {name}: {summary}")
    print(f"  subscriptions ({len(config.subscriptions)}):")
    for sub in config.subscriptions:
        filters = []
        if sub.replies_to:
            filters.append("replies to " + ", ".join(sub.replies_to))
        if sub.authors:
            filters.append("by " + ", ".join(sub.authors))
        if sub.exclude_authors:
            filters.append("not by " + ", ".join(sub.exclude_authors))
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
    finally:
        store.close()
    now = time.time()
    print(f"state: {Store.describe_url(config.state_url())}")
    print("channels:")
    print(f"  {'name':<16} {'queued':>7} {'sent':>7} {'failing':>7} {'dead':>7}  last error")
    for name in sorted(set(config.channels) | set(stats)):
        s = stats.get(name)
        note = "" if name in config.channels else "  (not in the configuration)"
        if s is None:
            print(f"  {name:<16} {0:>7} {0:>7} {0:>7} {0:>7}  -{note}")
            continue
        error = s.last_error or "-"
        if s.disabled_reason:
            error = f"DISABLED: {s.disabled_reason}"
        print(f"  {name:<16} {s.queued:>7} {s.sent:>7} {s.failed:>7} {s.dead:>7}  "
              f"{error}{note}")
    print("feeds:")
    for feed in health:
        when = _ago(now, feed.last_polled) if feed.last_polled else "never polled"
        state = (f"failing x{feed.error_count}: {feed.last_error}" if feed.last_error
                 else f"ok ({feed.last_status})" if feed.last_status else "waiting")
        print(f"  {feed.url}\n    {state}; polled {when}; next in "
              f"{_duration(max(feed.next_due - now, 0))}; {feed.entries} entries seen; "
              f"for {', '.join(feed.subscriptions) or 'no subscription'}")
    return EXIT_OK


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


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if (seconds >= size and seconds % size == 0) or seconds >= 10 * size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _ago(now: float, then: float) -> str:
    stamp = datetime.fromtimestamp(then, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{_duration(max(now - then, 0))} ago ({stamp})"


if __name__ == "__main__":
    raise SystemExit(main())
