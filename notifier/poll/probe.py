"""Learn cheaply that something old changed on a site, so thread feeds can stay conditional.

    due thread feeds -> their sites (REST root) -> one probe per site per interval
                     -> count explained by new ids? keep asking with validators
                                                  : read that site's followed threads in full

WordPress's ETag and Last-Modified are the site's (its newest post or comment anywhere). A
new comment moves them, so a conditional GET of its thread answers 200; a comment approved
late, imported or edited at an old date moves nothing, and its thread answers 304. Rather
than fetch every thread in full on every poll (slow, and what gets a poller blocked), one
small request per site (the platform adapter's `probe`; WordPress's reads the REST API) says
whether the approved-comment count moved by more than its new ids explain (the adapter's
`unexplained_change`, pure); only then are the site's followed threads
rescanned (unconditional GET and REST listing). The periodic `rescan` stays the safety net
for what a count cannot show (an approval and a trash in one interval).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from notifier import redact
from notifier.config import Config
from notifier.fetch import Fetcher
from notifier.poll.plan import Db, Plan
from notifier.sources import Hints, SiteProbe, source_for
from notifier.store import FeedState, SiteState, Store

log = logging.getLogger("notifier")

__all__ = ["SiteNews", "probe_sites"]


@dataclass(frozen=True, slots=True)
class SiteNews:
    """What this cycle's probes say about the due thread feeds."""

    moved: frozenset[str] = frozenset()
    """Sites whose count moved beyond their new comments: rescan every followed thread."""
    touched: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Per site, the posts with new comments: read their threads without validators."""

    def unconditional(self, feed: FeedState) -> bool:
        """Whether to ask for this feed without validators (a site-wide feed: any news)."""
        if feed.api_root is None or feed.api_root not in self.touched:
            return False
        posts = self.touched[feed.api_root]
        return bool(posts) and (feed.post_id is None or feed.post_id in posts)


async def probe_sites(due: Sequence[FeedState], plan: Plan, config: Config, *,
                      store: Store, fetcher: Fetcher, db: Db, now: float,
                      force: bool) -> SiteNews:
    """Probe the sites of due thread feeds whose probe is due; see the module docstring."""
    intervals: dict[str, float] = defaultdict(lambda: float("inf"))
    for feed in due:
        if feed.api_root and plan.rescan_every(config, feed.id) is not None:
            intervals[feed.api_root] = min(intervals[feed.api_root], feed.interval)
    if not intervals:
        return SiteNews()
    stored: dict[str, SiteState] = await db(store.site_probes, list(intervals))
    todo = [root for root in intervals
            if force or root not in stored or stored[root].next_probe <= now]
    adapters = {root: source_for(Hints(api_root=root)) for root in todo}
    results = await asyncio.gather(*(adapters[root].probe(fetcher, root) for root in todo))
    moved: set[str] = set()
    touched: dict[str, frozenset[str]] = {}
    saved = []
    for root, result in zip(todo, results, strict=True):
        if result is None:
            continue  # the platform has no cheap probe: its periodic rescan has to do
        if not isinstance(result, SiteProbe):
            log.debug("probe of %s failed: %s [%s]", redact.url(root), result, result.kind)
            continue
        before = stored.get(root)
        previous = (SiteProbe(before.comment_total, before.newest_id, ())
                    if before is not None else None)
        if adapters[root].unexplained_change(previous, result):
            log.info("site %s: approved comments %d -> %d beyond its new ones; reading its "
                     "followed threads in full", redact.url(root),
                     previous.total if previous else 0, result.total)
            moved.add(root)
        touched[root] = result.posts_since(previous)
        saved.append(SiteState(root, result.total, result.newest_id, now + intervals[root]))
    await db(store.save_site_probes, saved, now)
    return SiteNews(frozenset(moved), touched)
