"""`notifier test-channel NAME`: one made-up notification straight through a channel."""

from __future__ import annotations

import argparse
import asyncio
import sys

from notifier.commands.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Command, load
from notifier.configproblems import close_match


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="the channel's name")


def _test_channel(args: argparse.Namespace) -> int:
    """Render and send a sample through the channel, bypassing the outbox (see `sample`)."""
    from notifier.channels.sample import describe, send_sample
    from notifier.delivery.channel import PermanentFailure
    from notifier.render import Renderer

    config = load(args)
    name: str = args.name
    channel = config.channels.get(name)
    if channel is None:
        print(f"notifier: no channel named {name!r}{close_match(name, list(config.channels))}",
              file=sys.stderr)
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


COMMAND = Command(_test_channel, _configure)
