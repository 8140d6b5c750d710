"""Many small WordPress-shaped comment feeds on one loopback server, every request timed.

`GET /feed/<i>/` answers the Atom comment feed of thread i (its newest 10 comments) with an
ETag, and 304 to a matching If-None-Match, as WordPress does. `add_comment(i)` gives thread
i one more comment. Each request is logged with the path and the time it arrived, so a test
can tell how often, and how close together, each feed was asked for. Threads in `held`
are answered only once `released` is set.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from tests.support.threaded import ThreadedHTTPService

WINDOW = 10
FIRST = 3  # comments every thread has before the test adds any
HOLD_LIMIT = 30.0  # seconds a held thread's answer waits at most for `released`


@dataclass(frozen=True, slots=True)
class Hit:
    thread: int
    at: float  # time.time() when the request arrived
    status: int


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        farm: FeedFarm = self.server.owner  # type: ignore[attr-defined]
        match = re.fullmatch(r"/feed/(\d+)/", self.path)
        if match is None or int(match.group(1)) >= farm.threads:
            self._send(404, b"not found", {})
            return
        thread = int(match.group(1))
        if farm.delay:
            time.sleep(farm.delay)
        if thread in farm.held:
            farm.released.wait(HOLD_LIMIT)
        etag, body = farm.answer(thread)
        status = 304 if self.headers.get("If-None-Match") == etag else 200
        farm.record(Hit(thread, time.time(), status))
        self._send(status, b"" if status == 304 else body,
                   {"ETag": etag, "Content-Type": "application/atom+xml; charset=UTF-8"})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)


class FeedFarm(ThreadedHTTPService):
    handler = _Handler
    thread_name = "feed-farm"

    def __init__(self, threads: int, delay: float = 0.0) -> None:
        super().__init__()
        self.threads = threads
        self.delay = delay
        self._lock = threading.Lock()
        self._count = [FIRST] * threads
        self._hits: list[Hit] = []
        self.held: frozenset[int] = frozenset()
        """Threads whose answers wait until `released` is set (at most `HOLD_LIMIT` s):
        a test that must act while a client is still polling keeps it polling."""
        self.released = threading.Event()

    def path(self, thread: int) -> str:
        return f"/feed/{thread}/"

    def add_comment(self, thread: int) -> int:
        """One more comment on `thread`; returns its number."""
        with self._lock:
            self._count[thread] += 1
            return self._count[thread]

    def record(self, hit: Hit) -> None:
        with self._lock:
            self._hits.append(hit)

    @property
    def hits(self) -> list[Hit]:
        with self._lock:
            return list(self._hits)

    def clear_hits(self) -> None:
        with self._lock:
            self._hits.clear()

    def answer(self, thread: int) -> tuple[str, bytes]:
        with self._lock:
            newest = self._count[thread]
        post = f"{self.origin}/{thread}/a-post/"
        entries = []
        for n in range(newest, max(newest - WINDOW, 0), -1):
            stamp = f"2026-01-01T{n // 60 % 24:02d}:{n % 60:02d}:00Z"
            entries.append(f"""<entry>
<title>By: Reader {n}</title>
<link rel="alternate" href="{post}#comment-{n}" type="text/html" />
<author><name>Reader {n}</name></author>
<id>{post}#comment-{n}</id>
<updated>{stamp}</updated><published>{stamp}</published>
<content type="html"><![CDATA[<p>Comment {n} on thread {thread}.</p>]]></content>
<thr:in-reply-to ref="{post}" href="{post}" type="text/html" />
</entry>""")
        body = f"""<?xml version="1.0" encoding="UTF-8" ?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:thr="http://purl.org/syndication/thread/1.0">
<title type="text">Comments on post {thread}</title>
<link rel="alternate" type="text/html" href="{post}#comments" />
<id>{post}feed/atom/</id>
<updated>2026-01-01T00:00:00Z</updated>
{"".join(entries)}
</feed>
""".encode()
        return f'"t{thread}-{newest}"', body
