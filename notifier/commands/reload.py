"""`notifier reload`: make the running daemon read its configuration file again.

The file is checked here first, without needing the secrets (a shell may lack the
service's environment file; the daemon checks them): a bad one is reported and nothing is
signalled. Then the daemon the state records is sent SIGHUP; it checks the file again
before applying it. The daemon notes its host, pid and process start time in the state
when it starts, so it is found whatever its working directory or service manager, and a
process that merely reused its pid is never signalled.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from pathlib import Path

from notifier.commands.common import EXIT_FAILED, EXIT_OK, Command, load
from notifier.store import Store
from notifier.store.statefile import not_created


def _reload(args: argparse.Namespace) -> int:
    # The secrets are the daemon's business: this shell may lack its environment file.
    config = load(args, require_secrets=False)
    fresh = not_created(config.state_url())
    if fresh is not None:
        print(f"notifier: state {fresh} does not exist: no daemon has run on it; start it "
              "with `notifier run`", file=sys.stderr)
        return EXIT_FAILED
    store = Store(config.state_url())
    try:
        store.migrate()
        daemon = store.daemon_record()
    finally:
        store.close()
    where = Store.describe_url(config.state_url())
    if daemon is None:
        print(f"notifier: no running daemon recorded in state {where}; start it with "
              "`notifier run`", file=sys.stderr)
        return EXIT_FAILED
    if daemon.host != socket.gethostname():
        print(f"notifier: the daemon runs on host {daemon.host} (pid {daemon.pid}); run "
              "`notifier reload` there", file=sys.stderr)
        return EXIT_FAILED
    if not _same_process(daemon.pid, daemon.started):
        print(f"notifier: the daemon recorded in state {where} (pid {daemon.pid}) is no "
              "longer running", file=sys.stderr)
        return EXIT_FAILED
    if Path(daemon.config) != config.path.resolve():
        print(f"notifier: note: the daemon reads {daemon.config}, not {config.path}; it "
              "reloads its own file", file=sys.stderr)
    os.kill(daemon.pid, signal.SIGHUP)
    print(f"asked the daemon (pid {daemon.pid}) to reload {daemon.config}; its log says "
          "what changed")
    return EXIT_OK


def _same_process(pid: int, started: str) -> bool:
    """The recorded process still runs: its start time matches where /proc tells it;
    elsewhere (no /proc) only whether some process has that pid."""
    from notifier.daemon import process_started

    if started:
        return process_started(pid) == started
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


COMMAND = Command(_reload)
