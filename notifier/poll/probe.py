"""Learn cheaply that something old changed on a site, so thread feeds can stay conditional.

    due thread feeds -> their sites (REST root) -> one probe per site per interval
                     -> count explained by new ids? keep asking with validators
                                                  : read that site's followed threads in full
    news of this batch | news of the cycle's earlier batches -> the feeds of every batch
    probes, rescans and rereads found -> the store, in one transaction (`record_probes`)
                              -> threads polled at a later tick or node

WordPress's ETag and Last-Modified are the site's (its newest post or comment anywhere). A
new comment moves them, so a conditional GET of its thread answers 200; a comment approved
late, imported or edited at an old date moves nothing, and its thread answers 304. Rather
than fetch every thread in full on every poll (slow, and what gets a poller blocked), one
small request per site (the platform adapter's `probe`; WordPress's reads the REST API) says
whether the approved-comment count moved by more than its new ids explain (the adapter's
`unexplained_change`, pure); only then are the site's followed threads rescanned
(unconditional GET and REST listing). A new id at an old date (an import,
`imported_posts`) is explained by the count but moves no validator and may sit below its
thread's feed window: only its post's thread is rescanned. Where a subscription wants edits
(`notify_edits`), the same request carries the newest comments' text, and only the threads
whose comments' text changed are rescanned. The periodic `rescan` stays the safety net for
what a count cannot show (an approval and a trash in one interval, an edit of a comment
older than the newest 100).

A site's followed threads are rarely polled together: a cycle claims its due feeds in
batches (a probe's news is joined into the next batches', and a site is asked once per
cycle), and in the daemon jitter spreads them over many ticks, when the probe is not due
again, and over nodes. So a rescan the probe calls for (a moved count, an import, an edit)
is also written to the store as the threads' `rescan_due`: whoever polls a thread next
rescans it, and that poll sets its next rescan. What a new id says (read its thread without
validators) is written there too, as the thread's validators forgotten: a comment made now
moves the site's validators, but one approved late behind a newer comment does not, and
when its thread was polled between the newer comment and the approval, a conditional GET
of it would answer 304 until the periodic rescan (a first-time commenter's reply, held for
moderation while someone else answered, is the common case).

This module only asks (the store, the sites) and logs; what the answers mean is decided in
`notifier.poll.news`, from values.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from notifier import redact
from notifier.config import Config
from notifier.fetch import Fetcher
from notifier.poll.news import SiteNews, edit_sites, probe_intervals, probes_due, read_probes
from notifier.poll.plan import Db, Plan
from notifier.sources import Hints, source_for
from notifier.store import FeedState, SiteState, Store

log = logging.getLogger("notifier")

__all__ = ["SiteNews", "probe_sites"]


async def probe_sites(due: Sequence[FeedState], plan: Plan, config: Config, *,
                      store: Store, fetcher: Fetcher, db: Db, now: float, force: bool,
                      known: SiteNews) -> SiteNews:
    """Probe the sites of due thread feeds whose probe is due; see the module docstring.

    `known` is what the cycle's earlier batches learnt: their sites are not asked again,
    and their news is returned with this batch's, for this batch's feeds too.
    """
    edits = edit_sites(due, plan)
    intervals = probe_intervals(due, plan, config, known.answered(edits))
    if not intervals:
        return known
    stored: dict[str, SiteState] = await db(store.site_probes, list(intervals))
    todo = probes_due(intervals, stored, now, force)
    adapters = {root: source_for(Hints(api_root=root)) for root in todo}
    answers = await asyncio.gather(*(adapters[root].probe(fetcher, root, edits=root in edits)
                                     for root in todo))
    reading = read_probes({root: (adapters[root], answer)
                           for root, answer in zip(todo, answers, strict=True)},
                          stored, intervals, now, edits)
    for root, failure in reading.failed:
        log.debug("probe of %s failed: %s [%s]", redact.url(root), failure, failure.kind)
    for moved in reading.moved:
        log.info("site %s: approved comments %d -> %d beyond its new ones; reading its "
                 "followed threads in full", redact.url(moved.api_root), moved.before,
                 moved.after)
    for what, found in (("imported (new ids at old dates)", reading.imported),
                        ("edited", reading.edited)):
        for site in found:
            one = len(site.posts) == 1
            log.info("site %s: comments %s on %d post%s; reading %s in full",
                     redact.url(site.api_root), what, len(site.posts), "" if one else "s",
                     "its thread" if one else "their threads")
    rescans, rereads = reading.news.rescans(), reading.news.rereads()
    if reading.save or rescans or rereads:
        await db(store.record_probes, list(reading.save), rescans, rereads, now)
    return known | reading.news
