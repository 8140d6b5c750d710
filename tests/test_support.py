"""The test servers behave like the WordPress, SMTP and webhook peers they stand in for.

Other tests trust these servers; if they drifted from the captured WordPress behaviour,
notifier tests would pass against a blog that does not exist.
"""

from __future__ import annotations

import gzip
import json
import smtplib
import time
import urllib.request
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from tests.support.blog_server import POST_PATH, BlogServer
from tests.support.smtp_server import SmtpServer
from tests.support.webhook_receiver import WebhookReceiver

ETAG = '"4d6c8133629a3dfdf5121b6b75fafbdd"'
LAST_MODIFIED = "Sat, 02 Nov 2013 10:00:00 GMT"


def client() -> httpx.Client:
    return httpx.Client(timeout=5.0, follow_redirects=False)


def raw_get(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """urllib does not decode gzip, so the wire bytes stay visible."""
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=5.0) as response:
        return response.status, dict(response.headers.items()), response.read()


def test_origin_is_rewritten_in_bodies_and_headers(blog_server: BlogServer) -> None:
    with client() as http:
        feed = http.get(blog_server.url("/comments/feed/"), headers={"Accept-Encoding": "identity"})
        rest = http.get(blog_server.url("/wp-json/wp/v2/comments?post=4"))
        post = http.get(blog_server.url(POST_PATH))
    for response in (feed, rest, post):
        assert response.status_code == 200
        assert b"blog.test" not in response.content
        assert "blog.test" not in str(response.headers)
    assert int(feed.headers["content-length"]) == len(feed.content)
    assert "transfer-encoding" not in post.headers  # captured chunked, served with a length
    assert f"<{blog_server.origin}/wp-json/>" in feed.headers["link"]
    assert f"{blog_server.origin}{POST_PATH}#comment-2".encode() in feed.content
    # JSON escapes slashes and the oEmbed link URL-encodes the origin; both are rewritten.
    assert rest.json()[0]["link"].startswith(blog_server.origin + POST_PATH)
    assert blog_server.origin.replace("/", "\\/").encode() in rest.content
    assert b"url=http%3A%2F%2F127.0.0.1%3A" in post.content
    # Three separate Link headers, as WordPress sends them for a post.
    assert len(post.headers.get_list("link")) == 3


def test_rss2_self_link_drops_the_port_like_wordpress(blog_server: BlogServer) -> None:
    with client() as http:
        body = http.get(blog_server.url("/comments/feed/?x=1&y=2")).text
    assert '<atom:link href="http://127.0.0.1/comments/feed/?x=1&#038;y=2" rel="self"' in body
    blog_server.portless_self_links = False
    with client() as http:
        body = http.get(blog_server.url("/comments/feed/")).text
    assert f'<atom:link href="{blog_server.origin}/comments/feed/" rel="self"' in body


def test_matching_if_none_match_gets_wordpress_304(blog_server: BlogServer) -> None:
    url = blog_server.url(POST_PATH + "feed/atom/")
    with client() as http:
        first = http.get(url)
        assert first.headers["etag"] == ETAG
        again = http.get(url, headers={"If-None-Match": first.headers["etag"]})
        since = http.get(url, headers={"If-Modified-Since": LAST_MODIFIED})
        other = http.get(url, headers={"If-None-Match": '"something-else"'})
        page = http.get(blog_server.url(POST_PATH), headers={"If-None-Match": ETAG})
    assert again.status_code == 304 and again.content == b""
    assert sorted(again.headers.keys()) == ["date", "etag", "last-modified", "server"]
    assert again.headers["last-modified"] == LAST_MODIFIED
    assert since.status_code == 304
    assert other.status_code == 200
    assert page.status_code == 200  # HTML pages carry no validators


def test_validators_do_not_move_when_backdated_comments_arrive(blog_server: BlogServer) -> None:
    """WordPress derives the ETag from max(last post, last comment) date, not from content.

    Every capture shares one ETag, so a conditional GET made in 01 is answered 304 in 02
    although comment 5 arrived; tests that switch scenarios must expect this or turn it off.
    """
    url = blog_server.url(POST_PATH + "feed/atom/")
    with client() as http:
        etag = http.get(url).headers["etag"]
        blog_server.scenario = "02-markup-comment"
        assert http.get(url, headers={"If-None-Match": etag}).status_code == 304
        blog_server.conditional_get = False
        changed = http.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and b"Markup Tester" in changed.content
    assert changed.headers["etag"] == etag


def test_later_scenarios_overlay_earlier_ones(blog_server: BlogServer) -> None:
    with client() as http:
        posts_01 = http.get(blog_server.url("/feed/")).content
        thread_01 = http.get(blog_server.url(POST_PATH + "feed/")).content
        blog_server.scenario = "02-markup-comment"
        posts_02 = http.get(blog_server.url("/feed/")).content
        thread_02 = http.get(blog_server.url(POST_PATH + "feed/")).content
    assert posts_02 == posts_01
    assert b"Markup Tester" in thread_02 and b"Markup Tester" not in thread_01
    source = blog_server.fixture_path("posts.rss2.xml")
    assert source is not None and source.parent.name == "01-seed-thread"
    with pytest.raises(ValueError):
        blog_server.scenario = "99-nothing"


def test_rest_paging_follows_link_next(blog_server: BlogServer) -> None:
    blog_server.scenario = "03-burst-of-24"
    url: str | None = blog_server.url(
        "/wp-json/wp/v2/comments?post=4&per_page=10&orderby=id&order=asc"
    )
    ids: list[int] = []
    totals: set[str] = set()
    with client() as http:
        for _ in range(5):
            if url is None:
                break
            response = http.get(url)
            assert response.status_code == 200
            ids += [item["id"] for item in response.json()]
            totals.add(response.headers["x-wp-total"])
            url = response.links.get("next", {}).get("url")
            assert url is None or url.startswith(blog_server.origin + "/wp-json/wp/v2/comments?")
        beyond = http.get(blog_server.url("/wp-json/wp/v2/comments?post=4&page=4"))
    assert url is None
    assert ids == [2, 3, *range(5, 30)] and totals == {"27"}
    assert blog_server.count("/wp-json/wp/v2/comments") == 4
    assert [r.path.count("post%5B0%5D=4") for r in blog_server.requests] == [0, 1, 1, 0]
    assert beyond.status_code == 400
    assert beyond.json()["code"] == "rest_comment_invalid_page_number"


def test_rest_captures_do_not_mix_scenarios(blog_server: BlogServer) -> None:
    """04 captured one unpaged list; 03's pages must not leak into it."""
    blog_server.scenario = "04-edit-and-trash"
    with client() as http:
        page1 = http.get(blog_server.url("/wp-json/wp/v2/comments?post=4&page=1"))
        after = http.get(
            blog_server.url("/wp-json/wp/v2/comments?post=4&after=2013-10-24T09:20:00")
        )
    assert page1.headers["x-wp-total"] == "26" and 5 not in [c["id"] for c in page1.json()]
    assert [c["id"] for c in after.json()] == [29, 28, 27, 26]


def test_rest_single_comment_route(blog_server: BlogServer) -> None:
    blog_server.scenario = "03-burst-of-24"
    with client() as http:
        found = http.get(blog_server.url("/wp-json/wp/v2/comments/3"))
        gone = http.get(blog_server.url("/wp-json/wp/v2/comments/4"))  # a pingback
    assert found.status_code == 200
    item = found.json()
    assert (item["id"], item["post"], item["author_name"]) == (3, 4, "southernfriedbolshevik")
    assert blog_server.origin in item["link"]
    assert gone.status_code == 404 and gone.json()["code"] == "rest_comment_invalid_id"


def test_added_file_with_validators_answers_304_like_wordpress(blog_server: BlogServer) -> None:
    headers = {"ETag": '"v1"', "Last-Modified": "Wed, 23 Oct 2013 12:00:00 GMT"}
    blog_server.add_file("/x/feed/", b"<rss/>", "application/rss+xml", headers)
    with client() as http:
        fresh = http.get(blog_server.url("/x/feed/"))
        blog_server.add_file("/x/feed/", b"<rss>changed</rss>", "application/rss+xml", headers)
        hidden = http.get(blog_server.url("/x/feed/"), headers={"If-None-Match": '"v1"'})
        plain = http.get(blog_server.url("/x/feed/"))
    assert fresh.status_code == 200 and fresh.headers["etag"] == '"v1"'
    assert hidden.status_code == 304
    assert plain.status_code == 200 and plain.content == b"<rss>changed</rss>"


def test_gzip_only_for_types_apache_compresses(blog_server: BlogServer) -> None:
    gz = {"Accept-Encoding": "gzip"}
    status, headers, wire = raw_get(blog_server.url("/comments/feed/"), gz)
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert int(headers["Content-Length"]) == len(wire)
    assert gzip.decompress(wire).startswith(b"<?xml")
    _, atom_headers, atom = raw_get(blog_server.url("/comments/feed/atom/"), gz)
    assert "Content-Encoding" not in atom_headers and atom.startswith(b"<?xml")


def test_overrides_queue_then_fall_back(blog_server: BlogServer) -> None:
    blog_server.override("/feed/", status=301, headers={"Location": "http://blog.test/feed/atom/"})
    blog_server.override("/feed/", status=503, body=b"busy", repeat=2)
    blog_server.add_file("/extra.xml", b"<a href='http://blog.test/x'/>", "application/xml")
    with client() as http:
        statuses = [http.get(blog_server.url("/feed/")).status_code for _ in range(5)]
        first = blog_server.requests[0]
        followed = http.get(blog_server.url("/feed/"), follow_redirects=True)
        extra = http.get(blog_server.url("/extra.xml"))
        missing = http.get(blog_server.url("/nope/"))
        slashless = http.get(blog_server.url("/feed"))
    assert statuses == [301, 503, 503, 200, 200]
    assert first.method == "GET" and "host" in first.headers
    assert followed.status_code == 200
    assert extra.text == f"<a href='{blog_server.origin}/x'/>"
    assert missing.status_code == 404 and b"Not Found" in missing.content
    assert slashless.status_code == 301
    assert slashless.headers["location"] == blog_server.url("/feed/")


def test_drip_sends_one_byte_at_a_time(blog_server: BlogServer) -> None:
    blog_server.override("/feed/", drip=(6, 0.05), body=b"abc")
    started = time.monotonic()
    with client() as http:
        response = http.get(blog_server.url("/feed/"))
    assert response.content == b"abcabc"
    assert time.monotonic() - started >= 0.25


def test_smtp_message_arrives_parsed(smtp_server: SmtpServer) -> None:
    message = EmailMessage()
    message["From"] = "Notifier <notifier@example.org>"
    message["To"] = "reader@example.org"
    message["Subject"] = "New comment by Markup Tester — “Why Defend Stalin?”"
    message.set_content("plain body")
    message.add_alternative("<p>html body</p>", subtype="html")
    smtp_server.fail_next(451, "Try later")
    with smtplib.SMTP("127.0.0.1", smtp_server.port, timeout=5.0) as smtp:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            smtp.send_message(message, to_addrs=["bounce@example.org"])
        smtp.send_message(message, to_addrs=["reader@example.org", "bcc@example.org"])
    [mail] = smtp_server.wait_for(1, timeout=5.0)
    assert refused.value.smtp_code == 451
    assert [r.code for r in smtp_server.rejections] == [451]
    assert mail["Subject"] == message["Subject"]
    assert mail.rcpt_tos == ("reader@example.org", "bcc@example.org")
    assert mail.mail_from == "notifier@example.org"
    html = mail.get_body(preferencelist=("html",))
    assert html is not None and html.get_content() == "<p>html body</p>\n"


def test_webhook_script_then_default(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.script([(500, {}, b""), (200, {}, b"ok")])
    with client() as http:
        answers = [http.post(webhook_receiver.url, json={"text": "hi"}) for _ in range(3)]
    received = webhook_receiver.wait_for(3, timeout=5.0)
    assert [a.status_code for a in answers] == [500, 200, 204]
    assert answers[1].content == b"ok"
    assert [r.status for r in received] == [500, 200, 204]
    assert received[0].json == {"text": "hi"} and json.loads(received[0].body) == {"text": "hi"}
    assert received[0].headers["content-type"] == "application/json"
    assert received[0].path == "/hook"


def test_fixtures_dir_points_at_the_captures(fixtures_dir: Path) -> None:
    assert (fixtures_dir / "README.md").is_file()
    assert (fixtures_dir / "wordpress-6.1" / "01-seed-thread" / "not-modified.headers").is_file()
