"""Polling: how a feed becomes a queued notification, one typed stage per module.

    plan      which feed each subscription reads (discovery), which feeds are due
    retrieve  conditional GET -> 304 | unchanged body | parse in a worker   -> Polled
    complete  backfill gaps, rescans, parents of replies, stored facts     -> Snapshot
    decide    pure: snapshot + parsed feed + subscriptions + now           -> PollRecord
    record    entries and queued notifications in one transaction per batch

`cycle.Poller` runs them. Polling only queues; `notifier.delivery` drains the queue, so a
slow or dead channel never delays detection. What is platform-specific (WordPress, Blogger,
...) is asked of the adapters in `notifier.sources`, never decided here. Stages hand each
other frozen records; failures travel as data (`Polled.error`), so one feed cannot stop the
batch.
"""

from notifier.poll.cycle import BATCH_LINGER, WRITE_BATCH, Poller, StoreThread
from notifier.poll.record import PollReport
from notifier.poll.retrieve import ParsePool

__all__ = ["BATCH_LINGER", "WRITE_BATCH", "ParsePool", "PollReport", "Poller", "StoreThread"]
