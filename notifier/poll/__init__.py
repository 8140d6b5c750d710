"""Polling: how a feed becomes a queued notification, one typed stage per module.

    config.subscriptions
      |  plan      discover each subscription's feed (once; stored), group readers per feed,
      v            read the due feeds from the store                       -> Plan, [FeedState]
      |  probe     one small request per platform site: did something old change? -> SiteNews
      v
      |  retrieve  conditional GET -> 304 | same body as last time
      v            | body -> parse worker (feedparser, platform adapters)  -> Polled
      |  complete  per batch: gap or rescan -> backfill (listing, older pages);
      v            parents of replies; stored keys and revisions          -> Snapshot
      |  decide    pure: Snapshot + Plan + config + now -> new/edited entries (`diff`),
      v            who is told (`match`), threads to follow, next poll     -> PollRecord
      |  record    entries + queued notifications, one transaction per batch (`store`)
      v
    outbox rows, drained by `notifier.delivery` (render -> channel -> mark sent)

`cycle.Poller` runs the stages; each hands the next a frozen record, so what a stage
decided cannot be changed behind it. Polling only queues; the daemon runs delivery beside
it, so a slow or dead channel never delays detection. What is platform-specific (URL
shapes, reply lines, thread listings, probes) is asked of the adapters in
`notifier.sources`, never decided here. Failures travel as data (`Polled.failure`, a
`failures.Failure`: a kind and a message, stored with the feed), so one feed cannot stop
the batch.
"""

from notifier.poll.cycle import BATCH_LINGER, WRITE_BATCH, Poller, StoreThread
from notifier.poll.record import PollReport
from notifier.poll.retrieve import ParsePool

__all__ = ["BATCH_LINGER", "WRITE_BATCH", "ParsePool", "PollReport", "Poller", "StoreThread"]
