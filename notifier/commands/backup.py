"""`notifier backup -c FILE DEST`: a consistent copy of the SQLite state, also while the
daemon runs (SQLite's online backup). Restoring is stopping the daemon and putting the copy
in the state's place (docs/operations.md, "Backup of the state")."""

from __future__ import annotations

import argparse
from pathlib import Path

from notifier.commands.common import EXIT_OK, Command, load
from notifier.store.statefile import backup, sqlite_path


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dest", metavar="DEST", type=Path,
                        help="the new file to write (never overwritten)")


def _backup(args: argparse.Namespace) -> int:
    config = load(args, require_secrets=False)
    size = backup(config.state_url(), args.dest)
    print(f"copied state {sqlite_path(config.state_url())} to {args.dest} ({size:,} bytes); "
          f"to restore: stop notifier, then copy {args.dest} over the state file")
    return EXIT_OK


COMMAND = Command(_backup, _configure)
