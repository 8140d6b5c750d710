"""Thread intelligence end to end: bursts, backfill, replies to me, late approvals, edits.

The real `notifier` command runs against the captured WordPress blog (and Blogger pages
written from Blogger's documented format) on loopback, as in `test_end_to_end`.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.support import blogger_feed
from tests.support.blog_server import WORDPRESS_DIR, BlogServer, get_header, parse_headers_file
from tests.support.blogger_feed import Comment
from tests.support.smtp_server import SmtpServer
from tests.support.webhook_receiver import WebhookReceiver
from tests.test_end_to_end import POST_PATH, run_once, subscription, write_config

REPLIES_TO_3 = {10, 15, 20, 25}
REST_COMMENTS = "/wp-json/wp/v2/comments"


def _payloads(hook: WebhookReceiver) -> list[dict[str, object]]:
    return [json.loads(r.body) for r in hook.received]


def _comment_number(payload: dict[str, object]) -> int:
    entry = payload["entry"]
    assert isinstance(entry, dict)
    return int(str(entry["link"]).rsplit("-", 1)[1])


def _settle(hook: WebhookReceiver, count: int) -> None:
    """Wait for `count` deliveries, then a moment to be sure no more follow."""
    assert hook.wait_for(count, timeout=20), len(hook.received)
    time.sleep(0.3)


def test_burst_of_24_is_reported_completely_once_and_in_order(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver) -> None:
    subs = subscription("thread", f"{blog_server.origin}{POST_PATH}", "feed-json")
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver, subs)
    assert run_once(config).returncode == 0
    blog_server.scenario = "02-markup-comment"
    assert run_once(config).returncode == 0
    _settle(webhook_receiver, 1)
    assert [_comment_number(p) for p in _payloads(webhook_receiver)] == [5]

    # 24 comments arrive; the feed shows the newest 10 only, none of them seen before.
    blog_server.scenario = "03-burst-of-24"
    blog_server.clear_log()
    result = run_once(config)
    assert result.returncode == 0, result.stderr
    _settle(webhook_receiver, 25)
    burst = _payloads(webhook_receiver)[1:]
    assert [_comment_number(p) for p in burst] == list(range(6, 30))
    for payload in burst:
        entry, parent = payload["entry"], payload["parent"]
        assert isinstance(entry, dict)
        if _comment_number(payload) in REPLIES_TO_3:
            assert entry["is_reply"] is True
            assert isinstance(parent, dict) and parent["author"] == "southernfriedbolshevik"
            assert "no evidence that anyone was ever persecuted" in str(parent["excerpt"])
        else:
            assert entry["is_reply"] is False and parent is None
    # The REST API filled the gap, page by page (beside the one site probe).
    probes = [r for r in blog_server.requests if "_fields=id,post,date_gmt" in unquote(r.path)]
    assert blog_server.count("/wp-json/wp/v2/comments") - len(probes) == 3
    assert len(probes) == 1
    assert "missing" not in json.dumps(burst)

    assert run_once(config).returncode == 0
    time.sleep(0.3)
    assert len(webhook_receiver.received) == 25


ONE_SECOND = "2013-10-24T09:30:00"


def test_a_burst_within_one_second_is_reported_in_comment_id_order_by_mail_and_webhook(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver) -> None:
    """The captured burst of 24, as a comment form flood gives it: one timestamp for all.

    The feed window (newest 10, newest first) and the REST listing (oldest first) then
    have no date to order by; the comment ids do, the same on every channel.
    """
    subs = subscription("thread", f"{blog_server.origin}{POST_PATH}", "feed-json")
    subs += subscription("mail", f"{blog_server.origin}{POST_PATH}", "me")
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver, subs)
    blog_server.scenario = "02-markup-comment"
    assert run_once(config).returncode == 0

    burst = WORDPRESS_DIR / "03-burst-of-24"
    feed = re.sub(rb"2013-10-24T09:\d\d:00Z", ONE_SECOND.encode() + b"Z",
                  (burst / "post-comments.atom.xml").read_bytes())
    _, _, captured = parse_headers_file((burst / "post-comments.atom.xml.headers").read_text())
    headers = {name: ", ".join(v for k, v in captured if k.lower() == name.lower())
               for name in ("ETag", "Last-Modified", "Link")}
    listing: list[dict[str, object]] = []
    for page in (1, 2, 3):
        listing += json.loads((burst / f"rest-comments-post4.page{page}.json").read_bytes())
    for item in listing:
        if str(item["date_gmt"]).startswith("2013-10-24"):
            item["date"] = item["date_gmt"] = ONE_SECOND
    blog_server.scenario = "03-burst-of-24"
    blog_server.add_file(POST_PATH + "feed/atom/", feed, "application/atom+xml; charset=UTF-8",
                         headers)
    blog_server.add_file("/wp-json/wp/v2/comments?post=4&per_page=100&orderby=id&order=asc",
                         json.dumps(listing).encode(), "application/json; charset=UTF-8",
                         {"X-WP-Total": str(len(listing)), "X-WP-TotalPages": "1"})
    result = run_once(config)
    assert result.returncode == 0, result.stderr
    assert "REST backfill: 27 comments in 1 pages" in result.stderr

    _settle(webhook_receiver, 24)
    assert smtp_server.wait_for(24, timeout=20)
    assert [_comment_number(p) for p in _payloads(webhook_receiver)] == list(range(6, 30))
    mailed = []
    for mail in smtp_server.messages:
        part = mail.get_body(preferencelist=("plain",))
        assert part is not None
        found = re.search(r"#comment-(\d+)", part.get_content())
        assert found is not None
        mailed.append(int(found[1]))
    assert mailed == list(range(6, 30))


def test_site_wide_comment_feed_burst_is_backfilled_post_by_post(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver) -> None:
    subs = subscription("site", f"{blog_server.origin}/", "feed-json")
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver, subs)
    assert run_once(config).returncode == 0
    blog_server.scenario = "03-burst-of-24"
    result = run_once(config)
    assert result.returncode == 0, result.stderr
    # The site feed shows 20-29; comment 5 (captured only in the post's feed) and 6-19 come
    # from the post's REST listing, its id learnt from one of its comments.
    _settle(webhook_receiver, 25)
    assert [_comment_number(p) for p in _payloads(webhook_receiver)] == list(range(5, 30))
    assert blog_server.count("/wp-json/wp/v2/comments/29") == 1
    assert run_once(config).returncode == 0
    time.sleep(0.3)
    assert len(webhook_receiver.received) == 25


def test_rescans_never_report_comments_older_than_the_subscription(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver) -> None:
    # Subscribed while the post has 27 comments and its feed shows 10: the first poll lists
    # the other 17 through REST as part of the baseline, so no rescan takes them for new.
    blog_server.scenario = "03-burst-of-24"
    subs = EDIT_SUBS.format(origin=blog_server.origin, post=POST_PATH, extra="")
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver, subs)
    first = run_once(config)
    assert first.returncode == 0, first.stderr
    assert "REST rescan: 27 comments in 3 pages" in first.stderr
    _make_rescans_due(config)
    rescan = run_once(config)
    assert rescan.returncode == 0, rescan.stderr
    assert "REST rescan: 27 comments" in rescan.stderr
    time.sleep(0.3)
    assert smtp_server.messages == []


def _make_rescans_due(config: Path) -> None:
    """Move the state's clock instead of sleeping through `rescan`."""
    with sqlite3.connect(config.parent / "state.db") as conn:
        conn.execute("UPDATE feeds SET rescan_due = 0 WHERE rescan_due IS NOT NULL")


def _four_scenarios(config: Path, blog_server: BlogServer) -> list[str]:
    """Poll through all four captures, each poll after the first a rescan; return the logs."""
    logs = []
    for scenario in ("01-seed-thread", "02-markup-comment", "03-burst-of-24",
                     "04-edit-and-trash"):
        blog_server.scenario = scenario
        result = run_once(config)
        assert result.returncode == 0, result.stderr
        logs.append(result.stderr)
        _make_rescans_due(config)
    return logs


EDIT_SUBS = """\
  - name: thread
    url: {origin}{post}
    watch: comments
    rescan: 6h
    notify: [me]{extra}
"""


def test_edit_and_trash_report_nothing_by_default(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver) -> None:
    subs = EDIT_SUBS.format(origin=blog_server.origin, post=POST_PATH, extra="")
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver, subs)
    logs = _four_scenarios(config, blog_server)
    assert smtp_server.wait_for(25, timeout=20)
    time.sleep(0.3)
    assert len(smtp_server.messages) == 25  # comment 5, then the burst; no edit, no error
    assert "REST rescan" in logs[-1]  # comment 2's edit was seen, only through REST
    subjects = [m["Subject"] for m in smtp_server.messages]
    assert not any("Edited" in s for s in subjects)


def test_notify_edits_reports_one_edit(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver) -> None:
    subs = EDIT_SUBS.format(origin=blog_server.origin, post=POST_PATH,
                            extra="\n    notify_edits: true")
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver, subs)
    _four_scenarios(config, blog_server)
    assert smtp_server.wait_for(26, timeout=20)
    time.sleep(0.3)
    edits = [m for m in smtp_server.messages if "Edited" in m["Subject"]]
    assert len(smtp_server.messages) == 26 and len(edits) == 1
    assert "East Side Boy" in edits[0]["Subject"]
    text_part = edits[0].get_body(preferencelist=("plain",))
    assert text_part is not None and "thanks for article (edited)" in text_part.get_content()

    # The same edit is not reported again by the next rescan.
    assert run_once(config).returncode == 0
    time.sleep(0.3)
    assert len(smtp_server.messages) == 26


def _rest_item(scenario: str, comment_id: int) -> dict[str, object]:
    """One comment as the scenario's REST capture lists it."""
    for path in sorted((WORDPRESS_DIR / scenario).glob("rest-comments-post4*.json")):
        for item in json.loads(path.read_bytes()):
            if item["id"] == comment_id:
                return dict(item)
    raise AssertionError(f"comment {comment_id} not captured in {scenario}")


def test_an_edit_on_wordpress_is_found_by_the_site_probe_within_one_poll(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver) -> None:
    """Comment 2 edited on the real blog (`04-edit-and-trash`): neither the thread's
    validators nor the site's count move, so a conditional GET answers 304. With
    `notify_edits` the site probe carries the newest comments' text; comment 2's changed,
    so its thread alone is read in full at the next poll, long before `rescan` (6 h)."""
    subs = EDIT_SUBS.format(origin=blog_server.origin, post=POST_PATH,
                            extra="\n    notify_edits: true")
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver, subs)
    blog_server.scenario = "03-burst-of-24"
    first = run_once(config)
    assert first.returncode == 0, first.stderr
    probes = [unquote(r.path) for r in blog_server.requests if "_fields=" in r.path]
    assert probes and all(p.endswith("_fields=id,post,date_gmt,content") for p in probes), probes

    # The capture also trashed comment 5; keep it listed, so only the edit is left to find
    # (the count alone would have rescanned the site: see the late-approval test).
    blog_server.extra_rest_comments = [_rest_item("03-burst-of-24", 5)]
    blog_server.scenario = "04-edit-and-trash"
    _, _, before = parse_headers_file(
        (WORDPRESS_DIR / "03-burst-of-24" / "post-comments.atom.xml.headers").read_text())
    _, _, after = parse_headers_file(
        (WORDPRESS_DIR / "04-edit-and-trash" / "post-comments.atom.xml.headers").read_text())
    assert get_header(before, "ETag") == get_header(after, "ETag")  # WordPress: no change
    blog_server.clear_log()
    found = run_once(config)
    assert found.returncode == 0, found.stderr
    assert "comments edited on 1 post" in found.stderr
    assert "beyond its new ones" not in found.stderr
    # What the edit cost (the README's figure): the probe, then that thread's full read --
    # its feed without validators and one REST page of its 26 comments.
    assert [r.path.split("?")[0] for r in blog_server.requests] == [
        REST_COMMENTS, POST_PATH + "feed/atom/", REST_COMMENTS]
    assert "if-none-match" not in blog_server.requests[1].headers
    assert smtp_server.wait_for(1, timeout=20)
    time.sleep(0.3)
    (mail,) = smtp_server.messages
    assert "Edited" in mail["Subject"] and "East Side Boy" in mail["Subject"]
    text_part = mail.get_body(preferencelist=("plain",))
    assert text_part is not None and "thanks for article (edited)" in text_part.get_content()

    # Reported once: the next poll asks with validators again and finds nothing.
    blog_server.clear_log()
    again = run_once(config)
    assert again.returncode == 0, again.stderr
    asked = [r for r in blog_server.requests if r.path.startswith(POST_PATH + "feed/")]
    assert asked and all("if-none-match" in r.headers for r in asked)
    assert len(blog_server.requests) == 2  # the probe and one 304: the edit check is free
    time.sleep(0.3)
    assert len(smtp_server.messages) == 1


def test_without_notify_edits_the_probe_asks_for_no_text(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver) -> None:
    """The default settings pay nothing for the edit check: the probe stays ids only."""
    subs = EDIT_SUBS.format(origin=blog_server.origin, post=POST_PATH, extra="")
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver, subs)
    blog_server.scenario = "03-burst-of-24"
    assert run_once(config).returncode == 0
    blog_server.scenario = "04-edit-and-trash"
    blog_server.extra_rest_comments = [_rest_item("03-burst-of-24", 5)]
    blog_server.clear_log()
    quiet = run_once(config)
    assert quiet.returncode == 0, quiet.stderr
    probes = [unquote(r.path) for r in blog_server.requests if "_fields=" in r.path]
    assert probes and all(p.endswith("_fields=id,post,date_gmt") for p in probes), probes
    assert "edited" not in quiet.stderr
    time.sleep(0.3)
    assert not any("Edited" in m["Subject"] for m in smtp_server.messages)


def test_replies_to_me_quotes_the_parent_fetched_from_rest(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver) -> None:
    # Comment 3 scrolled out of the site's comment feed long ago and was never stored: the
    # replies to it in the window (20 and 25) are recognised and quoted only by fetching it.
    blog_server.scenario = "03-burst-of-24"
    subs = subscription(
        "replies-to-me", f"{blog_server.origin}/", "me",
        replies_to='[" SouthernFriedBolshevik "]', backfill="10")
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver, subs)
    result = run_once(config)
    assert result.returncode == 0, result.stderr
    assert smtp_server.wait_for(2, timeout=10)
    time.sleep(0.3)
    assert len(smtp_server.messages) == 2
    assert blog_server.count("/wp-json/wp/v2/comments/3") == 1
    for mail, number in zip(smtp_server.messages, (20, 25), strict=True):
        assert mail["Subject"].startswith("Reply by Reader")
        assert "to southernfriedbolshevik" in mail["Subject"]
        text_part = mail.get_body(preferencelist=("plain",))
        assert text_part is not None
        text = text_part.get_content()
        assert f"#comment-{number}" in text
        quoted = text.index("southernfriedbolshevik wrote:\n> Thank you very much")
        assert quoted < text.index(f"Burst comment number {number - 5}")


def test_a_thread_whose_validators_are_the_sites_is_answered_304(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver) -> None:
    """WordPress's validators are the site's: here set by a comment on another post, newer
    than anything in this thread. They are kept all the same, so the thread costs a 304."""
    feed = (WORDPRESS_DIR / "01-seed-thread" / "post-comments.atom.xml").read_bytes()
    newest = WORDPRESS_DIR / "03-burst-of-24" / "post-comments.atom.xml.headers"
    _, _, captured = parse_headers_file(newest.read_text())  # the site, 2 Nov 2013
    validators = {name: value for name in ("ETag", "Last-Modified")
                  if (value := get_header(captured, name)) is not None}
    path = "/2013/10/19/older-post/feed/atom/"
    blog_server.add_file(path, feed, "application/atom+xml; charset=UTF-8", validators)
    subs = subscription("older", f"{blog_server.origin}{path}", "feed-json")
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver, subs)
    assert run_once(config).returncode == 0
    blog_server.clear_log()
    again = run_once(config, "-v")
    assert again.returncode == 0, again.stderr
    (asked,) = [r for r in blog_server.requests if r.path == path]
    assert asked.headers.get("if-none-match") == validators["ETag"]
    assert asked.headers.get("if-modified-since") == validators["Last-Modified"]
    assert any(path in line and " 304 " in line for line in again.stderr.splitlines())


def test_late_approval_behind_a_304_is_reported_once_after_the_rescan(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver) -> None:
    feed = (WORDPRESS_DIR / "02-markup-comment" / "post-comments.atom.xml").read_bytes()
    # WordPress's validators: site-wide, here set by comment 5, the feed's newest entry.
    headers = {"ETag": '"late-approval"', "Last-Modified": "Wed, 23 Oct 2013 12:00:00 GMT"}
    path = "/late/feed/atom/"
    blog_server.add_file(path, feed, "application/atom+xml; charset=UTF-8", headers)
    subs = subscription("thread", f"{blog_server.origin}{path}", "feed-json", rescan="6h")
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver, subs)
    assert run_once(config).returncode == 0

    # A comment held since 22 Oct is approved: it appears below comment 5 (23 Oct), and
    # neither validator changes.
    late = _late_entry(feed)
    blog_server.add_file(path, late, "application/atom+xml; charset=UTF-8", headers)
    blog_server.clear_log()
    hidden = run_once(config, "-v")  # unchanged polls are logged at DEBUG
    assert hidden.returncode == 0, hidden.stderr
    (asked,) = [r for r in blog_server.requests if r.path == path]
    assert asked.headers.get("if-none-match") == '"late-approval"'
    assert " 304 " in hidden.stderr
    time.sleep(0.3)
    assert webhook_receiver.received == []

    _make_rescans_due(config)  # six hours later
    found = run_once(config)
    assert found.returncode == 0, found.stderr
    _settle(webhook_receiver, 1)
    (payload,) = _payloads(webhook_receiver)
    assert _comment_number(payload) == 30
    entry = payload["entry"]
    assert isinstance(entry, dict) and entry["author"] == "Held Back"

    _make_rescans_due(config)
    assert run_once(config).returncode == 0
    assert run_once(config).returncode == 0
    time.sleep(0.3)
    assert len(webhook_receiver.received) == 1


@pytest.mark.parametrize("rest_id", [1, 30], ids=["late-approval", "import"])
def test_late_approval_on_wordpress_is_found_by_the_site_probe_within_one_poll(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver, rest_id: int) -> None:
    """An approval at an old id moves the count with no new id: the site is rescanned. An
    import has a new id but an old date: the probe names its post, whose thread is read
    without validators. Either way the comment is reported at the next poll."""
    subs = subscription("thread", f"{blog_server.origin}{POST_PATH}", "feed-json")
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver, subs)
    assert run_once(config).returncode == 0

    # A comment held since 22 Oct is approved. The thread's validators are the site's and do
    # not move; the site's approved-comment count does, with no newer comment to explain it.
    seed = WORDPRESS_DIR / "01-seed-thread" / "post-comments.atom.xml"
    _, _, captured = parse_headers_file((seed.parent / (seed.name + ".headers")).read_text())
    validators = {name: value for name in ("ETag", "Last-Modified")
                  if (value := get_header(captured, name)) is not None}
    assert len(validators) == 2
    blog_server.add_file(POST_PATH + "feed/atom/", _late_entry(seed.read_bytes()),
                         "application/atom+xml; charset=UTF-8", validators)
    blog_server.extra_rest_comments = [{"id": rest_id, "post": 4}]
    blog_server.clear_log()
    found = run_once(config)
    assert found.returncode == 0, found.stderr
    # Only a count its new ids do not explain rescans the whole site.
    assert ("beyond its new ones" in found.stderr) is (rest_id == 1)
    _settle(webhook_receiver, 1)
    (payload,) = _payloads(webhook_receiver)
    assert _comment_number(payload) == 30
    asked = [r for r in blog_server.requests if r.path == POST_PATH + "feed/atom/"]
    assert asked and "if-none-match" not in asked[0].headers  # read in full: the count moved

    # The next poll is conditional again and reports nothing more.
    blog_server.clear_log()
    assert run_once(config).returncode == 0
    asked = [r for r in blog_server.requests if r.path == POST_PATH + "feed/atom/"]
    assert asked and all("if-none-match" in r.headers for r in asked)
    time.sleep(0.3)
    assert len(webhook_receiver.received) == 1


def _late_entry(feed: bytes) -> bytes:
    """The feed with comment 30, dated 22 Oct 2013, inserted after its newest entry."""
    text = feed.decode()
    first_end = text.index("</entry>") + len("</entry>")
    post = "http://blog.test/2013/10/20/why-defend-stalin/"
    entry = f"""
	<entry>
		<title>By: Held Back</title>
		<link rel="alternate" href="{post}#comment-30" type="text/html" />
		<author><name>Held Back</name></author>
		<id>{post}#comment-30</id>
		<updated>2013-10-22T08:30:00Z</updated>
		<published>2013-10-22T08:30:00Z</published>
		<content type="html"><![CDATA[<p>Held in moderation for a week.</p>]]></content>
		<thr:in-reply-to ref="{post}" href="{post}" type="text/html" />
	</entry>"""
    return (text[:first_end] + entry + text[first_end:]).encode()


def _blogger_comments(count: int, first_id: int, first_minute: int) -> list[Comment]:
    return [Comment(first_id + i, f"Walker {i + 1}", f"Burst comment {i + 1} on the railway.",
                    first_minute + i, parent=444 if (i + 1) % 7 == 0 else None)
            for i in range(count)]


SEED = [Comment(444, "Alan", "I walked this in 1998 & the viaduct was still open.", 0),
        Comment(555, "Anonymous", "Is the path open past the second bridge?", 5),
        Comment(222, "Margaret", "Thank you Alan! The viaduct is closed now.", 10, parent=444)]


def _serve_blogger(blog: BlogServer, comments: list[Comment], per_page: int = 25) -> None:
    pages = range(1, len(comments) + 1, per_page)
    # Query-specific pages first: the bare path answers any query.
    for start in pages:
        if start > 1:
            blog.add_file(blogger_feed.page_path(start, per_page),
                          blogger_feed.comment_page(comments, start=start, per_page=per_page),
                          "application/atom+xml; charset=UTF-8")
    blog.remove_file(blogger_feed.FEED_PATH)
    blog.add_file(blogger_feed.FEED_PATH, blogger_feed.comment_page(comments, per_page=per_page),
                  "application/atom+xml; charset=UTF-8")


def test_blogger_burst_larger_than_a_page_is_backfilled_through_next_links(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver) -> None:
    _serve_blogger(blog_server, SEED)
    subs = subscription("railway", f"{blog_server.origin}{blogger_feed.FEED_PATH}", "feed-json")
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver, subs)
    assert run_once(config).returncode == 0

    # 50 new comments: two full pages of 25 and the start of a third, where the known begin.
    burst = _blogger_comments(50, 1001, 60)
    _serve_blogger(blog_server, SEED + burst)
    blog_server.clear_log()
    result = run_once(config)
    assert result.returncode == 0, result.stderr
    _settle(webhook_receiver, 50)
    payloads = _payloads(webhook_receiver)
    assert [p["entry"]["key"] for p in payloads] == [  # type: ignore[index]
        c.key for c in burst]
    for payload, comment in zip(payloads, burst, strict=True):
        entry, parent = payload["entry"], payload["parent"]
        assert isinstance(entry, dict)
        assert entry["is_reply"] is (comment.parent == 444)
        if comment.parent == 444:
            assert isinstance(parent, dict) and parent["author"] == "Alan"
    assert blog_server.count(blogger_feed.page_path(26, 25)) == 1
    assert blog_server.count(blogger_feed.page_path(51, 25)) == 1

    assert run_once(config).returncode == 0
    time.sleep(0.3)
    assert len(webhook_receiver.received) == 50


def test_gap_without_backfill_says_comments_may_be_missing(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver) -> None:
    # The same burst, served without its next page: nothing can fill the gap.
    _serve_blogger(blog_server, SEED)
    subs = subscription("railway", f"{blog_server.origin}{blogger_feed.FEED_PATH}", "me")
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver, subs)
    assert run_once(config).returncode == 0
    burst = _blogger_comments(30, 1001, 60)
    blog_server.add_file(blogger_feed.FEED_PATH,
                         blogger_feed.comment_page(SEED + burst, per_page=25).replace(
                             b"<link rel='next'", b"<link rel='x-next'"),
                         "application/atom+xml; charset=UTF-8")
    assert run_once(config).returncode == 0
    assert smtp_server.wait_for(25, timeout=20)
    time.sleep(0.3)
    texts = []
    for mail in smtp_server.messages:
        part = mail.get_body(preferencelist=("plain",))
        assert part is not None
        texts.append(part.get_content())
    warned = [t for t in texts if "may be missing; see the thread" in t]
    assert len(warned) == 1 and "Walker 6 wrote" in warned[0]
    # openSearch says 33 exist; 3 were stored and 25 are shown: at least 5 are missing.
    assert "at least 5 comments may be missing" in warned[0]


NEW_POST = "/2013/11/09/a-new-post/"


def _posts_with_a_new_post() -> tuple[bytes, bytes]:
    """The posts feed with a newer post open for comments, and that post's comment feed."""
    posts = (WORDPRESS_DIR / "01-seed-thread" / "posts.atom.xml").read_text()
    start = posts.index("\t<entry>")
    second = posts.index("\t<entry>", start + 1)
    stalin = posts[second:posts.index("</entry>", second)]
    new = (stalin.replace("/2013/10/20/why-defend-stalin/", NEW_POST)
           .replace("Why Defend Stalin?", "A New Post")
           .replace("2013-10-20T17:04:00Z", "2013-11-09T09:00:00Z")) + "</entry>\n"
    feed = posts[:start] + new + posts[start:]
    comments = (WORDPRESS_DIR / "01-seed-thread" / "post-comments.atom.xml").read_text()
    comments = (comments.replace("/2013/10/20/why-defend-stalin/", NEW_POST)
                .replace("Why Defend Stalin?", "A New Post"))
    return feed.encode(), comments.encode()


def test_watch_threads_follows_each_recent_post_and_new_posts_join(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver) -> None:
    subs = subscription(
        "site", f"{blog_server.origin}/", "feed-json", watch="threads", threads_max_age="20000d")
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver, subs)
    # The first run reads the posts feed (a baseline) and joins the post's comment feed,
    # which the second run reads as part of the same baseline: nothing old is reported.
    assert run_once(config).returncode == 0
    second = run_once(config)
    assert second.returncode == 0, second.stderr
    assert f"poll {blog_server.origin}{POST_PATH}feed/atom/ 200 new=3 queued=0 baseline" \
        in second.stderr
    time.sleep(0.3)
    assert webhook_receiver.received == []

    blog_server.scenario = "02-markup-comment"
    assert run_once(config).returncode == 0
    _settle(webhook_receiver, 1)
    assert _comment_number(_payloads(webhook_receiver)[0]) == 5

    # A new post: it is reported, its comment feed joins, and its comments are all new.
    feed, comments = _posts_with_a_new_post()
    blog_server.add_file("/feed/atom/", feed, "application/atom+xml; charset=UTF-8")
    blog_server.add_file(NEW_POST + "feed/atom/", comments,
                         "application/atom+xml; charset=UTF-8")
    assert run_once(config).returncode == 0
    _settle(webhook_receiver, 2)
    post = _payloads(webhook_receiver)[1]
    assert post["type"] == "post.created"
    assert post["entry"]["title"] == "A New Post"  # type: ignore[index]
    assert run_once(config).returncode == 0
    _settle(webhook_receiver, 5)
    joined = _payloads(webhook_receiver)[2:]
    assert [p["entry"]["link"] for p in joined] == [  # type: ignore[index]
        f"{blog_server.origin}{NEW_POST}#comment-{n}" for n in (2, 3, 4)]

    assert run_once(config).returncode == 0
    time.sleep(0.3)
    assert len(webhook_receiver.received) == 5


def test_blogger_backfill_stops_where_the_subscription_began(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver) -> None:
    # 40 comments before the subscription; its baseline saw the newest 25 of them. After a
    # burst of 30, the second page holds the last 5 new ones and then old ones: the walk ends
    # there, and the 15 old comments it never saw are not reported as new.
    old = _blogger_comments(40, 2001, 0)
    _serve_blogger(blog_server, old)
    subs = subscription("railway", f"{blog_server.origin}{blogger_feed.FEED_PATH}", "feed-json")
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver, subs)
    assert run_once(config).returncode == 0
    burst = _blogger_comments(30, 1001, 100)
    _serve_blogger(blog_server, old + burst)
    blog_server.clear_log()
    assert run_once(config).returncode == 0
    _settle(webhook_receiver, 30)
    keys = [p["entry"]["key"] for p in _payloads(webhook_receiver)]  # type: ignore[index]
    assert keys == [c.key for c in burst]
    assert blog_server.count(blogger_feed.page_path(26, 25)) == 1
    assert blog_server.count(blogger_feed.page_path(51, 25)) == 0
    assert run_once(config).returncode == 0
    time.sleep(0.3)
    assert len(webhook_receiver.received) == 30
