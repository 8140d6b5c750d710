"""The daemon beside hostile feeds: peak memory, the healthy feed's latency, hits per route.

    .venv/bin/python benchmarks/hostile.py [--seconds 60] [--interval 5] [--keep]

A local HTTP server (loopback only) serves one healthy WordPress-shaped comment feed and
the hostile routes below; `notifier run` polls them all as a subprocess with a webhook
channel to a local receiver. Every few seconds a new comment is added to the healthy feed
and the time until its webhook arrives is taken. The process tree's resident memory (the
daemon and its parse workers, from /proc) is sampled every 0.2 s. At the end it prints the
peak and final memory, the healthy latencies, how often each hostile route was asked for,
and how long SIGTERM took. Figures, not a pass/fail test: see tests/test_hostile_feeds.py
for the behaviour asserted.
"""

from __future__ import annotations

import argparse
import gzip
import http.server
import json
import os
import shutil
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HEALTHY = "/healthy/feed/atom/"


def comment_feed(post: str, count: int, author: str = "Reader {n}") -> bytes:
    entries = "".join(
        f"<entry><title>By: Reader {n}</title><author><name>{author.format(n=n)}</name>"
        f"</author><id>{post}#comment-{n}</id><link rel=\"alternate\" href=\"{post}#comment-{n}\"/>"
        f"<published>2024-05-01T{10 + n // 3600 % 10:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z"
        f"</published><content type=\"html\">Comment number {n}.</content></entry>"
        for n in range(count, 0, -1))
    return (f'<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            f"<title>Comments on a post</title><id>{post}feed/atom/</id>"
            f"<updated>2024-05-01T10:00:00Z</updated>{entries}</feed>").encode()


def rss_author(author: str, encoding: str) -> bytes:
    items = "".join(f"<item><title>x</title><guid>http://b.test/a#c{n}</guid>"
                    f"<author>{author}</author></item>" for n in range(3))
    return (f'<?xml version="1.0" encoding="{encoding}"?><rss version="2.0"><channel>'
            f"<title>a</title>{items}</channel></rss>").encode(encoding.lower())


def hostile_routes() -> dict[str, tuple[int, dict[str, str], Any]]:
    """path -> (status, headers, body bytes or a callable writing to the handler)."""
    atom = {"Content-Type": "application/atom+xml"}
    bomb = gzip.compress(b"<" * (200 * 1024 * 1024), 9)
    laughs = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
              + b"".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
                         .encode() for i in range(1, 10))
              + b']><rss><channel><title>&lol9;</title></channel></rss>')
    routes: dict[str, tuple[int, dict[str, str], Any]] = {
        "/gzip-bomb/": (200, {**atom, "Content-Encoding": "gzip"}, bomb),
        "/big-50mb/": (200, atom, b"<feed>" + b"x" * (50 * 1024 * 1024)),
        "/endless/": (200, atom, "endless"),
        "/drip/": (200, atom, "drip"),
        "/redirect-loop/": (302, {"Location": "/redirect-loop/"}, b""),
        "/file-redirect/": (302, {"Location": "file:///etc/passwd"}, b""),
        "/gopher-redirect/": (302, {"Location": "gopher://127.0.0.1:70/"}, b""),
        "/billion-laughs/": (200, atom, laughs),
        "/xxe/": (200, atom, b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM '
                             b'"file:///etc/passwd">]><rss><channel><title>&x;</title>'
                             b"</channel></rss>"),
        "/deep-xml/": (200, atom, b"<rss>" + b"<a>" * 100_000 + b"</rss>"),
        "/lying-encoding/": (200, {"Content-Type": "application/atom+xml; charset=utf-16"},
                             comment_feed("http://b.test/lie/", 3)),
        "/author-bomb/": (200, {"Content-Type": "application/rss+xml"},
                          rss_author("a" * 200_000, "UTF-8")),
        "/author-bomb-utf16/": (200, {"Content-Type": "application/rss+xml"},
                                rss_author("a" * 200_000, "UTF-16")),
        "/100k-entries/": (200, atom, comment_feed("http://b.test/many/", 100_000)),
        "/429/": (429, {"Retry-After": "3600"}, b""),
        "/503/": (503, {"Retry-After": "3600"}, b""),
        "/410/": (410, {}, b""),
        "/500/": (500, {}, b""),
        "/slow-page/": (200, {"Content-Type": "text/html"}, "drip"),
        "/html-page/": (200, {"Content-Type": "text/html"}, b"<html><body>no feed</body></html>"),
        "/nul/": (200, atom, comment_feed("http://b.test/nul/", 3, "Reader &#0; {n}")),
        "/surrogate/": (200, atom, comment_feed("http://b.test/sur/", 3, "Reader &#xD800; {n}")),
        "/bidi/": (200, atom, comment_feed("http://b.test/bidi/", 3, "\u202eReader {n}")),
        "/long-guid/": (200, atom, comment_feed("http://b.test/g/?" + "q" * 20_000, 3)),
        "/garbage/": (200, atom, os.urandom(100_000)),
        "/empty/": (200, atom, b""),
        "/json/": (200, {"Content-Type": "application/json"}, b'{"a": [1, 2, 3]}'),
        "/crlf-title/": (200, atom, comment_feed("http://b.test/crlf/", 3,
                                                  "Reader\r\nBcc: x@y.z {n}")),
        "/flood/": (200, atom, comment_feed("http://b.test/flood/", 5001)),
    }
    return routes


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(routes: dict[str, tuple[int, dict[str, str], Any]], healthy: dict[str, bytes],
          hits: Counter[str], stopping: threading.Event) -> Server:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            hits[path] += 1
            if path == HEALTHY:
                body = healthy["body"]
                self.send_response(200)
                self.send_header("Content-Type", "application/atom+xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            status, headers, body = routes.get(path, (404, {}, b""))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            try:
                if isinstance(body, bytes):
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_header("Connection", "close")
                self.end_headers()
                pause = 1.0 if body == "drip" else 0.0
                chunk = b"<" if body == "drip" else b"<x>" * 4096
                while not stopping.is_set():
                    self.wfile.write(chunk)
                    if pause and stopping.wait(pause):
                        return
            except OSError:
                return

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Receiver(http.server.BaseHTTPRequestHandler):
    arrived: dict[int, float] = {}

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        text = json.loads(body).get("entry", {}).get("text", "")
        if text.startswith("Comment number "):
            number = int(text.split()[2].rstrip("."))
            Receiver.arrived.setdefault(number, time.monotonic())
        self.send_response(204)
        self.end_headers()


def tree_rss(pid: int) -> dict[int, int]:
    """Resident bytes of `pid` and of each of its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    sizes: dict[int, int] = {}
    todo = [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes[current] = int(line.split()[1]) * 1024
        except OSError:
            pass
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir and its logs")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="notifier-hostile-"))
    stopping = threading.Event()
    hits: Counter[str] = Counter()
    count = 1
    healthy = {"body": comment_feed("http://b.test/healthy/", count)}
    routes = hostile_routes()
    server = serve(routes, healthy, hits, stopping)
    receiver = Server(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    # The healthy feed is named by another host name: politeness limits connections per
    # host (2), and a blog on the same host as 29 hostile routes shares their slots.
    healthy_origin = origin.replace("127.0.0.1", "localhost")
    subs = [{"name": "healthy", "url": healthy_origin + HEALTHY, "watch": "comments",
             "notify": ["hook"]}]
    subs += [{"name": path.strip("/"), "url": origin + path, "watch": "comments",
              "notify": ["hook"]} for path in routes]
    config = work / "notifier.yaml"
    config.write_text(json.dumps({
        "state": "sqlite:///state.db",
        "defaults": {"interval": f"{args.interval:g}s", "jitter": 0},
        "channels": {"hook": {"type": "webhook", "format": "json",
                              "url": f"http://127.0.0.1:{receiver.server_address[1]}/hook"}},
        "subscriptions": subs}), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = (work / "daemon.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "notifier", "run", "-c", str(config)],
                            stdout=log, stderr=log, env=env, start_new_session=True)
    peak, added = 0, {}
    daemon_peak, worker_peak = 0, 0
    at_peak: list[int] = []
    started = time.monotonic()
    next_comment = started + 2 * args.interval
    try:
        while time.monotonic() - started < args.seconds:
            sizes = tree_rss(proc.pid)
            if sum(sizes.values()) > peak:
                peak = sum(sizes.values())
                at_peak = [sizes.get(proc.pid, 0),
                           *sorted((v for k, v in sizes.items() if k != proc.pid), reverse=True)]
            daemon_peak = max(daemon_peak, sizes.get(proc.pid, 0))
            worker_peak = max([worker_peak, *(v for k, v in sizes.items() if k != proc.pid)])
            if time.monotonic() >= next_comment:
                count += 1
                healthy["body"] = comment_feed("http://b.test/healthy/", count)
                added[count] = time.monotonic()
                next_comment += args.interval * 1.5
            time.sleep(0.2)
        final = sum(tree_rss(proc.pid).values())
        term = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        stop_seconds = time.monotonic() - term
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        stopping.set()
        server.shutdown()
        receiver.shutdown()
    latencies = [Receiver.arrived[n] - added[n] for n in added if n in Receiver.arrived]
    missed = [n for n in added if n not in Receiver.arrived]
    mib = 1024 * 1024
    print(f"{len(routes)} hostile routes beside one healthy feed, interval {args.interval:g} s, "
          f"{args.seconds:g} s")
    print(f"process tree RSS: peak {peak / mib:.0f} MiB, final {final / mib:.0f} MiB "
          f"(daemon alone: peak {daemon_peak / mib:.0f} MiB; largest parse worker: peak "
          f"{worker_peak / mib:.0f} MiB)")
    print("  at the peak: daemon " + ", workers ".join(
        "+".join(f"{size / mib:.0f}" for size in part)
        for part in ([at_peak[0]], at_peak[1:]) if part) + " MiB")
    if latencies:
        print(f"healthy comment -> webhook: {len(latencies)} of {len(added)} arrived; "
              f"median {sorted(latencies)[len(latencies) // 2]:.1f} s, "
              f"max {max(latencies):.1f} s" + (f"; not arrived: {missed}" if missed else ""))
    else:
        print(f"healthy comment -> webhook: none of {len(added)} arrived")
    print(f"SIGTERM to exit: {stop_seconds:.1f} s (exit status {proc.returncode})")
    print("hits per route:")
    for path in [HEALTHY, *routes]:
        print(f"  {hits[path]:>5}  {path}")
    if args.keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
