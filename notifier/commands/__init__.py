"""The `notifier` command: one module per subcommand, joined here into one parser.

A subcommand is a `Command` in `COMMANDS`: its module adds its own arguments and runs it,
so adding a command is a new module and one line below, not an edit of a shared function.

Exit status: 0 all well; 1 something failed at run time (a feed, a delivery); 2 the
configuration or the command line is wrong, or the state cannot be opened.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from collections.abc import Sequence

from notifier import __version__
from notifier.commands import (
    backup,
    check,
    demo,
    preview,
    reload,
    retry,
    run,
    status,
    subscriptions,
    test_channel,
)
from notifier.commands.common import (
    DEFAULT_CONFIG,
    EXIT_FAILED,
    EXIT_USAGE,
    Command,
)
from notifier.config import ConfigError
from notifier.logsetup import LOG_FORMATS, LogFormat, setup_logging
from notifier.store import StoreError

COMMANDS: tuple[Command, ...] = (
    run.COMMAND,
    check.COMMAND,
    status.COMMAND,
    retry.COMMAND,
    backup.COMMAND,
    reload.COMMAND,
    test_channel.COMMAND,
    subscriptions.ADD,
    subscriptions.IMPORT,
    subscriptions.EXPORT,
    preview.COMMAND,
    demo.COMMAND,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="notifier",
        description="Watches blog posts and comment threads and tells people, by email or "
                    "chat, when something new is said: a new post, a new comment, a reply.",
        epilog="Exit status: 0 success; 1 a feed or delivery failed, or notifications are "
               "still failing or a channel is disabled (run --once); 2 bad configuration, "
               "usage or state file. `notifier COMMAND "
               "-h` for each command. The README (also installed in share/doc/notifier/) "
               "describes the configuration format.")
    # The common options are accepted before the command and after it (`notifier -v run`,
    # `notifier run -v`): the top level keeps its values under `g_`, and `main` joins them.
    _common_options(parser, prefix="g_", takes_config=True)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        sub = subparsers.add_parser(command.name, help=command.help,
                                    description=command.description or command.help)
        _common_options(sub, prefix="", takes_config=command.takes_config)
        command.configure(sub)
        sub.set_defaults(run_command=command.run)
    return parser


def _common_options(parser: argparse.ArgumentParser, *, prefix: str,
                    takes_config: bool) -> None:
    parser.add_argument("--version", action="version", version=f"notifier {__version__}")
    if takes_config:
        parser.add_argument("-c", "--config", dest=f"{prefix}config", metavar="FILE",
                            help="configuration file (default: $NOTIFIER_CONFIG or "
                                 f"{DEFAULT_CONFIG})")
    parser.add_argument("-v", "--verbose", dest=f"{prefix}verbose", action="count", default=0,
                        help="debug detail in the log; -vv adds the libraries' debug output")
    parser.add_argument("-q", "--quiet", dest=f"{prefix}quiet", action="store_true",
                        help="warnings and errors only")
    parser.add_argument("--log-format", dest=f"{prefix}log_format", choices=LOG_FORMATS,
                        help="text (default) or json: one JSON object per line")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Off while importing (see `notifier.__main__`): what the imports built is frozen, so
    # the first collection does not walk it.
    gc.freeze()
    gc.enable()
    args.config = (getattr(args, "config", None) or args.g_config
                   or os.environ.get("NOTIFIER_CONFIG") or DEFAULT_CONFIG)
    args.verbose += args.g_verbose
    args.quiet = args.quiet or args.g_quiet
    fmt: LogFormat = args.log_format or args.g_log_format or "text"
    args.log_format = fmt
    setup_logging(args.verbose, args.quiet, fmt)
    try:
        code: int = args.run_command(args)
        sys.stdout.flush()  # here, where a reader that left (`| head`) is handled below
        return code
    except BrokenPipeError:
        # `notifier status | head` took what it wanted: no traceback, and nothing more is
        # written to the closed pipe at exit (Python's own advice for SIGPIPE).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except ConfigError as exc:
        _fatal(f"configuration is not valid:\n{exc}", fmt)
        return EXIT_USAGE
    except StoreError as exc:
        _fatal(str(exc), fmt)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_FAILED


def _fatal(message: str, fmt: str) -> None:
    """Why the command stops: plain text for a person; with `--log-format json`, one log
    record, so that a collector reading the daemon's output parses this line too."""
    if fmt == "json":
        logging.getLogger("notifier").error(message)
    else:
        print(f"notifier: {message}", file=sys.stderr)
