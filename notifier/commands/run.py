"""`notifier run`: the daemon in the foreground, or one pass with `--once`."""

from __future__ import annotations

import argparse
import asyncio
import sys

from notifier.commands.common import EXIT_FAILED, EXIT_OK, Command, load


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true",
                        help="poll every subscription once, deliver every pending "
                             "notification, then exit (non-zero if anything failed); for "
                             "cron and tests")


def _run(args: argparse.Namespace) -> int:
    from notifier.daemon import run_forever, run_once

    config = load(args)
    if args.once:
        result = asyncio.run(run_once(config))
        for error in result.poll.errors + result.delivery.errors:
            print(f"notifier: {error}", file=sys.stderr)
        return EXIT_OK if result.ok else EXIT_FAILED
    asyncio.run(run_forever(config))
    return EXIT_OK


COMMAND = Command("run", "Run the daemon in the foreground until SIGTERM or SIGINT.", _run,
                  _configure)
