"""Gaps: whether a poll's window may hide comments, and which way to fill it. Pure.

    a comment feed's poll -> needs_completing? -> + what is stored -> completing -> Completing
        gap_suspected -> missing_estimate
        -> plan_follow_up -> FollowUp: thread (a platform listing) | window (the listings
           of the posts a site-wide window names) | pages (`rel="next"`) | warn | none

Why apart from `backfill`, which does what a `FollowUp` says: the rules (every entry new
after entries before is a gap; "at least N may be missing" from the source's own count;
a listing beats older pages, which beat a warning) are decided from values only, so they
are tested without a server, and `backfill` holds only the bounded fetching.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

from notifier import sources
from notifier.models import Entry, ParsedFeed

__all__ = ["Completing", "FollowUp", "completing", "gap_suspected", "missing_estimate",
           "needs_completing", "plan_follow_up", "post_guid_of"]


def gap_suspected(entries: Sequence[Entry], seen: Collection[str], *, had_entries: bool
                  ) -> bool:
    """Whether comments may have arrived that this window does not show.

    Every entry new while the feed had entries before: the window moved past everything
    known, so something between may be missing -- more arrived than the window holds. A
    source's total (`openSearch:totalResults`) is not compared with what is stored: the
    store holds only what arrived since the subscription began, so they never agree.
    """
    if not entries or not had_entries:
        return False
    return all(e.key not in seen for e in entries)


def missing_estimate(total: int | None, stored: int, new: int) -> int:
    """"At least N may be missing": from the source's own count when it gives one, else 1."""
    if total is None:
        return 1
    return max(total - stored - new, 1)


def post_guid_of(entries: Sequence[Entry]) -> str:
    """The post's key as a platform's comment keys name it (WordPress: `<guid>#comment-N`)."""
    for entry in entries:
        if post := sources.post_key_of(entry.key):
            return post
    return ""


@dataclass(frozen=True, slots=True)
class FollowUp:
    """How to complete one comment-feed poll: the write-free half of `follow_up`."""

    how: Literal["none", "thread", "window", "pages", "warn"] = "none"
    estimate: int = 0  # at least this many may be missing, if nothing fills the gap
    rescan: bool = False  # a rescan with no gap: the listing finds late approvals


def plan_follow_up(parsed: ParsedFeed | None, *, api_root: str | None, post_id: str | None,
                   seen: Collection[str], had_entries: bool, stored: int,
                   rescan: bool) -> FollowUp:
    """Which way a comment feed's gap is filled, or its rescan done; pure.

    A platform API with a known post: its listing (gap or rescan); the feed was listed in
    full at its first poll, so whatever the listing shows that is not stored is new. A
    site-wide feed with an API: the listings of the posts in its window. A feed that pages
    with `rel="next"`: older pages. Neither: only the warning that some may be missing.
    """
    entries = parsed.entries if parsed is not None else ()
    if parsed is not None and parsed.kind != "comments":
        return FollowUp()
    gap = gap_suspected(entries, seen, had_entries=had_entries)
    if not gap and not rescan:
        return FollowUp()
    new = sum(1 for e in entries if e.key not in seen)
    estimate = missing_estimate(parsed.total if parsed else None, stored, new) if gap else 0
    if api_root and not post_id and gap:
        return FollowUp("window", estimate)
    if api_root and post_id:
        return FollowUp("thread", estimate, rescan=rescan and not gap)
    if gap and parsed is not None and parsed.next_url:
        return FollowUp("pages", estimate)
    if gap:
        return FollowUp("warn", estimate)
    return FollowUp()


@dataclass(frozen=True, slots=True)
class Completing:
    """How one comment-feed poll is completed, decided before anything more is read."""

    plan: FollowUp
    gap: bool  # the window may hide comments: read the newest stored date (`since`)
    wants_guid: bool  # a rescan through an API: the post's guid from the stored keys
    baseline: bool  # a first listing of a feed stored before: what it finds is old, not new


def needs_completing(*, failed: bool, not_modified: bool, has_body: bool, rescan: bool
                     ) -> bool:
    """Whether a poll may need completing at all: not after a failure, a 304, or a poll with
    no new body and no rescan (nor, the caller adds, for a feed read only by posts
    subscriptions: `Plan.rescan_every` is None). Asked first: it is the answer for nearly
    every poll, and the cheapest."""
    return not failed and not not_modified and (has_body or rescan)


def completing(parsed: ParsedFeed | None, *, rescan: bool, api_root: str | None,
               post_id: str | None, rescan_due: float | None, seen: Collection[str],
               had_entries: bool, stored: int) -> Completing:
    """How a poll that `needs_completing` is completed.

    The first poll of a post's feed with an API (WordPress's REST) lists the post's comments
    once, so that later rescans tell late approvals from comments that were always there;
    if the feed was stored before (an older notifier) and shows no gap, what that listing
    finds beyond the window is part of the baseline, not news.
    """
    first_listing = rescan_due is None and bool(api_root and post_id)
    gap = parsed is not None and gap_suspected(parsed.entries, seen, had_entries=had_entries)
    plan = plan_follow_up(parsed, api_root=api_root, post_id=post_id, seen=seen,
                          had_entries=had_entries, stored=stored,
                          rescan=rescan or first_listing)
    return Completing(plan, gap, wants_guid=rescan and bool(api_root and post_id),
                      baseline=first_listing and had_entries and parsed is not None and not gap)
