"""The whole path through the real command, against real local servers.

A WordPress blog (served from captured WordPress 6.1 output), an SMTP server and a chat
webhook receiver run on loopback; `notifier` runs as a separate process each time, so every
run is also a restart on the same state.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from tests.support.blog_server import REST_COMMENTS_PATH, BlogServer
from tests.support.configs import SECRET_PATH, chat_channel, email_channel
from tests.support.daemon import kill_group, run_cli, start
from tests.support.feed_farm import FeedFarm
from tests.support.smtp_server import SmtpServer
from tests.support.webhook_receiver import WebhookReceiver

POST_PATH = "/2013/10/20/why-defend-stalin/"


def write_config(tmp_path: Path, blog: BlogServer, smtp: SmtpServer,
                 hook: WebhookReceiver, subscriptions: str) -> Path:
    path = tmp_path / "notifier.yaml"
    path.write_text(f"""\
state: sqlite:///state.db
defaults:
  interval: 10m
channels:
{email_channel("me", smtp)}{chat_channel("team", hook, "slack")}  feed-json:
    type: webhook
    url: "{hook.url}/json"
    format: json
subscriptions:
{subscriptions}
""", encoding="utf-8")
    return path


def subscription(name: str, url: str, notify: str, *, watch: str = "comments",
                 **keys: str) -> str:
    """One `subscriptions:` item in YAML; `keys` are further settings, written as given."""
    lines = [f"  - name: {name}", f"    url: {url}", f"    watch: {watch}"]
    lines += [f"    {key}: {value}" for key, value in keys.items()]
    lines.append(f"    notify: [{notify}]")
    return "\n".join(lines) + "\n"


THREAD = """\
  - name: the-thread
    url: {origin}/2013/10/20/why-defend-stalin/
    watch: comments
    notify: [me, team]
  - name: new-posts
    url: {origin}/
    watch: posts
    notify: [me]
"""


def run_once(config: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return run_cli("run", "--once", *flags, "-c", str(config), timeout=120)


def test_new_comment_reaches_email_and_chat_once(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver) -> None:
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver,
                          THREAD.format(origin=blog_server.origin))

    first = run_once(config)
    assert first.returncode == 0, first.stderr
    assert smtp_server.messages == [] and webhook_receiver.received == []
    # Discovery went from the post page to the post's own Atom comment feed.
    paths = [r.path for r in blog_server.requests]
    assert POST_PATH in paths and POST_PATH + "feed/atom/" in paths

    blog_server.scenario = "02-markup-comment"
    blog_server.clear_log()
    second = run_once(config)
    assert second.returncode == 0, second.stderr
    assert smtp_server.wait_for(1, timeout=10)
    assert webhook_receiver.wait_for(1, timeout=10)
    time.sleep(0.3)
    assert len(smtp_server.messages) == 1 and len(webhook_receiver.received) == 1

    mail = smtp_server.messages[0]
    assert "Markup Tester" in mail["Subject"] and "Why Defend Stalin?" in mail["Subject"]
    text_part = mail.get_body(preferencelist=("plain",))
    html_part = mail.get_body(preferencelist=("html",))
    assert text_part is not None and html_part is not None
    text, html = text_part.get_content(), html_part.get_content()
    for body in (text, html):
        assert "Markup Tester" in body
        assert f"{blog_server.origin}{POST_PATH}#comment-5" in body
        assert "the people make the heroes" in body
        assert "<script" not in body.lower() and "alert(1)" not in body
    assert "<strong>bold</strong>" in html and "<blockquote" in html

    chat = webhook_receiver.received[0]
    assert chat.path.endswith(SECRET_PATH)
    message = json.loads(chat.body)["text"]
    assert "Markup Tester" in message and "#comment-5" in message
    assert "<script" not in message

    # Nothing is sent again. Both feeds are asked for conditionally and answered 304, though
    # WordPress's validators are site-wide: one small REST request per site (its
    # approved-comment count and newest ids) tells whether anything old changed.
    blog_server.clear_log()
    third = run_once(config, "-v")  # unchanged polls are logged at DEBUG
    assert third.returncode == 0, third.stderr
    posts = [r for r in blog_server.requests if r.path == "/feed/atom/"]
    comments = [r for r in blog_server.requests if r.path == POST_PATH + "feed/atom/"]
    probes = [r for r in blog_server.requests if r.path.startswith(REST_COMMENTS_PATH + "?")]
    assert posts and all("if-none-match" in r.headers for r in posts)
    assert comments and all("if-none-match" in r.headers for r in comments)
    assert len(probes) == 1
    # The README's cost of an unchanged cycle: one request per feed, one per site.
    assert len(blog_server.requests) == len(posts) + len(comments) + len(probes) == 3
    assert all("notifier/" in r.headers.get("user-agent", "") for r in posts + comments)
    assert " 304 " in third.stderr
    time.sleep(0.3)
    assert len(smtp_server.messages) == 1 and len(webhook_receiver.received) == 1

    # Secrets never reach the logs.
    for result in (first, second, third):
        assert "secret-token" not in result.stderr + result.stdout


STATIC_FEEDS = 100


def _static_comment_feed(number: int) -> bytes:
    """A comment feed as a static site generator writes it: plain RSS, no platform."""
    items = "".join(f"""<item><title>Comment {n} on post {number}</title>
<link>http://blog.test/static/post-{number}.html#comment-{n}</link>
<guid>http://blog.test/static/post-{number}.html#comment-{n}</guid>
<pubDate>Mon, 0{n} Nov 2026 08:00:00 GMT</pubDate><author>r{n}@example.org (Reader {n})</author>
<description>Comment {n}.</description></item>""" for n in (3, 2, 1))
    return f"""<?xml version="1.0"?><rss version="2.0"><channel>
<title>Comments on post {number}</title><link>http://blog.test/static/post-{number}.html</link>
<description>comments</description>{items}</channel></rss>""".encode()


def test_unchanged_feeds_on_a_static_host_are_answered_304(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver) -> None:
    """A static host's validators are the file's (nginx: mtime and size), never explained by
    the newest entry's date; they are still kept and sent, so an unchanged feed costs a 304."""
    subs = ""
    for number in range(STATIC_FEEDS):
        path = f"/static/comments-{number}.xml"
        body = _static_comment_feed(number)
        blog_server.add_file(path, body, "application/rss+xml", {
            "ETag": f'"6565f0a0-{len(body):x}"',  # nginx: hex mtime - hex size
            "Last-Modified": "Tue, 28 Nov 2026 13:40:16 GMT"})
        subs += subscription(f"static-{number}", f"{blog_server.origin}{path}", "me")
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver, subs)
    first = run_once(config)
    assert first.returncode == 0, first.stderr
    blog_server.clear_log()
    second = run_once(config, "-v")
    assert second.returncode == 0, second.stderr
    asked = [r for r in blog_server.requests if r.path.startswith("/static/")]
    assert len(asked) == STATIC_FEEDS
    assert all(r.headers.get("if-none-match", "").startswith('"6565f0a0-') for r in asked)
    answered_304 = [line for line in second.stderr.splitlines()
                    if "/static/comments-" in line and " 304 " in line]
    assert len(answered_304) >= STATIC_FEEDS * 99 // 100
    assert f"{STATIC_FEEDS} feeds polled ({STATIC_FEEDS} unchanged, 0 failed)" in second.stderr
    # Unchanged polls are DEBUG lines; without -v only the cycle's summary says so.
    third = run_once(config)
    assert third.returncode == 0, third.stderr
    assert "/static/comments-" not in third.stderr
    assert f"{STATIC_FEEDS} feeds polled ({STATIC_FEEDS} unchanged, 0 failed)" in third.stderr


def test_subscriptions_in_included_files_are_polled_and_reported(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver) -> None:
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver, "")
    config.write_text(config.read_text().replace("subscriptions:\n", "include: subs.d/\n"))
    (tmp_path / "subs.d").mkdir()
    (tmp_path / "subs.d" / "blog.yaml").write_text(
        "subscriptions:\n" + subscription("thread", f"{blog_server.origin}{POST_PATH}", "me"))
    (tmp_path / "subs.d" / "site.yml").write_text(
        "subscriptions:\n" + subscription("site", f"{blog_server.origin}/", "feed-json",
                                          watch="posts"))
    first = run_once(config)
    assert first.returncode == 0, first.stderr
    assert "2 feeds polled" in first.stderr
    blog_server.scenario = "02-markup-comment"
    second = run_once(config)
    assert second.returncode == 0, second.stderr
    assert smtp_server.wait_for(1, timeout=10)
    assert "Markup Tester" in smtp_server.messages[0]["Subject"]


def test_replies_to_fires_only_for_replies_to_that_person(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver) -> None:
    subs = subscription(
        "replies-to-me", f"{blog_server.origin}/", "feed-json",
        replies_to='["east side boy"]', backfill="10")
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver, subs)
    result = run_once(config)
    assert result.returncode == 0, result.stderr
    assert webhook_receiver.wait_for(1, timeout=10)
    time.sleep(0.3)
    assert len(webhook_receiver.received) == 1
    payload = json.loads(webhook_receiver.received[0].body)
    assert payload["entry"]["link"].endswith("#comment-3")
    assert payload["entry"]["author"] == "southernfriedbolshevik"
    assert payload["entry"]["is_reply"] is True
    assert payload["parent"]["author"] == "East Side Boy"
    assert "webhook-id" in webhook_receiver.received[0].headers


def test_failed_delivery_is_retried_by_the_next_run_and_sent_once(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver) -> None:
    subs = subscription("thread", f"{blog_server.origin}{POST_PATH}feed/atom/", "feed-json")
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver, subs)
    assert run_once(config).returncode == 0
    blog_server.scenario = "02-markup-comment"
    webhook_receiver.script([(500, {}, b"down")])
    failed = run_once(config)
    assert failed.returncode == 1
    assert "HTTP 500" in failed.stderr
    # The retry waits for its backoff; make it due by moving the clock of the state.
    _make_retries_due(tmp_path / "state.db")
    retried = run_once(config)
    assert retried.returncode == 0, retried.stderr
    ids = [r.headers["webhook-id"] for r in webhook_receiver.received]
    assert len(ids) == 2 and ids[0] == ids[1]  # the same notification, retried
    assert run_once(config).returncode == 0
    assert len(webhook_receiver.received) == 2


def _make_retries_due(db: Path) -> None:
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE outbox SET next_attempt = 0 WHERE status = 'queued'")


def test_daemon_notices_a_new_comment_and_stops_on_sigterm(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver) -> None:
    subs = subscription("thread", f"{blog_server.origin}{POST_PATH}", "me", interval="1s")
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver, subs)
    log = tmp_path / "daemon.log"
    proc = start(config, log)
    try:
        # The first cycle's summary is logged once its polls (the baseline) are written.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "poll cycle:" not in log.read_text():
            time.sleep(0.1)
        assert "poll cycle:" in log.read_text(), log.read_text()
        blog_server.scenario = "02-markup-comment"
        assert smtp_server.wait_for(1, timeout=30), log.read_text()
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        assert time.monotonic() - started < 8
    finally:
        if proc.poll() is None:
            kill_group(proc)
    err = log.read_text()
    assert proc.returncode == 0, err
    assert "stopped" in err
    assert len(smtp_server.messages) == 1
    assert "Markup Tester" in smtp_server.messages[0]["Subject"]


def test_one_bad_feed_never_stops_the_others(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver) -> None:
    subs = f"""\
  - name: gone
    url: {blog_server.origin}/no-such-blog/
    watch: comments
    notify: [me]
  - name: site
    url: {blog_server.origin}/comments/feed/atom/
    watch: comments
    notify: [me]
  - name: thread
    url: {blog_server.origin}{POST_PATH}
    watch: comments
    notify: [me]
"""
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver, subs)
    first = run_once(config)
    assert first.returncode == 1
    assert "subscription gone:" in first.stderr and "404" in first.stderr
    # The failed discovery is named in the cycle's summary as `status` names it; it is
    # not a feed polled.
    assert ("2 feeds polled (0 unchanged, 0 failed), 1 subscription without a feed "
            "(discovery failed)") in first.stderr

    blog_server.scenario = "02-markup-comment"
    blog_server.override("/comments/feed/atom/", status=500, repeat=None)
    second = run_once(config)
    assert second.returncode == 1  # the failures are reported ...
    assert "/comments/feed/atom/: HTTP 500" in second.stderr
    assert smtp_server.wait_for(1, timeout=10)  # ... and the good thread still delivers
    assert "Markup Tester" in smtp_server.messages[0]["Subject"]

    status = run_cli("status", "-c", str(config))
    assert status.returncode == 0, status.stderr
    assert "failing x1: HTTP 500 Internal Server Error [http]" in status.stdout
    assert f"{POST_PATH}feed/atom/" in status.stdout
    assert "subscriptions without a feed:" in status.stdout
    assert "  gone: " in status.stdout and "discovery failing x2: " in status.stdout
    assert "HTTP 404 Not Found [http]" in status.stdout  # the kind is stored with the text


def test_the_cycle_summary_counts_failures_by_kind_in_text_and_json(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver) -> None:
    """A reader of the log (or of its JSON) sees which sort of failure a cycle had, and
    whether waiting will fix it, without parsing messages; the per-feed lines keep their
    words."""
    subs = f"""\
  - name: gone
    url: {blog_server.origin}/no-such-blog/
    watch: comments
    notify: [me]
  - name: site
    url: {blog_server.origin}/comments/feed/atom/
    watch: comments
    notify: [me]
"""
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver, subs)
    assert run_once(config).returncode == 1
    blog_server.override("/comments/feed/atom/", status=500, repeat=None)
    text = run_once(config)
    assert text.returncode == 1
    assert "/comments/feed/atom/: HTTP 500 Internal Server Error" in text.stderr
    assert ("1 feeds polled (0 unchanged, 1 failed), 1 subscription without a feed "
            "(discovery failed)") in text.stderr
    assert "; failed: 2 http" in text.stderr
    assert "will not pass by waiting" not in text.stderr

    result = run_once(config, "--log-format", "json")
    assert result.returncode == 1
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    (done,) = [line for line in lines if line["message"].startswith("cycle done:")]
    assert done["failures"] == {"http": 2} and done["feeds_failed"] == 1
    assert done["subscriptions_without_feed"] == 1
    (failed,) = [line for line in lines if line["message"].startswith("poll ")
                 and "failed" in line["message"]]
    assert failed["kind"] == "http" and failed["feed"].endswith("/comments/feed/atom/")


def test_a_failure_that_needs_a_person_says_so_in_the_cycle_summary(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver) -> None:
    blog_server.add_file("/plain/", b"<html><body>No feed here.</body></html>",
                         "text/html; charset=UTF-8")
    subs = f"""\
  - name: page
    url: {blog_server.origin}/plain/
    watch: comments
    notify: [me]
"""
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver, subs)
    result = run_once(config)
    assert result.returncode == 1
    assert ("0 feeds polled (0 unchanged, 0 failed), 1 subscription without a feed "
            "(discovery failed)") in result.stderr
    assert "; failed: 1 discovery (1 will not pass by waiting" in result.stderr


def _comment_feed(*items: tuple[str, str, str, str]) -> bytes:
    """An RSS comment feed, newest first: (guid, author, date, text) per item."""
    body = "".join(
        f"<item><title>By: {author}</title><guid isPermaLink=\"false\">{guid}</guid>"
        f"<dc:creator>{author}</dc:creator><pubDate>{date}</pubDate>"
        f"<description>{text}</description></item>" for guid, author, date, text in items)
    return ('<?xml version="1.0"?><rss version="2.0" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>Comments on: Day</title>'
            f"<link>http://blog.test/day/</link>{body}</channel></rss>").encode()


def test_an_item_alone_under_a_shared_guid_again_is_no_edit(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver) -> None:
    """Two comments under one guid (a feed that reuses the day's anchor): the newer one is
    reported as new; when the older leaves the window, the newer is alone under the bare
    guid, which the store holds with the older one's text. That is no edit; a real edit of
    the newer one still is, once."""
    guid = "http://blog.test/day/#talk"
    older = (guid, "Ann", "Sun, 25 Jun 2017 12:27:31 GMT", "morning")
    newer = (guid, "Bob", "Sun, 25 Jun 2017 12:32:31 GMT", "later")
    path = "/day/comments.xml"
    blog_server.add_file(path, _comment_feed(older), "application/rss+xml")
    subs = subscription("day", f"{blog_server.origin}{path}", "me", notify_edits="true")
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver, subs)
    assert run_once(config).returncode == 0  # the baseline: Ann's comment

    blog_server.add_file(path, _comment_feed(newer, older), "application/rss+xml")
    assert run_once(config).returncode == 0
    assert smtp_server.wait_for(1, timeout=10)

    blog_server.add_file(path, _comment_feed(newer), "application/rss+xml")
    alone = run_once(config)
    assert alone.returncode == 0, alone.stderr
    time.sleep(0.5)
    assert [m["Subject"].split(" on ")[0] for m in smtp_server.messages] == [
        "New comment by Bob"]

    blog_server.add_file(path, _comment_feed((*newer[:3], "later, and fixed")),
                         "application/rss+xml")
    assert run_once(config).returncode == 0
    assert smtp_server.wait_for(2, timeout=10)
    time.sleep(0.5)
    assert [m["Subject"].split(" on ")[0] for m in smtp_server.messages] == [
        "New comment by Bob", "Edited comment by Bob"]


def test_blocking_private_networks_refuses_a_loopback_feed(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver) -> None:
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver,
                          THREAD.format(origin=blog_server.origin))
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("defaults:\n", "http: {block_private_networks: true}\n"
                                                  "defaults:\n"), encoding="utf-8")
    result = run_once(config)
    assert result.returncode == 1
    assert "127.0.0.1 is a private or local address" in result.stderr
    assert blog_server.requests == []


def test_run_once_sends_as_it_polls_but_a_burst_channel_waits_for_the_whole_poll(
        tmp_path: Path) -> None:
    """run --once delivers while it polls, except on a channel with a `burst_limit`: that
    one sums up what the whole pass found. Nine comments on three threads, polled one after
    the other (one slot on a slow host): the burst channel gets one summary, not three
    messages per thread as each poll is written; the other channel gets all nine."""
    burst, each = WebhookReceiver().start(), WebhookReceiver().start()
    try:
        with FeedFarm(3) as farm:
            config = tmp_path / "notifier.yaml"
            config.write_text(f"""\
state: sqlite:///state.db
http: {{per_host: 1}}
channels:
  burst:
    type: webhook
    url: "{burst.url}"
    format: slack
    burst_limit: 5
  each:
    type: webhook
    url: "{each.url}"
    format: slack
subscriptions:
""" + "".join(subscription(f"thread-{i}", farm.origin + farm.path(i), "burst, each")
              for i in range(3)), encoding="utf-8")
            first = run_once(config)
            assert first.returncode == 0, first.stderr
            for thread in range(3):
                for _ in range(3):
                    farm.add_comment(thread)
            farm.delay = 0.4  # each poll is written on its own, more than a batch lingers
            second = run_once(config)
            assert second.returncode == 0, second.stderr
        summaries = [str(json.loads(r.body)["text"]) for r in burst.received]
        singles = [str(json.loads(r.body)["text"]) for r in each.received]
    finally:
        burst.stop()
        each.stop()
    assert len(summaries) == 1 and summaries[0].startswith("9 new comments"), summaries
    assert len(singles) == 9, singles


def test_a_second_subscription_to_a_polled_feed_gets_the_next_comment_too(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver) -> None:
    """A subscription added for a feed notifier already polls starts from what is stored:
    the feed answers 304 (nothing new since), and that completes its first look. The next
    comment then reaches it as well as the older subscription, not only the older one."""
    url = f"{blog_server.origin}{POST_PATH}"
    older = subscription("older", url, "me")
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver, older)
    assert run_once(config).returncode == 0  # the first look: nothing reported
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver,
                          older + subscription("newer", url, "team"))
    added = run_once(config)
    assert added.returncode == 0, added.stderr
    blog_server.scenario = "02-markup-comment"
    after = run_once(config)
    assert after.returncode == 0, after.stderr
    assert smtp_server.wait_for(1, timeout=10)
    assert webhook_receiver.wait_for(1, timeout=10), after.stdout + after.stderr
    time.sleep(0.3)
    assert len(smtp_server.messages) == 1 and len(webhook_receiver.received) == 1
    assert "Markup Tester" in json.loads(webhook_receiver.received[0].body)["text"]
