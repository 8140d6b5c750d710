"""Reload on a running daemon (SIGHUP and `notifier reload`), observed where a user would see
it: the requests at the feed server and the webhooks at the receiver.

One daemon lives through the whole story: a subscription removed stops being fetched, one
added is fetched and starts from a baseline, a channel whose URL changed gets what was queued
for it (once), nothing already sent is sent again, and a bad file is refused while the
running configuration goes on.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tests.support.blog_server import POST_PATH, BlogServer
from tests.support.daemon import cli_env, free_port, running, wait_until
from tests.support.webhook_receiver import WebhookReceiver

OLD_FEED = POST_PATH + "feed/atom/"
NEW_FEED = "/2013/11/03/a-new-thread/feed/atom/"
NEW_POST = "http://blog.test/2013/11/03/a-new-thread/"


def thread_feed(count: int) -> bytes:
    """A WordPress-shaped Atom comment feed with comments 1..count, newest first."""
    entries = "".join(f"""<entry>
<title>By: Reader {n}</title>
<link rel="alternate" href="{NEW_POST}#comment-{n}" type="text/html" />
<author><name>Reader {n}</name></author>
<id>{NEW_POST}#comment-{n}</id>
<updated>2013-11-03T10:{n:02d}:00Z</updated><published>2013-11-03T10:{n:02d}:00Z</published>
<content type="html"><![CDATA[<p>Comment number {n}.</p>]]></content>
<thr:in-reply-to ref="{NEW_POST}" href="{NEW_POST}" type="text/html" />
</entry>""" for n in range(count, 0, -1))
    return f"""<?xml version="1.0" encoding="UTF-8" ?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:thr="http://purl.org/syndication/thread/1.0">
<title type="text">Comments on A new thread</title>
<link rel="alternate" type="text/html" href="{NEW_POST}#comments" />
<id>{NEW_POST}feed/atom/</id>
<updated>2013-11-03T11:00:00Z</updated>
{entries}
</feed>
""".encode()


def config_text(*, hook_url: str, log_url: str, subscriptions: str) -> str:
    return f"""\
state: sqlite:///state.db
defaults: {{interval: 1s, jitter: 0}}
channels:
  hook:
    type: webhook
    url: "{hook_url}"
    format: json
    retry: {{first: 1s, factor: 1, max: 1s}}
  log: {{type: webhook, url: "{log_url}", format: json}}
subscriptions:
{subscriptions}"""


def reload_cli(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "notifier", "reload", "-c", str(config)],
                          capture_output=True, text=True, timeout=60, check=False,
                          env=cli_env())


def test_reload_adds_removes_and_rechannels_without_losing_or_repeating(
        tmp_path: Path, blog_server: BlogServer, webhook_receiver: WebhookReceiver) -> None:
    blog_server.add_file(NEW_FEED, thread_feed(3), "application/atom+xml; charset=UTF-8")
    config = tmp_path / "notifier.yaml"
    dead_end = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    log_url = webhook_receiver.origin + "/log"
    config.write_text(config_text(hook_url=dead_end, log_url=log_url, subscriptions=f"""\
  - name: old
    url: {blog_server.url(OLD_FEED)}
    backfill: 2
    notify: [hook, log]
"""), encoding="utf-8")

    with running(config, tmp_path / "daemon.log") as daemon:
        # Two backfilled comments: sent to `log`, failing (and kept queued) for `hook`.
        webhook_receiver.wait_for(2, timeout=30)
        daemon.wait_log("delivery to hook failed")
        sent_before = {r.headers["webhook-id"] for r in webhook_receiver.received}

        # 1. A bad file is refused, with its error, by `reload` and by the daemon itself.
        config.write_text(config_text(hook_url=dead_end, log_url=log_url, subscriptions=f"""\
  - name: old
    url: {blog_server.url(OLD_FEED)}
    notify: [hook, nowhere]
"""), encoding="utf-8")
        refused = reload_cli(config)
        assert refused.returncode == 2 and "nowhere" in refused.stderr
        daemon.signal(signal.SIGHUP)
        log = daemon.wait_log("reload refused")
        assert "notify" in log.split("reload refused")[1] and "nowhere" in log
        polled = blog_server.count(OLD_FEED)
        wait_until(lambda: blog_server.count(OLD_FEED) >= polled + 2, 15,
                   "the old subscription to go on being polled")

        # 2. The fixed file: `old` out, `new` in, `hook` moved to a working URL.
        config.write_text(config_text(
            hook_url=webhook_receiver.origin + "/moved", log_url=log_url,
            subscriptions=f"""\
  - name: new
    url: {blog_server.url(NEW_FEED)}
    notify: [hook, log]
"""), encoding="utf-8")
        answer = reload_cli(config)
        assert answer.returncode == 0, answer.stderr
        assert f"(pid {daemon.proc.pid})" in answer.stdout
        daemon.wait_log("reload applied: subscriptions: +1 (new), -1 (old); "
                        "channels: 1 changed (hook)")

        # What was queued for `hook` goes to its new URL, once each.
        moved = wait_until(lambda: [r for r in webhook_receiver.received
                                    if r.path == "/moved"] if len(
            [r for r in webhook_receiver.received if r.path == "/moved"]) >= 2 else None,
            15, "the queued notifications at the new URL")
        assert len(moved) == 2

        # The new subscription is fetched and starts from a baseline: nothing old is told.
        wait_until(lambda: blog_server.count(NEW_FEED) >= 2, 15, "the new feed to be polled")
        # The new feed's first poll records what exists and queues nothing.
        daemon.wait_log(f"{NEW_FEED} 200 new=3 queued=0 baseline (")
        # The removed one is no longer fetched.
        after, polled = blog_server.count(OLD_FEED), blog_server.count(NEW_FEED)
        wait_until(lambda: blog_server.count(NEW_FEED) >= polled + 2, 30,
                   "two more polls of the new feed")
        assert blog_server.count(OLD_FEED) <= after + 1  # at most a poll already under way

        # A new comment on the new feed reaches both channels once.
        blog_server.add_file(NEW_FEED, thread_feed(4), "application/atom+xml; charset=UTF-8")
        webhook_receiver.wait_for(6, timeout=30)
        time.sleep(2)
        received = webhook_receiver.received
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0
        assert "Traceback" not in daemon.log

    ids = Counter(r.headers["webhook-id"] for r in received)
    assert len(received) == 6 and set(ids.values()) == {1}, ids
    assert sent_before <= set(ids)
    news = [r for r in received if b"Reader 4" in r.body]
    assert sorted(r.path for r in news) == ["/log", "/moved"]
    assert not any(b"Reader 3" in r.body for r in received)  # baseline of `new`

    # Stopped: `reload` says so instead of signalling anything.
    gone = reload_cli(config)
    assert gone.returncode == 1 and "no running daemon" in gone.stderr


def test_reload_refuses_another_state_and_keeps_polling(
        tmp_path: Path, blog_server: BlogServer, webhook_receiver: WebhookReceiver) -> None:
    """Also: `notifier reload` runs from a shell without the daemon's secrets."""
    config = tmp_path / "notifier.yaml"
    text = config_text(hook_url="${HOOK_URL}", log_url="${HOOK_URL}", subscriptions=f"""\
  - name: old
    url: {blog_server.url(OLD_FEED)}
    notify: [hook]
""")
    config.write_text(text, encoding="utf-8")
    with running(config, tmp_path / "daemon.log",
                 env={"HOOK_URL": webhook_receiver.url}) as daemon:
        daemon.wait_log(" baseline (")  # the feed's first poll
        config.write_text(text.replace("sqlite:///state.db", "sqlite:///other.db"),
                          encoding="utf-8")
        # The new file names another state: the command finds no daemon recorded there.
        assert reload_cli(config).returncode == 1
        config.write_text(text + "# a comment\n", encoding="utf-8")
        answer = reload_cli(config)
        assert answer.returncode == 0, answer.stderr
        daemon.wait_log("reload applied: subscriptions: unchanged; channels: unchanged")
        config.write_text(text.replace("sqlite:///state.db", "sqlite:///other.db"),
                          encoding="utf-8")
        daemon.signal(signal.SIGHUP)
        log = daemon.wait_log("reload refused")
        assert "moving to another database needs a restart" in log
        polled = blog_server.count(OLD_FEED)
        wait_until(lambda: blog_server.count(OLD_FEED) >= polled + 2, 15,
                   "polling to go on by the running configuration")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0
