"""A small, fast HTTP/1.1 server for the benchmark: N WordPress-shaped comment feeds.

Runs in its own process so that serving does not compete with notifier for the GIL.
`GET /feed/<i>/` is the Atom comment feed of thread i (the newest 10 comments, WordPress's
window), with an ETag and a Last-Modified equal to its newest comment, and answers 304 to a
matching If-None-Match. `POST /_bump?every=K` adds one comment to every K-th thread (every
thread by default). `POST /hook` is a webhook receiver that accepts everything. Prints its
port on the first line of stdout. `POST /_delay?seconds=S` answers each feed S seconds
later from then on: a distant or slow blog, whose feeds queue for the poller's per-host slots.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

BASE = datetime(2026, 1, 1, tzinfo=UTC)
WINDOW = 10
TEXT = ('<p>Comment number {} on thread {}, with a <a href="https://example.org/">link</a>'
        ' &amp; some <strong>markup</strong>.</p>')


class Feeds:
    def __init__(self, origin: str, delay: float = 0.0) -> None:
        self.origin = origin
        self.delay = delay
        self.bumps: dict[int, int] = {}
        self.hooks = 0

    def bump(self, every: int, threads: int = 1_000_000) -> None:
        for thread in range(0, threads, every):
            self.bumps[thread] = self.bumps.get(thread, 0) + 1

    def newest_id(self, thread: int) -> int:
        return 20 + self.bumps.get(thread, 0)

    def body(self, thread: int) -> bytes:
        post = f"{self.origin}/{thread}/a-post-about-things/"
        newest = self.newest_id(thread)
        entries = []
        for cid in range(newest, newest - WINDOW, -1):
            when = (BASE + timedelta(minutes=cid)).strftime("%Y-%m-%dT%H:%M:%SZ")
            parent = f"{post}#comment-{cid - 3}" if cid % 5 == 0 else post
            entries.append(f"""
	<entry>
		<title>By: Reader {cid}</title>
		<link rel="alternate" href="{post}#comment-{cid}" type="text/html" />
		<author><name>Reader {cid}</name></author>
		<id>{post}#comment-{cid}</id>
		<updated>{when}</updated>
		<published>{when}</published>
		<content type="html" xml:base="{post}#comment-{cid}"><![CDATA[{TEXT.format(cid, thread)}
]]></content>
		<thr:in-reply-to ref="{parent}" href="{parent}" type="text/html" />
	</entry>""")
        updated = (BASE + timedelta(minutes=newest)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"""<?xml version="1.0" encoding="UTF-8" ?><feed
	xmlns="http://www.w3.org/2005/Atom" xml:lang="en-US"
	xmlns:thr="http://purl.org/syndication/thread/1.0">
	<title type="text">Comments on A post about things {thread}</title>
	<updated>{updated}</updated>
	<link rel="alternate" type="text/html" href="{post}#comments" />
	<link rel="self" type="application/atom+xml" href="{self.origin}/feed/{thread}/" />
	<id>{self.origin}/feed/{thread}/</id>
	<generator uri="https://wordpress.org/" version="6.1.9">WordPress</generator>
	{"".join(entries)}
</feed>""".encode()

    def validators(self, thread: int) -> tuple[str, str]:
        newest = BASE + timedelta(minutes=self.newest_id(thread))
        return f'"{thread}-{self.newest_id(thread)}"', format_datetime(newest, usegmt=True)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 feeds: Feeds) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if length:
                await reader.readexactly(length)
            status, extra, body = "404 Not Found", "", b"not found"
            if method == "GET" and target.startswith("/feed/"):
                thread = int(target.split("/")[2])
                if feeds.delay:
                    await asyncio.sleep(feeds.delay)
                etag, modified = feeds.validators(thread)
                extra = f"ETag: {etag}\r\nLast-Modified: {modified}\r\n"
                if headers.get("if-none-match") == etag:
                    status, body = "304 Not Modified", b""
                else:
                    status = "200 OK"
                    body = feeds.body(thread)
                    extra += "Content-Type: application/atom+xml; charset=UTF-8\r\n"
            elif method == "POST" and target.startswith("/_bump"):
                every = int(target.partition("every=")[2] or 1)
                feeds.bump(every)
                status, body = "200 OK", b"bumped"
            elif method == "POST" and target.startswith("/_delay"):
                feeds.delay = float(target.partition("seconds=")[2])
                status, body = "200 OK", b"delayed"
            elif method == "POST" and target.startswith("/hook"):
                feeds.hooks += 1
                status, body = "204 No Content", b""
            elif method == "GET" and target == "/_hooks":
                status, body = "200 OK", str(feeds.hooks).encode()
            writer.write(f"HTTP/1.1 {status}\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
                         .encode() + body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def main() -> None:
    feeds = Feeds("")
    server = await asyncio.start_server(lambda r, w: handle(r, w, feeds), "127.0.0.1", 0,
                                        backlog=1024)
    port = server.sockets[0].getsockname()[1]
    feeds.origin = f"http://127.0.0.1:{port}"
    print(port, flush=True)
    async with server:
        # Stop when the parent closes our stdin: the benchmark never leaves a server behind.
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main())
