"""The pure parts of thread intelligence: gaps, estimates, REST addresses, whose reply it is."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime

from notifier.gaps import (
    Completing,
    FollowUp,
    completing,
    gap_suspected,
    missing_estimate,
    needs_completing,
    plan_follow_up,
    post_guid_of,
)
from notifier.match import match, wants
from notifier.models import Entry, ParsedFeed
from notifier.threads import followed_threads, retire_before
from tests.test_decisions import POST, T0, comment, sub


def test_a_window_of_only_new_entries_is_a_possible_gap() -> None:
    seen = {comment(2).key}
    window = [comment(3), comment(4)]
    assert gap_suspected(window, seen, had_entries=True)
    assert not gap_suspected([comment(2), *window], seen, had_entries=True)
    assert not gap_suspected(window, set(), had_entries=False)  # a first poll is a baseline
    assert not gap_suspected([], seen, had_entries=True)


def test_missing_estimate_uses_the_source_count_else_says_at_least_one() -> None:
    assert missing_estimate(33, stored=3, new=25) == 5
    assert missing_estimate(None, stored=3, new=25) == 1
    assert missing_estimate(20, stored=3, new=25) == 1  # counts that disagree: still warn


def test_the_way_a_gap_is_filled_follows_what_the_source_offers() -> None:
    window = ParsedFeed(title="", link="", kind="comments", entries=(comment(3), comment(4)),
                        total=9)
    site = "http://b.test/wp-json/"

    def way(parsed: ParsedFeed, api_root: str | None, post_id: str | None, *,
            rescan: bool = False, seen: int = 2) -> FollowUp:
        return plan_follow_up(parsed, api_root=api_root, post_id=post_id,
                              seen={comment(seen).key}, had_entries=True, stored=3,
                              rescan=rescan)

    assert way(window, site, "4") == FollowUp("thread", 4)  # 9 - 3 stored - 2 new
    assert way(window, site, None) == FollowUp("window", 4)
    paged = replace(window, next_url="http://b.test/feeds/1/comments/default?start-index=26")
    assert way(paged, None, None) == FollowUp("pages", 4)
    assert way(window, None, None) == FollowUp("warn", 4)
    # No gap (comment 3 was seen): nothing, unless a rescan is due, which lists the thread.
    assert way(window, site, "4", seen=3) == FollowUp()
    assert way(window, site, "4", seen=3, rescan=True) == FollowUp("thread", 0, rescan=True)
    assert way(replace(window, kind="posts"), site, "4", rescan=True) == FollowUp()


def test_nearly_every_poll_needs_no_completing() -> None:
    assert not needs_completing(failed=False, not_modified=True, has_body=False, rescan=False)
    assert not needs_completing(failed=True, not_modified=False, has_body=False, rescan=True)
    assert not needs_completing(failed=False, not_modified=False, has_body=False, rescan=False)
    assert needs_completing(failed=False, not_modified=False, has_body=True, rescan=False)
    assert needs_completing(failed=False, not_modified=False, has_body=False, rescan=True)


def test_a_posts_first_listing_is_its_baseline_when_the_feed_was_stored_before() -> None:
    window = ParsedFeed(title="", link="", kind="comments", entries=(comment(3), comment(2)))
    site = "http://b.test/wp-json/"

    def how(*, rescan_due: float | None, had: bool, seen: set[str],
            rescan: bool = False) -> Completing:
        return completing(window, rescan=rescan, api_root=site, post_id="4",
                          rescan_due=rescan_due, seen=seen, had_entries=had, stored=len(seen))

    known = {comment(2).key, comment(3).key}
    # The first poll of a post's feed with an API lists the thread once ...
    first = how(rescan_due=None, had=True, seen=known)
    assert first.plan == FollowUp("thread", 0, rescan=True) and first.baseline
    assert not how(rescan_due=None, had=False, seen=set()).baseline  # a first poll anyway
    # ... later polls only on a gap or a due rescan, which reads the post's guid first.
    assert how(rescan_due=99.0, had=True, seen=known).plan == FollowUp()
    rescan = how(rescan_due=99.0, had=True, seen=known, rescan=True)
    assert rescan.wants_guid and not rescan.baseline and not rescan.gap
    gap = how(rescan_due=99.0, had=True, seen={comment(1).key})
    assert gap.gap and gap.plan.how == "thread" and not gap.baseline


def test_post_guid_is_the_prefix_of_wordpress_comment_keys() -> None:
    assert post_guid_of([comment(3)]) == POST
    odd = replace(comment(3), key="tag:blogger.com,1999:blog-1.post-2")
    assert post_guid_of([odd]) == ""


def test_replies_to_by_website_and_by_email_hash() -> None:
    parent = replace(comment(2, "E. S. Boy"), author_url="http://www.esb.example/",
                     author_hash=hashlib.md5(b"esb@example.org").hexdigest())
    reply = comment(3, "Other", parent=2)
    known = {parent.key: parent}
    assert wants(sub(replies_to=["https://esb.example"]), reply, known)
    assert wants(sub(replies_to=["ESB@example.org "]), reply, known)
    assert not wants(sub(replies_to=["someone@example.org"]), reply, known)
    assert not wants(sub(replies_to=["East Side Boy"]), reply, known)  # he renamed himself
    handle = replace(parent, author="@esb")
    assert wants(sub(replies_to=["@ESB"]), reply, {handle.key: handle})  # a name, not an email


def test_include_subthread_reaches_replies_to_replies() -> None:
    mine = comment(2, "Me")
    answer = comment(3, "Ann", parent=2)
    deeper = comment(4, "Bob", parent=3)
    unrelated = comment(5, "Cy", parent=0)
    known = {e.key: e for e in (mine, answer, deeper)}
    flat = sub(replies_to=["me"])
    deep = sub(replies_to=["me"], include_subthread=True)
    assert [wants(flat, e, known) for e in (answer, deeper, unrelated)] == [True, False, False]
    assert [wants(deep, e, known) for e in (answer, deeper, unrelated)] == [True, True, False]
    my_reply = comment(6, "Me", parent=4)
    known[my_reply.key] = my_reply
    assert not wants(deep, my_reply, known)  # exclude_self, by default
    assert wants(sub(replies_to=["me"], include_subthread=True, exclude_self=False),
                 my_reply, known)


def test_cycles_in_parent_links_end() -> None:
    a = comment(2, "A", parent=3)
    b = comment(3, "B", parent=2)
    assert not wants(sub(replies_to=["me"], include_subthread=True), a, {a.key: a, b.key: b})


def test_missing_and_revisions_reach_the_queued_notices() -> None:
    entry = comment(7)
    (notice,) = match({"s": (entry,)}, {"s": sub()}, {}, missing={entry.key: 4},
                      revisions={entry.key: 2})
    assert (notice.missing, notice.revision) == (4, 2)
    (plain,) = match({"s": (entry,)}, {"s": sub()}, {})
    assert (plain.missing, plain.revision) == (0, 0)


def test_threads_follow_young_posts_with_comment_feeds_and_retire_old_ones() -> None:
    day = 86400.0
    now = T0.timestamp() + 40 * day

    def post(slug: str, age_days: float, feed: str = "") -> Entry:
        return Entry(key=f"http://b.test/{slug}/", kind="post",
                     published=datetime.fromtimestamp(now - age_days * day, UTC),
                     comments_feed=feed or f"http://b.test/{slug}/feed/")

    window = [post("fresh", 1), post("older", 29), post("old", 31),
              Entry(key="http://b.test/closed/", kind="post")]
    links = followed_threads("site", window, now=now, max_age=30 * day,
                             generator="WordPress 6.1.9")
    # WordPress's RSS comment feed is swapped for its Atom twin, which says who answered whom.
    assert [link.url for link in links] == ["http://b.test/fresh/feed/atom/",
                                            "http://b.test/older/feed/atom/"]
    assert retire_before(now, 30 * day) == now - 30 * day
    other = followed_threads("site", [post("x", 1, "http://b.test/feeds/9/comments/default")],
                             now=now, max_age=30 * day, generator="Blogger")
    assert [link.url for link in other] == ["http://b.test/feeds/9/comments/default"]
