"""`notifier retry`: queue dead letters again, re-enable stopped channels, and with `--now`
make failing notifications due at once.

It only writes the state, so it needs no channel secrets: a running daemon reads due rows at
each delivery tick (every few seconds) and sends them; without one, `notifier run --once`.
"""

from __future__ import annotations

import argparse
import sys
import time

from notifier.commands.common import EXIT_OK, EXIT_USAGE, Command, load
from notifier.configproblems import close_match
from notifier.store import Store
from notifier.store.statefile import not_created


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--channel", metavar="NAME", help="only this channel's")
    parser.add_argument("--now", action="store_true",
                        help="also make failing notifications due now instead of at their "
                             "next scheduled attempt")


def _retry(args: argparse.Namespace) -> int:
    config = load(args, require_secrets=False)
    channel: str | None = args.channel
    known = [*config.channels, *config.unresolved]
    if channel is not None and channel not in known:
        print(f"notifier: no channel named {channel!r}{close_match(channel, known)}",
              file=sys.stderr)
        return EXIT_USAGE
    now = time.time()
    fresh = not_created(config.state_url())
    if fresh is not None:
        print(f"nothing to retry: state {fresh} does not exist yet (`notifier run` creates "
              "it)")
        return EXIT_OK
    store = Store(config.state_url())
    try:
        store.migrate()
        disabled = store.disabled_channels()
        if args.now:
            due, dead = store.retry_now(now, channel)
        else:
            due, dead = 0, store.requeue_dead(now, channel)
        enabled = [name for name in ([channel] if channel else known) if name in disabled]
        for name in enabled:
            store.enable_channel(name)
    finally:
        store.close()
    where = f" for {channel}" if channel else ""
    parts = [f"queued {dead} dead-lettered notification{'s' if dead != 1 else ''} again"]
    if args.now:
        parts.insert(0, f"{due} failing notification{'s' if due != 1 else ''} due now")
    print("; ".join(parts) + where)
    if enabled:
        print(f"re-enabled {', '.join(enabled)}")
    if due or dead:
        print("a running daemon sends them within seconds; otherwise run "
              "`notifier run --once`")
    return EXIT_OK


COMMAND = Command(_retry, _configure)
