"""A feed's time budget, which stands still while the feed only queues.

A poll has one budget (`poll.cycle.feed_budget`) for its fetch and its parse. Waiting for a
per-host slot (politeness towards one server) or for a parse worker (the pool's backlog)
is not the feed's own slowness: the more feeds a cycle or a node takes at once (a larger
`http.concurrency`, a first run), the longer those queues, and a budget counting them would
fail healthy feeds, to be fetched and parsed again next cycle. So both waits pause it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["Budget", "pause_budget"]


class Budget(asyncio.Timeout):  # type: ignore[misc]  # final for typeshed, not at run time
    """A poll's budget (`async with Budget(seconds)`) that starts when its first request
    gets its slot (`start`): until then the poll only queues, which a budget must not count.

    The same as starting it at once and pausing it for that first wait, without the two
    moves of its timer that a pause costs: most polls of a large claim wait there."""

    def __init__(self, seconds: float) -> None:
        super().__init__(None)
        self.seconds = seconds
        self._started = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the clock, at the first call only (a pause also leaves no deadline)."""
        if not self._started:
            self._started = True
            try:  # noqa: SIM105 - as in `pause_budget`
                self.reschedule(loop.time() + self.seconds)
            except RuntimeError:  # left already: nothing to count
                pass


def pause_budget(budget: asyncio.Timeout | None, loop: asyncio.AbstractEventLoop
                 ) -> Callable[[], None]:
    """Stop `budget`'s clock now; the returned call starts it again, the time stopped added
    to its deadline (once: later calls do nothing)."""
    deadline = budget.when() if budget is not None else None
    if budget is None or deadline is None:
        return _nothing
    try:  # noqa: SIM105 - suppress() is a class and two calls, at every pause
        budget.reschedule(None)
    except RuntimeError:  # expiring already: the cancellation wins
        pass
    return _Resume(budget, deadline, loop)


def _nothing() -> None:
    pass


class _Resume:
    """A paused budget's restart. A class, not a closure over `contextlib.suppress`: most
    requests of a large claim wait for their slot and pause, and the closure, its cell and
    the two context managers were most of what a pause cost."""

    __slots__ = ("budget", "deadline", "loop", "stopped")

    def __init__(self, budget: asyncio.Timeout, deadline: float,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.budget: asyncio.Timeout | None = budget
        self.deadline = deadline
        self.loop = loop
        self.stopped = loop.time()

    def __call__(self) -> None:
        budget, self.budget = self.budget, None
        if budget is not None:
            try:  # noqa: SIM105 - as above
                budget.reschedule(self.deadline + self.loop.time() - self.stopped)
            except RuntimeError:  # expiring already: the cancellation wins
                pass
