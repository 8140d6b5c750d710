"""A feed's time budget, which stands still while the feed only queues.

A poll has one budget (`poll.cycle.feed_budget`) for its fetch and its parse. Waiting for a
per-host slot (politeness towards one server) or for a parse worker (the pool's backlog)
is not the feed's own slowness: the more feeds a cycle or a node takes at once (a larger
`http.concurrency`, a first run), the longer those queues, and a budget counting them would
fail healthy feeds, to be fetched and parsed again next cycle. So both waits pause it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

__all__ = ["pause_budget"]


def pause_budget(budget: asyncio.Timeout | None, loop: asyncio.AbstractEventLoop
                 ) -> Callable[[], None]:
    """Stop `budget`'s clock now; the returned call starts it again, the time stopped added
    to its deadline (once: later calls do nothing)."""
    deadline = budget.when() if budget is not None else None
    if budget is None or deadline is None:
        return lambda: None
    stopped = loop.time()
    with contextlib.suppress(RuntimeError):  # expiring already: the cancellation wins
        budget.reschedule(None)
    done = False

    def resume() -> None:
        nonlocal done
        if not done:
            done = True
            with contextlib.suppress(RuntimeError):
                budget.reschedule(deadline + loop.time() - stopped)
    return resume
