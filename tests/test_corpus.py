"""Real third-party feeds: golden files for the ones issue 10 measured, and a walk of them all.

`tests/corpus/` holds a subset of feeds and pages from other projects' test suites (origins in
`tests/corpus/SOURCES.md`). The golden files under `tests/golden/corpus/` say what each chosen
feed normalises to; long strings are kept as their start, length and hash, so a change
anywhere still shows, without copying whole podcasts' show notes into the expectations.
Regenerate with `UPDATE_GOLDEN=1 pytest tests/test_corpus.py` and read the diff.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import feedparser
import pytest

from notifier.cli import main
from notifier.entrytext import MAX_ENTRIES
from notifier.htmltext import html_to_text
from notifier.models import FeedKind, ParsedFeed
from notifier.parse import ParseError, parse_feed
from tests.support.blog_server import BlogServer
from tests.support.golden import check_golden
from tests.support.smtp_server import SmtpServer
from tests.support.webhook_receiver import WebhookReceiver
from tests.test_end_to_end import run_once, subscription, write_config

CORPUS = Path(__file__).parent / "corpus"
FOLDERS = sorted(path.name for path in CORPUS.iterdir() if path.is_dir())
_SKIP = {"SOURCES.md", "SOURCES.tsv", "README.md"}
_LONG = 300

# Corpus file -> the URL it is taken to have been fetched from (its self link where it has one).
GOLDENS: dict[str, str] = {
    "netnewswire/atp.rss": "https://atp.fm/rss",
    "netnewswire/cloudblog.rss": "https://cloudblog.withgoogle.com/rss/",
    "static-sites/hamzablm-jekyll-feed.xml": "https://hamzablm.github.io/feed.xml",
    "feedjira/SamRuby.xml": "http://intertwingly.net/blog/index.atom",
    "node-feedparser/intertwingly.atom": "http://intertwingly.net/blog/index.atom",
    "netnewswire/scriptingNews.rss": "http://scripting.com/rss.xml",
    "rss2email/disqus__feed.rss": "http://software-carpentry.disqus.com/comments.rss",
    "mastodon/localdomain-feed.atom.xml": "https://webdomain.com/users/foo.atom",
    "feed-rs/rss_2.0_matrix.xml": "https://matrix.org/blog/feed",
    "node-feedparser/atom-with-tag-uri-links.xml": "http://example.com",
    "feed-rs/rss_0.91_missing_id.xml": "http://example.com/rss.xml",
    "platforms/mastodon/mstdn-m.cmx.im-nova.rss": "https://m.cmx.im/@nova.rss",
}


def declared_headers(body: bytes) -> dict[str, str]:
    """feedparser's suite states each file's HTTP headers in a leading `Header:` comment."""
    headers: dict[str, str] = {}
    for match in re.finditer(rb"^Header:\s*([\w-]+):\s*(.*?)\s*$", body[:4096], re.M):
        headers[match[1].decode("latin-1").lower()] = match[2].decode("latin-1")
    return headers


def load(name: str, url: str, expect: FeedKind | None = None) -> ParsedFeed:
    body = (CORPUS / name).read_bytes()
    return parse_feed(body, url, declared_headers(body), expect=expect)


def shorten(text: str) -> str:
    if len(text) <= _LONG:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{text[:160]}… [{len(text)} chars, sha256 {digest}…]"


# -- golden files ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(GOLDENS))
def test_corpus_golden(name: str) -> None:
    check_golden(f"corpus/{name.replace('/', '__')}.json", load(name, GOLDENS[name]), shorten)


def test_corpus_golden_read_as_the_subscription_watches() -> None:
    name = "mastodon/localdomain-feed.atom.xml"
    feed = load(name, GOLDENS[name], expect="posts")
    check_golden(f"corpus/{name.replace('/', '__')}.as-posts.json", feed, shorten)


# -- what each golden file shows, said in words ------------------------------------------------


def test_empty_content_encoded_falls_back_to_the_description() -> None:
    feed = load("netnewswire/atp.rss", GOLDENS["netnewswire/atp.rss"])
    assert feed.entries and all(len(entry.content_text) > 300 for entry in feed.entries)


def test_google_cloud_items_keep_their_full_description() -> None:
    """The first item's `content:encoded` is empty; every item also nests an Open Graph
    `<og><description>` teaser, which feedparser reports as plain-text content. Each item's
    own HTML `<description>` is the article: it is what the reader gets."""
    feed = load("netnewswire/cloudblog.rss", GOLDENS["netnewswire/cloudblog.rss"])
    assert len(feed.entries) == 20
    assert all(len(entry.content_text) > 1_500 for entry in feed.entries)
    august = feed.entries[1]
    assert august.content_text.startswith("Last month on the Google Cloud Platform")
    assert "Here are some of the top GCP stories" not in august.content_text  # the teaser


def test_matrix_org_empty_content_encoded_falls_back_to_the_description() -> None:
    (entry,) = load("feed-rs/rss_2.0_matrix.xml", GOLDENS["feed-rs/rss_2.0_matrix.xml"]).entries
    assert entry.title == "This Week in Matrix 2022-09-23"
    assert entry.content_text.startswith("Matrix Live Dept of Social Good")


def test_atom_content_src_falls_back_to_the_summary() -> None:
    name = "static-sites/hamzablm-jekyll-feed.xml"
    entries = load(name, GOLDENS[name]).entries
    assert len(entries) == 5
    assert entries[0].content_text.startswith("Core Java: Date and Time Introduction")
    assert all(entry.content_text for entry in entries)


@pytest.mark.parametrize("name", ["feedjira/SamRuby.xml", "node-feedparser/intertwingly.atom"])
def test_atom_entries_inherit_the_feed_author_and_untyped_replies_link(name: str) -> None:
    entries = load(name, GOLDENS[name]).entries
    assert {entry.author for entry in entries} == {"Sam Ruby"}
    assert {entry.author_url for entry in entries} == {"http://intertwingly.net/blog/"}
    first = entries[0]
    assert re.fullmatch(r"http://intertwingly\.net/blog/\d+\.atom", first.comments_feed)
    assert first.comment_count is not None
    assert sum(1 for entry in entries if entry.comments_feed) == len(entries)


def test_two_items_sharing_a_guid_are_both_kept_with_stable_keys() -> None:
    name = "netnewswire/scriptingNews.rss"
    feed = load(name, GOLDENS[name])
    again = load(name, GOLDENS[name])
    assert len(feed.entries) == 50 == len({entry.key for entry in feed.entries})
    assert [entry.key for entry in feed.entries] == [entry.key for entry in again.entries]
    guid = "http://scripting.com/2017/06/25.html#a080631"
    pair = [entry for entry in feed.entries if entry.key.startswith(guid)]
    older = min(pair, key=lambda entry: entry.published or 0)
    assert len(pair) == 2 and older.key == guid  # the one seen alone earlier keeps its id


def test_disqus_comments_link_into_the_post_and_name_it() -> None:
    name = "rss2email/disqus__feed.rss"
    feed = load(name, GOLDENS[name])
    post = "http://software-carpentry.org/2012/11/who-wants-to-write-a-little-code/"
    assert feed.kind == "comments"
    first = feed.entries[0]
    assert (first.post_title, first.post_link) == ("Who Wants To Write a Little Code?", post)
    assert f'href="{post}#comment-53503"' in first.content_html
    assert "disqus.com/comments.rss#" not in first.content_html


def test_mastodon_timeline_is_posts_when_watched_as_posts() -> None:
    name = "mastodon/localdomain-feed.atom.xml"
    looked = load(name, GOLDENS[name])
    watched = load(name, GOLDENS[name], expect="posts")
    assert (looked.kind, looked.kind_note) == ("comments", "")
    assert watched.kind == "posts" and [e.kind for e in watched.entries] == ["post"]
    assert "reply to another" in watched.kind_note and "watch posts" in watched.kind_note
    assert watched.entries[0].key == looked.entries[0].key  # the same entry either way


def test_hugo_zero_time_is_no_date() -> None:
    """Hugo writes `Mon, 01 Jan 0001` for its pages without a date: none is stored as a date
    (a year-1 post would sort first and look ancient in every message)."""
    name = "static-sites/anaschwendler-hugo-public_index.xml"
    body = (CORPUS / name).read_bytes()
    assert body.count(b"01 Jan 0001") == 3
    entries = parse_feed(body, "https://www.anaschwendler.com/index.xml").entries
    assert len(entries) == 7
    years = [entry.published.year for entry in entries if entry.published is not None]
    assert len(years) == 4 and min(years) >= 2019
    assert all(entry.updated is None or entry.updated.year > 1 for entry in entries)


def test_a_tag_uri_is_never_a_link() -> None:
    name = "node-feedparser/atom-with-tag-uri-links.xml"
    (entry,) = load(name, GOLDENS[name]).entries
    assert entry.key == "tag:mefi.social,2024-01-26:objectId=20368395"
    assert entry.link == ""


# -- the walk ----------------------------------------------------------------------------------


def _has_text(raw: Mapping[str, Any]) -> bool:
    """Whether feedparser found any readable text in an item's content or summary."""
    values = [c.get("value", "") for c in raw.get("content", []) if isinstance(c, Mapping)]
    values.append(raw.get("summary", ""))
    return any(isinstance(v, str) and html_to_text(v).strip() for v in values)


def _walk(folder: str) -> tuple[int, int]:
    parsed = rejected = 0
    for path in sorted((CORPUS / folder).rglob("*")):
        if not path.is_file() or path.name in _SKIP or path.suffix == ".json":
            continue
        body = path.read_bytes()
        url = f"https://corpus.test/{folder}/{path.name}"
        headers = declared_headers(body)
        try:
            feed = parse_feed(body, url, headers)
        except ParseError as exc:
            assert str(exc), path
            rejected += path.suffix != ".html"
            continue
        assert path.suffix != ".html", f"{path}: a web page taken for a feed"
        parsed += 1
        keys = [entry.key for entry in feed.entries]
        assert all(keys), f"{path}: an entry without a key"
        assert len(set(keys)) == len(keys), f"{path}: keys not unique"
        again = parse_feed(body, url, headers)
        assert [entry.key for entry in again.entries] == keys, f"{path}: keys not stable"
        raws = feedparser.parse(body, response_headers=headers, sanitize_html=False)["entries"]
        with_text = {(r.get("id"), r.get("link"), r.get("summary"), str(r.get("content")))
                     for r in raws[:MAX_ENTRIES] if _has_text(r)}
        texts = sum(1 for entry in feed.entries if entry.content_text.strip())
        assert texts >= len(with_text), f"{path}: {len(with_text) - texts} entries lost text"
    return parsed, rejected


@pytest.mark.parametrize("folder", FOLDERS)
def test_corpus_walk(folder: str) -> None:
    """Every file: no crash (a page: ParseError with a reason), unique stable keys, text kept."""
    parsed, rejected = _walk(folder)
    if folder != "html":  # pages are rejected, with a reason; most feeds are read
        assert parsed > 3 * rejected, f"{folder}: {rejected} of {parsed + rejected} rejected"


# -- the subscription's watch decides, end to end ------------------------------------------------


def test_watch_posts_on_a_mastodon_timeline_reports_its_posts(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver) -> None:
    """One toot in the timeline answers another: the feed looks like comments, but the
    person asked for posts, and gets them, with the reason in the log."""
    timeline = (CORPUS / "mastodon" / "localdomain-feed.atom.xml").read_bytes()
    path = "/users/foo.atom"
    blog_server.add_file(path, timeline, "application/atom+xml; charset=utf-8")
    subs = subscription("toots", blog_server.url(path), "feed-json", watch="posts")
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver, subs)
    first = run_once(config)
    assert first.returncode == 0, first.stderr
    assert "read as posts, as its subscriptions watch posts" in first.stderr

    toot = b"""<entry><id>tag:localdomain.com,2017-04-20:objectId=12800:objectType=Status</id>
    <published>2017-04-20T08:00:00Z</published><updated>2017-04-20T08:00:00Z</updated>
    <title>New status by foo</title>
    <content type="html">&lt;p&gt;A toot of its own.&lt;/p&gt;</content>
    <link rel="alternate" type="text/html" href="https://webdomain.com/users/foo/updates/94"/>
    </entry>"""
    newer = timeline.replace(b"<entry>", toot + b"\n  <entry>", 1)
    blog_server.add_file(path, newer, "application/atom+xml; charset=utf-8")
    second = run_once(config)
    assert second.returncode == 0, second.stderr
    assert webhook_receiver.wait_for(1, timeout=20)
    time.sleep(0.3)
    (payload,) = [json.loads(request.body) for request in webhook_receiver.received]
    entry = payload["entry"]
    assert entry["kind"] == "post" and entry["author"] == "foo"
    assert "A toot of its own." in json.dumps(payload)


def test_subscriptions_watching_different_kinds_of_one_feed_hear_why_one_is_told_nothing(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver, capsys: pytest.CaptureFixture[str]) -> None:
    """One timeline, one subscription for its posts and one for its comments: the watch
    cannot win for both, so the document decides (comments, as one toot answers another)
    and the posts subscription is told nothing. The log and `status` both say so."""
    timeline = (CORPUS / "mastodon" / "localdomain-feed.atom.xml").read_bytes()
    path = "/users/foo.atom"
    blog_server.add_file(path, timeline, "application/atom+xml; charset=utf-8")
    subs = (subscription("toots", blog_server.url(path), "feed-json", watch="posts")
            + subscription("answers", blog_server.url(path), "feed-json", watch="comments"))
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver, subs)
    first = run_once(config)
    assert first.returncode == 0, first.stderr
    warning = next(line for line in first.stderr.splitlines() if "told nothing" in line)
    assert "WARNING" in warning and "read as comments: " in warning
    assert "reply to another (RFC 4685)" in warning  # why it looks like comments
    assert "toots watches posts" in warning and "answers" not in warning

    capsys.readouterr()
    assert main(["status", "-c", str(config)]) == 0
    table = capsys.readouterr().out
    assert "NOTE: toots watches posts but this feed's entries were read as comments" in table
    assert "told nothing" in table and "answers watches" not in table
    assert main(["status", "--json", "-c", str(config)]) == 0
    (feed,) = json.loads(capsys.readouterr().out)["feeds"]
    assert feed["notes"] and feed["notes"][0].startswith("toots watches posts")


def test_one_watch_on_a_feed_is_no_note_in_status(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver, capsys: pytest.CaptureFixture[str]) -> None:
    """The watch wins when every subscription of a feed agrees: nobody is told nothing."""
    timeline = (CORPUS / "mastodon" / "localdomain-feed.atom.xml").read_bytes()
    path = "/users/foo.atom"
    blog_server.add_file(path, timeline, "application/atom+xml; charset=utf-8")
    subs = (subscription("toots", blog_server.url(path), "feed-json", watch="posts")
            + subscription("more", blog_server.url(path), "me", watch="posts"))
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver, subs)
    first = run_once(config)
    assert first.returncode == 0, first.stderr
    assert "told nothing" not in first.stderr
    capsys.readouterr()
    assert main(["status", "--json", "-c", str(config)]) == 0
    (feed,) = json.loads(capsys.readouterr().out)["feeds"]
    assert feed["notes"] == [] and feed["entries_seen"] == 1
