"""The `notifier` command: one module per subcommand, joined here into one parser.

A subcommand is a line in `COMMANDS` (its name and help, as `notifier --help` lists them,
and the module that holds its `Command`); the module adds its own arguments and runs it, so
adding a command is a new module and one line below, not an edit of a shared function.

A command's module is imported only when that command is used (run, or its help shown):
`notifier run` does not load the templates of `preview`, the web server of `demo` or the
OPML reader of `import`, and `notifier --help` loads none of them. `build_parser()` fills in
every command at once, for whoever reads the whole parser (the documentation's tests).

Exit status: 0 all well; 1 something failed at run time (a feed, a delivery); 2 the
configuration or the command line is wrong, or the state cannot be opened.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

from notifier import __version__
from notifier.commands.common import DEFAULT_CONFIG, EXIT_FAILED, EXIT_USAGE, Command
from notifier.errors import NotifierError
from notifier.logsetup import LOG_FORMATS, LogFormat, setup_logging


class Listed(NamedTuple):
    """A command as `notifier --help` lists it, and where its `Command` lives."""

    name: str
    help: str
    module: str
    """`notifier.commands.<module>`, imported when the command is used."""
    attribute: str = "COMMAND"

    def load(self) -> Command:
        module = importlib.import_module(f"notifier.commands.{self.module}")
        command: Command = getattr(module, self.attribute)
        return command


COMMANDS: tuple[Listed, ...] = (
    Listed("run", "Run the daemon in the foreground until SIGTERM or SIGINT; SIGHUP makes "
                  "it read its configuration again.", "run"),
    Listed("check", "Validate the configuration file and print a summary (with -q, only "
                    "problems).", "check"),
    Listed("status", "Show each channel's queue and each feed's health from the state; "
                     "works without the channels' secrets.", "status"),
    Listed("retry", "Queue dead-lettered notifications again and re-enable disabled "
                    "channels; with --now, send failing ones now instead of at their next "
                    "attempt.", "retry"),
    Listed("backup", "Copy the SQLite state to DEST, consistently, also while the daemon "
                     "runs.", "backup"),
    Listed("reload", "Make the running daemon read its configuration file again (as SIGHUP "
                     "does), after checking the file here first.", "reload"),
    Listed("test-channel", "Send a made-up test notification through one channel and say "
                           "whether its server accepted it.", "test_channel"),
    Listed("add", "Discover a blog's or post's feed, say what will be followed, and append "
                  "the subscription to the configuration file.", "subscriptions", "ADD"),
    Listed("import", "Append a subscription for every feed of an OPML file (a feed "
                     "reader's export) to the configuration file.", "subscriptions",
           "IMPORT"),
    Listed("export", "Write the subscriptions as OPML 2.0 to stdout, for a feed reader.",
           "subscriptions", "EXPORT"),
    Listed("preview", "Show the notification the newest entry of a subscription would "
                      "produce in each of its channels; sends nothing.", "preview"),
    Listed("demo", "Poll a bundled demo blog on this machine through the real pipeline and "
                   "print the notification it produces (no internet, nothing kept).",
           "demo"),
)


class _CommandParser(argparse.ArgumentParser):
    """One command's parser, completed from its module the first time it is used: to parse
    its part of the command line, or to show its help."""

    def __init__(self, *args: Any, listed: Listed | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listed = listed

    def complete(self) -> None:
        if self._listed is None:
            return
        listed, self._listed = self._listed, None
        command = listed.load()
        self.description = command.description or listed.help
        _common_options(self, prefix="", takes_config=command.takes_config)
        command.configure(self)
        self.set_defaults(run_command=command.run)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        self.complete()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self.complete()
        return super().format_usage()

    def format_help(self) -> str:
        self.complete()
        return super().format_help()


def build_parser(*, lazy: bool = False) -> argparse.ArgumentParser:
    """The whole command line; with `lazy`, each command's module is imported when that
    command is used (`main`), not before."""
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
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                       parser_class=_CommandParser)
    for listed in COMMANDS:
        sub = subparsers.add_parser(listed.name, help=listed.help, listed=listed)
        if not lazy:
            sub.complete()
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
    args = build_parser(lazy=True).parse_args(argv)
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
    except NotifierError as exc:
        # A bad file or state, left to this function to report. Their modules are imported
        # here, not at start: `notifier --help` needs neither.
        from notifier.config import ConfigError
        from notifier.store import StoreError

        if isinstance(exc, ConfigError):
            _fatal(f"configuration is not valid:\n{exc}", fmt)
        elif isinstance(exc, StoreError):
            _fatal(str(exc), fmt)
        else:
            raise
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
