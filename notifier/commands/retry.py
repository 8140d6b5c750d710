"""`notifier retry`: queue dead letters again and re-enable stopped channels."""

from __future__ import annotations

import argparse
import sys
import time

from notifier.commands.common import EXIT_OK, EXIT_USAGE, Command, load
from notifier.store import Store


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--channel", metavar="NAME", help="only this channel's")


def _retry(args: argparse.Namespace) -> int:
    config = load(args)
    channel: str | None = args.channel
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


COMMAND = Command("retry", "Queue dead-lettered notifications again.", _retry, _configure)
