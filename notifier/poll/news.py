"""What a cycle's site probes mean for its thread feeds: the pure half of `probe`.

    due thread feeds -> probe_intervals -> probes_due(stored probes, now) -> sites to ask
                     -> edit_sites      -> which of them to ask for comment text too
    their answers    -> read_probes     -> SiteNews (rescan a site? read which posts in full?
                                           rescan which posts for an import or an edit?)
                                           + the probes to store as the next baseline
    SiteNews | the next batch's SiteNews -> what the whole cycle's probes said
    SiteNews + a feed + now -> rescan_now / SiteNews.unconditional -> how to poll that feed

Why apart from `probe`: that module asks the sites and the store; this one decides what
the answers mean, from values only (stored probes, answers, `now`), so the rules "a count
moved beyond its new ids: rescan the site's threads", "a new id: read its thread without
validators", "a new id at an old date (an import): rescan its post's thread" and "a
comment's text changed: rescan its post's thread" are tested without a server, a store or a
clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from notifier.config import Config
from notifier.failures import Failure
from notifier.poll.plan import Plan
from notifier.sources import SiteProbe, Source
from notifier.store import FeedState, SiteState

__all__ = ["Reading", "SiteNews", "edit_sites", "probe_intervals", "probes_due", "read_probes",
           "rescan_now"]


@dataclass(frozen=True, slots=True)
class SiteNews:
    """What this cycle's probes say about the due thread feeds.

    A cycle claims its feeds in batches, and a site's threads may fall into any of them: the
    news of every batch so far is joined (`|`), so a thread claimed after its site's probe
    is read as that probe asked, and a site is asked once per cycle (`asked`).
    """

    moved: frozenset[str] = frozenset()
    """Sites whose count moved beyond their new comments: rescan every followed thread."""
    touched: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Per site, the posts with new comments: read their threads without validators."""
    edited: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Per site, the posts with a comment whose text changed: rescan their threads."""
    asked: frozenset[str] = frozenset()
    """Sites probed this cycle, answered or not: not asked again by a later batch ..."""
    asked_texts: frozenset[str] = frozenset()
    """... unless it wants the comments' text and the site was asked for ids only."""
    imported: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Per site, the posts with a new comment at an old date: rescan their threads."""

    def __or__(self, other: SiteNews) -> SiteNews:
        """The news of two batches of one cycle together."""
        return SiteNews(self.moved | other.moved, _joined(self.touched, other.touched),
                        _joined(self.edited, other.edited), self.asked | other.asked,
                        self.asked_texts | other.asked_texts,
                        _joined(self.imported, other.imported))

    def answered(self, edits: frozenset[str]) -> frozenset[str]:
        """The sites whose probe this cycle answers for a batch whose sites `edits` want
        the comments' text too."""
        return self.asked - (edits - self.asked_texts)

    def rescans(self) -> dict[str, frozenset[str] | None]:
        """The threads to rescan, for the store (`Store.rescan_threads`): every one of a
        site whose count moved (None), else those of posts with an edited or an imported
        comment. Kept there, the news also reaches threads polled at a later tick or by
        another node, when this site's probe is not due again."""
        marks: dict[str, frozenset[str] | None] = dict(_joined(self.edited, self.imported))
        marks.update(dict.fromkeys(self.moved))
        return marks

    def rereads(self) -> dict[str, frozenset[str]]:
        """The threads to read without validators at their next poll, for the store
        (`Store.reread_threads`): those of posts with new comments. One of them may have
        been polled between a newer comment's arrival and this probe, and a comment
        approved after that poll, dated before the newer one, moves no validator: without
        this its thread would answer 304 until its periodic rescan. The cost is one full
        read of such a thread instead of a 304, and no request more."""
        return {root: posts for root, posts in self.touched.items() if posts}

    def reread_thread(self, feed: FeedState) -> bool:
        """Whether an edit or an import was seen in this feed's thread (a site-wide feed:
        anywhere on its site)."""
        if feed.api_root is None:
            return False
        posts = self.edited.get(feed.api_root, frozenset()) \
            | self.imported.get(feed.api_root, frozenset())
        return bool(posts) and (feed.post_id is None or feed.post_id in posts)

    def unconditional(self, feed: FeedState) -> bool:
        """Whether to ask for this feed without validators (a site-wide feed: any news)."""
        if feed.api_root is None or feed.api_root not in self.touched:
            return False
        posts = self.touched[feed.api_root]
        return bool(posts) and (feed.post_id is None or feed.post_id in posts)


def _joined(a: Mapping[str, frozenset[str]], b: Mapping[str, frozenset[str]]
            ) -> Mapping[str, frozenset[str]]:
    if not b:
        return a
    if not a:
        return b
    return {root: a.get(root, frozenset()) | b.get(root, frozenset()) for root in {*a, *b}}


@dataclass(frozen=True, slots=True)
class Moved:
    """A site whose approved-comment count moved beyond its new ids (for the INFO line)."""

    api_root: str
    before: int
    after: int


@dataclass(frozen=True, slots=True)
class Edited:
    """A site where comments' texts changed (for the INFO line)."""

    api_root: str
    posts: frozenset[str]


@dataclass(frozen=True, slots=True)
class Imported:
    """A site where new comments came at old dates (for the INFO line)."""

    api_root: str
    posts: frozenset[str]


@dataclass(frozen=True, slots=True)
class Reading:
    """What a cycle's probe answers mean, and what to store of them."""

    news: SiteNews = SiteNews()
    save: tuple[SiteState, ...] = ()  # the answered probes: the next baseline per site
    moved: tuple[Moved, ...] = ()
    edited: tuple[Edited, ...] = ()
    imported: tuple[Imported, ...] = ()
    failed: tuple[tuple[str, Failure], ...] = ()  # site -> why its probe gave no answer


def probe_intervals(due: Sequence[FeedState], plan: Plan, config: Config,
                    answered: frozenset[str] = frozenset()) -> dict[str, float]:
    """The sites (API roots) of due thread feeds, each with the shortest interval of its
    feeds: a site is probed as often as its most often polled thread, no more. A site
    whose probe this cycle `answered` already (an earlier batch's) is left out."""
    intervals: dict[str, float] = {}
    for feed in due:
        if feed.api_root and feed.api_root not in answered \
                and plan.rescan_every(config, feed.id) is not None:
            intervals[feed.api_root] = min(intervals.get(feed.api_root, float("inf")),
                                           feed.interval)
    return intervals


def edit_sites(due: Sequence[FeedState], plan: Plan) -> frozenset[str]:
    """The sites (API roots) whose probe also asks for the newest comments' text: those
    with a due thread feed read by a subscription with `notify_edits`. Nobody else pays
    for the larger answer, so the default settings cost nothing more."""
    return frozenset(feed.api_root for feed in due if feed.api_root
                     and any(s.notify_edits for s in plan.readers(feed.id)))


def probes_due(intervals: Mapping[str, float], stored: Mapping[str, SiteState], now: float,
               force: bool) -> list[str]:
    """The sites to ask now: never asked, due, or every one with `force` (`run --once`)."""
    return [root for root in intervals
            if force or root not in stored or stored[root].next_probe <= now]


def read_probes(answers: Mapping[str, tuple[Source, SiteProbe | Failure | None]],
                stored: Mapping[str, SiteState], intervals: Mapping[str, float],
                now: float, edits: frozenset[str] = frozenset()) -> Reading:
    """What each site's answer means against its stored probe (`edits`: the sites asked
    for the comments' text too).

    A site whose platform has no probe (None) or whose probe failed keeps its stored
    baseline: the next answer is compared with the last good one, so nothing that moved in
    between is lost; the periodic `rescan` covers such sites meanwhile.
    """
    moved: list[Moved] = []
    edited: list[Edited] = []
    imported: list[Imported] = []
    failed: list[tuple[str, Failure]] = []
    touched: dict[str, frozenset[str]] = {}
    save: list[SiteState] = []
    for root, (adapter, answer) in answers.items():
        if answer is None:
            continue
        if isinstance(answer, Failure):
            failed.append((root, answer))
            continue
        before = stored.get(root)
        previous = (SiteProbe(before.comment_total, before.newest_id, (), texts=before.texts)
                    if before is not None else None)
        if adapter.unexplained_change(previous, answer):
            moved.append(Moved(root, previous.total if previous else 0, answer.total))
        touched[root] = answer.posts_since(previous)
        if posts := adapter.imported_posts(previous, answer):
            imported.append(Imported(root, posts))
        if posts := answer.edited_since(previous):
            edited.append(Edited(root, posts))
        # A probe that did not ask for text (nobody due this cycle wants edits) keeps the
        # stored digests: an edit made meanwhile is still found by the next one that asks.
        texts = answer.texts or (before.texts if before is not None else {})
        save.append(SiteState(root, answer.total, answer.newest_id, now + intervals[root],
                              texts))
    news = SiteNews(frozenset(m.api_root for m in moved), touched,
                    {e.api_root: e.posts for e in edited}, frozenset(answers),
                    edits & frozenset(answers), {i.api_root: i.posts for i in imported})
    return Reading(news, tuple(save), tuple(moved), tuple(edited), tuple(imported),
                   tuple(failed))


def rescan_now(feed: FeedState, every: float | None, news: SiteNews, now: float) -> bool:
    """Whether this poll rescans its thread (a full read and listing): when its periodic
    `rescan` is due, when its site's count moved beyond what new comments explain, or when
    the probe saw a comment of its thread edited or imported."""
    if every is None:
        return False
    return ((feed.rescan_due is not None and feed.rescan_due <= now)
            or (feed.api_root is not None and feed.api_root in news.moved)
            or news.reread_thread(feed))
