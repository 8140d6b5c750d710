"""Polling: how a feed becomes a queued notification, one typed stage per module.

    config.subscriptions
      |  plan      discover each subscription's feed (once; stored); `readers` (pure) says
      v            who reads which feed -> Plan; the cycle claims due feeds from the store,
      |            a batch at a time                                        -> [FeedState]
      |  probe     one small request per platform site: did something old change?
      v            `news` (pure): rescan a site? read which threads in full? joined over
      |            the cycle's batches; rescans and rereads (forgotten validators)
      |            also kept in the store for later ticks and other nodes  -> SiteNews
      |  retrieve  conditional GET -> 304 | same body as last time
      v            | body -> `parsepool` worker (`parseworker`: `plainfeed` or feedparser,
      |                    then the adapters)                             -> Polled
      |  complete  per batch: gap or rescan -> backfill (`gaps` decides, `backfill` reads);
      v            parents of replies; stored keys and revisions; one batch read -> Snapshot
      |  decide    (pure) Snapshot + Plan + config + now -> new/edited entries (`diff`),
      v            who is told (`match`), threads to follow, next poll      -> PollRecord
      |  record    entries + queued notifications, one transaction per batch (`store`)
      v
    outbox rows, drained by `notifier.delivery` (render -> channel -> mark sent)

Where to start reading: `cycle.Poller.poll` runs one cycle, top to bottom, in that order;
`waiting` holds how long a cycle waits for slow feeds. Follow one feed through it: `plan`
says it is due and who reads it; `retrieve` asks with its stored ETag/Last-Modified; a body
is parsed into `Entry` records (`notifier.parse`); `complete` reads from the store, in one
query per kind for the whole batch, everything the decision will need; `decide_poll`
returns a frozen `PollRecord` (entries to store, `QueuedNotice`s, when to poll next);
`record` writes the batch's records in one transaction and logs each poll (DEBUG when
unchanged) and the cycle's summary (INFO). `retrieve` hands bodies to the `parsepool`.
A large `run --once` runs this same cycle in two processes, each over its `shards` share
of the feeds (whole hosts), so that it uses both cores.

Rules the stages keep:
- Each hands the next a frozen record, so what a stage decided cannot be changed behind it.
- Decisions are pure (`decide`, `news`, `readers`, and the `diff`, `match`, `gaps`,
  `schedule` modules they use): values and `now` in, a verdict out; no I/O, no clock, no
  hidden state. The I/O stages only ask and write. `tests/test_shape.py` holds them to it.
- Polling only queues; the daemon runs delivery beside it, so a slow or dead channel never
  delays detection.
- Nothing here knows a platform: URL shapes, reply lines, thread listings and probes are
  asked of the adapters in `notifier.sources` (a new platform is one file there).
- Failures travel as data (`Polled.failure`, a `failures.Failure`: a kind and a message,
  stored with the feed and shown by `status`), so one feed cannot stop the batch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from notifier.poll.cycle import BATCH_LINGER, WRITE_BATCH, Poller, StoreThread
    from notifier.poll.record import PollReport
    from notifier.poll.retrieve import ParsePool

__all__ = ["BATCH_LINGER", "WRITE_BATCH", "ParsePool", "PollReport", "Poller", "StoreThread"]

_HOMES = {"BATCH_LINGER": "cycle", "WRITE_BATCH": "cycle", "Poller": "cycle",
          "StoreThread": "cycle", "PollReport": "record", "ParsePool": "retrieve"}


def __getattr__(name: str) -> Any:
    """The names above, imported on first use.

    A parse worker imports `notifier.poll.parseworker`, and with it this package: importing
    the stages here would give every worker the HTTP client, the SQL layer and the
    configuration to load (half a second each) before it parses anything.
    """
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"notifier.poll.{home}"), name)
