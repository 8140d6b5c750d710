"""`notifier demo`: the whole pipeline once, on this machine, in a few seconds.

A loopback HTTP server inside the command serves a real WordPress comment feed (bundled);
a throw-away configuration subscribes to it with a console channel, and the real
`run --once` path polls it twice: the first poll records a baseline, then one new comment
arrives and its notification is printed. Nothing leaves the machine, nothing is kept.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from notifier.commands.common import EXIT_FAILED, EXIT_OK, Command
from notifier.config import load_config
from notifier.demo import FEED_PATH, stage


class _Feed:
    """What the server answers: the current stage of the comment feed."""

    def __init__(self) -> None:
        self.step = 0
        self.origin = ""


def _server(feed: _Feed) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != FEED_PATH:
                self.send_error(404)
                return
            body = stage(feed.step, feed.origin)
            self.send_response(200)
            self.send_header("Content-Type", "application/atom+xml; charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # the demo's own output is the point

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return server


def _demo(args: argparse.Namespace) -> int:
    from notifier.commands.run import run_once

    if not args.verbose:  # the demo's story is on stdout; the log would drown it
        logging.getLogger().setLevel(logging.WARNING)
    feed = _Feed()
    server = _server(feed)
    feed.origin = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="demo-blog", daemon=True)
    thread.start()
    try:
        with tempfile.TemporaryDirectory(prefix="notifier-demo-") as folder:
            path = Path(folder) / "notifier.yaml"
            path.write_text(f"""\
state: sqlite:///state.db
channels:
  terminal: {{type: console, stream: stdout}}
subscriptions:
  - name: demo-thread
    url: {feed.origin}{FEED_PATH}
    watch: comments
    notify: [terminal]
""", encoding="utf-8")
            config = load_config(path, {})
            print(f"A demo blog is running at {feed.origin}; notifier follows the comments "
                  "of its post \"Why Defend Stalin?\" and prints notifications here.\n")
            print("1. First poll:")
            if run_once(config) != EXIT_OK:
                return EXIT_FAILED
            print("\n2. Someone comments on the post; the next poll finds it:\n")
            feed.step = 1
            if run_once(config) != EXIT_OK:
                return EXIT_FAILED
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    print("\nThat was the real pipeline (fetch, parse, decide, record, deliver). Next: copy "
          "config.example.yaml to notifier.yaml, put in your blogs and an email or chat "
          "channel, then `notifier check` and `notifier run --once`.")
    return EXIT_OK


COMMAND = Command(_demo, takes_config=False)
