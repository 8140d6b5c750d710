"""The pure decisions: what is new, who wants it, when to poll and retry. Plain values only."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from notifier.config import Subscription
from notifier.delivery.retry import SMTP_RETRY, WEBHOOK_RETRY, after_failure
from notifier.diff import SubscriptionView, decide, publication_order
from notifier.match import match, wants
from notifier.models import Entry, ParsedFeed
from notifier.poll.decide import deaf_note, unread_intervals
from notifier.schedule import next_poll
from notifier.store import FeedState

T0 = datetime(2013, 10, 21, 9, 0, tzinfo=UTC)
POST = "http://blog.test/2013/10/20/why-defend-stalin/"


def comment(n: int, author: str = "Reader", *, parent: int = 0, minute: int | None = None,
            text: str = "hello", parent_author: str = "") -> Entry:
    return Entry(
        key=f"{POST}#comment-{n}", kind="comment", title=f"By: {author}", author=author,
        published=T0 + timedelta(minutes=n if minute is None else minute),
        link=f"{POST}#comment-{n}", content_html=f"<p>{text}</p>", content_text=text,
        post_key=POST, post_title="Why Defend Stalin?", post_link=POST,
        parent_key=f"{POST}#comment-{parent}" if parent else "", parent_author=parent_author,
        content_hash=f"hash-{n}-{text}")


def sub(name: str = "s", **kw: object) -> Subscription:
    return Subscription.model_validate({"name": name, "url": POST, "notify": ["me"], **kw})


SEEN = SubscriptionView("s", baselined=True, backfill=0)


def test_first_poll_is_a_baseline_that_offers_nothing() -> None:
    parsed = [comment(3), comment(2)]
    d = decide(parsed, {}, [SubscriptionView("s", baselined=False, backfill=0)])
    assert [e.key for e in d.new_entries] == [comment(2).key, comment(3).key]
    assert d.candidates["s"] == ()
    assert d.baselines == ("s",)


def test_backfill_offers_the_newest_n_in_publication_order() -> None:
    parsed = [comment(4), comment(3), comment(2)]
    d = decide(parsed, {}, [SubscriptionView("s", baselined=False, backfill=2)])
    assert [e.key for e in d.candidates["s"]] == [comment(3).key, comment(4).key]


def test_only_unseen_entries_are_new_and_same_timestamp_is_no_problem() -> None:
    same = [comment(5, minute=0), comment(6, minute=0), comment(2, minute=0)]
    seen = {comment(2).key: comment(2).content_hash}
    d = decide(same, seen, [SEEN])
    assert {e.key for e in d.candidates["s"]} == {comment(5).key, comment(6).key}


def test_an_entry_coming_back_into_the_window_is_not_new() -> None:
    seen = {comment(n).key: comment(n).content_hash for n in (2, 3, 4)}
    d = decide([comment(2), comment(4)], seen, [SEEN])
    assert d.new_entries == () and d.candidates["s"] == ()


def test_edits_are_changed_not_new() -> None:
    seen = {comment(2).key: comment(2).content_hash}
    d = decide([comment(2, text="edited")], seen, [SEEN])
    assert d.new_entries == ()
    assert [e.content_text for e in d.changed_entries] == ["edited"]


def test_duplicate_keys_in_one_document_count_once() -> None:
    d = decide([comment(7), comment(7)], {}, [SEEN])
    assert len(d.new_entries) == 1


def test_publication_order_puts_undated_last_in_feed_order() -> None:
    undated = Entry(key="x", kind="post")
    ordered = publication_order([undated, comment(3), comment(2)])
    assert [e.key for e in ordered] == [comment(2).key, comment(3).key, "x"]


def test_a_burst_with_one_timestamp_is_reported_in_the_platforms_order() -> None:
    # The feed window, newest first, then a REST listing of what it no longer shows, oldest
    # first: all 50 comments were posted within one second.
    window = [comment(n, minute=0) for n in range(50, 40, -1)]
    listing = [comment(n, minute=0) for n in range(1, 41)]
    d = decide([*window, *listing], {}, [SEEN])
    assert [e.key for e in d.candidates["s"]] == [comment(n).key for n in range(1, 51)]


def test_replies_to_matches_parent_author_case_and_space_insensitively() -> None:
    s = sub(replies_to=["east  side BOY"])
    reply = comment(3, "southernfriedbolshevik", parent=2)
    known = {comment(2).key: comment(2, "East Side Boy")}
    assert wants(s, reply, known)
    assert not wants(s, comment(4, "Another Blog"), known)
    assert not wants(s, comment(5, "East Side Boy", parent=3), {comment(3).key: reply})


def test_replies_to_never_reports_the_persons_own_comments() -> None:
    s = sub(replies_to=["East Side Boy"])
    own = comment(9, "East Side Boy", parent=3, parent_author="East Side Boy")
    assert not wants(s, own, {})


def test_authors_and_exclude_authors() -> None:
    assert wants(sub(authors=["Reader"]), comment(2, "reader"), {})
    assert not wants(sub(authors=["Someone"]), comment(2, "reader"), {})
    assert not wants(sub(exclude_authors=["Reader"]), comment(2, "Reader"), {})


def test_watch_posts_ignores_comments() -> None:
    assert not wants(sub(watch="posts"), comment(2), {})
    assert wants(sub(watch="posts"), Entry(key="p", kind="post"), {})


def test_one_notice_per_channel_and_entry_credited_to_the_most_specific() -> None:
    subs = {"thread": sub("thread"), "mine": sub("mine", replies_to=["East Side Boy"])}
    reply = comment(3, "southernfriedbolshevik", parent=2, parent_author="East Side Boy")
    notices = match({"thread": (reply, comment(4)), "mine": (reply, comment(4))}, subs, {})
    assert sorted((n.subscription, n.entry_key) for n in notices) == [
        ("mine", reply.key), ("thread", comment(4).key)]


def test_next_poll_jitter_backoff_and_retry_after() -> None:
    rng = random.Random(1)
    times = [next_poll(1000.0, 600.0, 0.1, rng=rng) - 1000.0 for _ in range(50)]
    assert all(540 <= t <= 660 for t in times) and len(set(times)) > 1
    assert next_poll(0.0, 600.0, 0.0, errors=1) == 1200.0
    assert next_poll(0.0, 600.0, 0.0, errors=10) == 600.0 * 8
    assert next_poll(0.0, 60.0, 0.0, retry_after=3600) == 3600.0


def test_retry_ladders_and_dead_letter() -> None:
    rng = random.Random(2)
    delays = [after_failure(WEBHOOK_RETRY, attempts=n, created=0, now=0, rng=rng).retry_at
              for n in range(1, 7)]
    assert all(d is not None for d in delays)
    ladder = [5, 300, 1800, 7200, 18000, 36000]  # 5 s, 5 min, 30 min, 2 h, 5 h, 10 h
    assert all(0.9 * want <= (got or 0) <= 1.1 * want for got, want in zip(delays, ladder,
                                                                           strict=True))
    tenth = after_failure(WEBHOOK_RETRY, attempts=10, created=0, now=0, rng=rng).retry_at
    assert tenth is not None and 0.9 * 36000 <= tenth <= 1.1 * 36000
    smtp = after_failure(SMTP_RETRY, attempts=1, created=0, now=0, rng=rng).retry_at
    assert smtp is not None and 270 <= smtp <= 330
    honoured = after_failure(WEBHOOK_RETRY, attempts=1, created=0, now=0, retry_after=120)
    assert honoured.retry_at is not None and honoured.retry_at >= 120
    assert after_failure(WEBHOOK_RETRY, attempts=3, created=0, now=3 * 86400).retry_at is None
    assert after_failure(WEBHOOK_RETRY, attempts=1, created=0, now=0,
                         permanent=True).retry_at is None


def test_deaf_note_names_whom_a_feed_read_as_another_kind_tells_nothing() -> None:
    looks = ParsedFeed(title="t", link="", kind="comments", entries=(),
                       kind_reason="its URL is a comment feed's")
    assert deaf_note({"c": "comments"}, looks) == ""
    note = deaf_note({"a": "posts", "b": "posts", "c": "comments"}, looks)
    assert note.startswith("read as comments: its URL is a comment feed's.")
    assert "a, b watch posts here and are told nothing from it" in note
    assert "c watch" not in note and ", c" not in note


def _feed(last_polled: float | None, errors: int = 0) -> FeedState:
    return FeedState(id=1, url="https://blog.example/feed/", title="", api_root=None,
                     etag=None, last_modified=None, body_hash=None, interval=600.0,
                     next_due=0.0, last_polled=last_polled, last_status=200,
                     last_failure=None, error_count=errors)


def test_the_flood_allowance_grows_with_the_intervals_nobody_read() -> None:
    now = 1_000_000.0
    # On time (or early, or a first poll): one interval's allowance.
    assert unread_intervals(_feed(now - 600), now) == 1.0
    assert unread_intervals(_feed(now - 5), now) == 1.0
    assert unread_intervals(_feed(None), now) == 1.0
    # The daemon was down for a day: 144 intervals of news arrive in one poll.
    assert unread_intervals(_feed(now - 86_400), now) == 144.0
    # Three failed polls read nothing: the intervals they backed off over count too
    # (1 + 2 + 4 before the last attempt, 8 since).
    assert unread_intervals(_feed(now - 4_800, errors=3), now) == 15.0
