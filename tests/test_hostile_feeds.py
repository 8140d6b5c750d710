"""One bad feed never stops the others: the daemon as a subprocess beside hostile feeds.

A local server serves a healthy WordPress-shaped comment feed beside feeds built to hurt:
an author field of 200,000 characters (feedparser's author-email regex is quadratic), the
same in UTF-16 (which no byte-level cap sees, so only the parse watchdog stops it), a body
dripped one byte a second, and a page whose discovery drips. Each test asserts what a user
notices: the healthy feed's new comment still arrives within one interval plus a few
seconds, the bad feed is shown failing with its reason, and SIGTERM still stops the daemon.
Figures (memory, latencies, hits per route) are in benchmarks/hostile.py, not here.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.blog_server import BlogServer
from tests.support.daemon import kill_group, run_cli, start
from tests.support.webhook_receiver import WebhookReceiver

POST = "http://blog.test/2024/05/01/healthy/"
HEALTHY = "/healthy/feed/atom/"
INTERVAL = 2.0
TIMEOUT = 4.0  # http.timeout of the test config
STOP_WITHIN = 10.0  # the daemon's 5 s grace and the interpreter's exit


def stamp(n: int) -> str:
    return f"2024-05-01T{10 + n // 60:02d}:{n % 60:02d}:00Z"


def comment_feed(count: int, *, author: str = "Reader {n}", post: str = POST) -> str:
    """A WordPress-shaped Atom comment feed with comments 1..count, newest first."""
    entries = []
    for n in range(count, 0, -1):
        entries.append(f"""<entry>
<title>By: Reader {n}</title>
<link rel="alternate" href="{post}#comment-{n}" type="text/html" />
<author><name>{author.format(n=n)}</name></author>
<id>{post}#comment-{n}</id>
<updated>{stamp(n)}</updated><published>{stamp(n)}</published>
<content type="html"><![CDATA[<p>Comment number {n}.</p>]]></content>
<thr:in-reply-to ref="{post}" href="{post}" type="text/html" />
</entry>""")
    return f"""<?xml version="1.0" encoding="{{encoding}}" ?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:thr="http://purl.org/syndication/thread/1.0">
<title type="text">Comments on a post</title>
<link rel="alternate" type="text/html" href="{post}#comments" />
<id>{post}feed/atom/</id>
<updated>2024-05-01T10:00:00Z</updated>
{"".join(entries)}
</feed>
"""


def atom(count: int, **kwargs: str) -> bytes:
    return comment_feed(count, **kwargs).replace("{encoding}", "UTF-8").encode()


def rss_with_author(author: str, encoding: str) -> bytes:
    """RSS items whose plain-text `<author>` feedparser searches for an email address."""
    items = "".join(f"""<item><title>By: someone</title>
<link>http://blog.test/bomb/#comment-{n}</link><guid>http://blog.test/bomb/#comment-{n}</guid>
<author>{author}</author><description>Comment {n}</description></item>""" for n in (1, 2, 3))
    return (f'<?xml version="1.0" encoding="{encoding}"?>\n<rss version="2.0"><channel>'
            f"<title>Comments on a bomb</title><link>http://blog.test/bomb/</link>"
            f"{items}</channel></rss>").encode(encoding.lower())


def write_config(tmp_path: Path, blog: BlogServer, hook: WebhookReceiver,
                 hostile: dict[str, str], **defaults: object) -> Path:
    subs = [{"name": "healthy", "url": blog.origin + HEALTHY, "watch": "comments",
             "notify": ["hook"]}]
    subs += [{"name": name, "url": blog.origin + path, "watch": "comments", "notify": ["hook"]}
             for name, path in hostile.items()]
    path = tmp_path / "notifier.yaml"
    path.write_text(yaml.safe_dump({
        "state": "sqlite:///state.db",
        "defaults": {"interval": f"{INTERVAL:g}s", "jitter": 0, **defaults},
        "http": {"timeout": f"{TIMEOUT:g}s"},
        "channels": {"hook": {"type": "webhook", "url": hook.url, "format": "json"}},
        "subscriptions": subs,
    }), encoding="utf-8")
    return path


@contextlib.contextmanager
def daemon(config: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = start(config, log)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            kill_group(proc)


def wait_until(check: Callable[[], bool], timeout: float, what: str, log: Path) -> float:
    """Seconds until `check()` held; fails with the daemon's log otherwise."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.1)
    pytest.fail(f"{what} not within {timeout:g} s; daemon log:\n{log.read_text()[-4000:]}")


def baselined(log: Path, *parts: str) -> bool:
    """Whether the daemon logged the first (baseline) poll of each feed named."""
    lines = [line for line in log.read_text().splitlines() if line.endswith("s)")
             and " baseline (" in line]
    return all(any(part in line for line in lines) for part in parts)


def stop(proc: subprocess.Popen[bytes]) -> float:
    """SIGTERM, and the seconds until the daemon (and its parse workers) exited."""
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=STOP_WITHIN + 20)
    took = time.monotonic() - started
    assert code == 0, code
    return took


def status(config: Path) -> str:
    done = run_cli("status", "-c", str(config))
    assert done.returncode == 0, done.stderr
    return done.stdout


def hook_texts(hook: WebhookReceiver) -> list[str]:
    return [r.body.decode() for r in hook.received if r.json is not None]


def test_a_stuck_parse_a_dripping_feed_and_a_slow_discovery_hold_back_no_one(
        tmp_path: Path, blog_server: BlogServer, webhook_receiver: WebhookReceiver) -> None:
    blog = blog_server
    blog.add_file(HEALTHY, atom(1), "application/atom+xml; charset=UTF-8")
    bomb = "a" * 200_000  # 20,000 cost feedparser 1 s per item, 200,000 about 100 s
    # In UTF-8 the byte-level cap defuses the bomb: the feed is read, quickly.
    blog.add_file("/author/feed/atom/", rss_with_author(bomb, "UTF-8"),
                  "application/rss+xml; charset=UTF-8")
    # In UTF-16 the cap cannot see it: only the parse watchdog stops feedparser.
    blog.add_file("/utf16/feed/atom/", rss_with_author(bomb, "UTF-16"), "application/rss+xml")
    # Found at first, then a body of one byte a second: the poll's time budget ends it.
    blog.add_file("/drip/feed/atom/", atom(1, post="http://blog.test/drip/"),
                  "application/atom+xml; charset=UTF-8")
    # A page to discover from that never finishes: discovery's budget ends it.
    blog.override("/slowpage/", 200, {"Content-Type": "text/html"}, b"<html><head>",
                  repeat=None, drip=(10_000, 1.0))
    config = write_config(tmp_path, blog, webhook_receiver, {
        "author": "/author/feed/atom/", "utf16": "/utf16/feed/atom/",
        "drip": "/drip/feed/atom/", "slowpage": "/slowpage/"})
    log = tmp_path / "daemon.log"
    with daemon(config, log) as proc:
        wait_until(lambda: baselined(log, "/healthy/", "/drip/"), 30, "first polls", log)
        blog.override("/drip/feed/atom/", 200, {"Content-Type": "application/atom+xml"},
                      atom(1), repeat=None, drip=(10_000, 1.0))
        # The UTF-16 parse is stuck and the drips in flight; a new comment arrives.
        wait_until(lambda: blog.count("/utf16/feed/atom/") >= 1, 30, "utf16 fetched", log)
        blog.add_file(HEALTHY, atom(2), "application/atom+xml; charset=UTF-8")
        took = wait_until(
            lambda: any("Comment number 2" in t for t in hook_texts(webhook_receiver)),
            INTERVAL + 6, "the healthy feed's new comment", log)
        print(f"healthy comment delivered {took:.1f} s after it appeared")
        # `status` works beside the daemon and shows each bad feed with its reason.
        wait_until(lambda: "parser took more than 10 s" in feed_state(config, "/utf16/"),
                   25, "the stuck parse reported", log)
        wait_until(lambda: f"timed out after {TIMEOUT:g} s" in feed_state(config, "/drip/"),
                   25, "the dripping feed reported", log)
        # SIGTERM while the UTF-16 parse is stuck again: the daemon still stops in time.
        fetched = blog.count("/utf16/feed/atom/")
        wait_until(lambda: blog.count("/utf16/feed/atom/") > fetched, 30, "utf16 again", log)
        time.sleep(1.0)
        stopped = stop(proc)
    assert stopped < STOP_WITHIN, f"SIGTERM took {stopped:.1f} s"
    text = status(config)
    assert "failing" not in feed_state(config, "/author/"), text
    assert "failing" not in feed_state(config, "/healthy/"), text
    assert "slowpage" in text and "discovery failing" in text, text


def feed_state(config: Path, part: str) -> str:
    """The lines `status` shows for the feed whose URL contains `part`."""
    return next((s for s in status(config).split("\n  http") if part in s), "")


def test_retry_after_and_gone_apply_from_the_first_answer_also_to_discovery(
        tmp_path: Path, blog_server: BlogServer, webhook_receiver: WebhookReceiver) -> None:
    blog = blog_server
    blog.add_file(HEALTHY, atom(1), "application/atom+xml; charset=UTF-8")
    blog.override("/limited/", 429, {"Retry-After": "3600"}, repeat=None)
    blog.override("/unavailable/", 503, {"Retry-After": "3600"}, repeat=None)
    blog.override("/gone/", 410, repeat=None)
    blog.override("/broken/", 500, repeat=None)
    # A feed found at first that answers 410 from then on.
    blog.add_file("/later-gone/feed/atom/", atom(1, post="http://blog.test/later/"),
                  "application/atom+xml; charset=UTF-8")
    config = write_config(tmp_path, blog, webhook_receiver, {
        "limited": "/limited/", "unavailable": "/unavailable/", "gone": "/gone/",
        "broken": "/broken/", "later": "/later-gone/feed/atom/"}, interval="1s")
    log = tmp_path / "daemon.log"
    for run in range(2):  # a restart remembers what the servers asked for
        with daemon(config, log) as proc:
            wait_until(lambda run=run: log.read_text().count(" running: ") > run, 30,  # type: ignore[misc]
                       "start", log)
            if run == 0:
                wait_until(lambda: baselined(log, "/healthy/", "/later-gone/"), 30, "baseline",
                           log)
                blog.override("/later-gone/feed/atom/", 410, repeat=None)
                before_gone = blog.count("/later-gone/feed/atom/")
                wait_until(lambda n=before_gone: blog.count("/later-gone/feed/atom/") > n,  # type: ignore[misc]
                           10, "410", log)
            blog.add_file(HEALTHY, atom(2 + run), "application/atom+xml; charset=UTF-8")
            wait_until(lambda run=run: any(f"Comment number {2 + run}" in t  # type: ignore[misc]
                                           for t in hook_texts(webhook_receiver)),
                       30, "the healthy feed's new comment", log)
            time.sleep(6)  # six intervals
            stop(proc)
    # One answer each, over two runs and a dozen intervals.
    assert blog.count("/limited/") == 1
    assert blog.count("/unavailable/") == 1
    assert blog.count("/gone/") == 1
    assert blog.count("/later-gone/feed/atom/") == before_gone + 1  # one 410, not one a second
    # A plain failure backs off (2, 4, 8 intervals) instead of being asked every interval.
    assert 2 <= blog.count("/broken/") <= 5, blog.count("/broken/")
    text = status(config)
    assert "discovery failing x1: " in text and "HTTP 429" in text, text
    assert "asked again once a day" in text, text
    assert "(in 59m" in text or "(in 1h" in text, text
    assert "HTTP 410" in feed_state(config, "/later-gone/"), text
