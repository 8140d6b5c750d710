"""A feed's time budget, which stands still while the feed only queues.

A poll has one budget (`poll.cycle.feed_budget`) for its fetch and its parse. Waiting for a
per-host slot (politeness towards one server) or for a parse worker (the pool's backlog)
is not the feed's own slowness: the more feeds a cycle or a node takes at once (a larger
`http.concurrency`, a first run), the longer those queues, and a budget counting them would
fail healthy feeds, to be fetched and parsed again next cycle. So both waits pause it.

Each poll's budget and each request's time limit is a `Deadline`: an `asyncio.Timeout`
whose timer the loop keeps once per `TICK` for all the deadlines that end in it, not once
each. A cycle over 10,000 feeds set and cancelled 20,000 timers of the loop, a tenth of
the CPU of an unchanged poll; the deadlines of a cycle end within a few hundred ticks.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, cast

__all__ = ["TICK", "Budget", "Deadline", "deadline", "pause_budget"]

TICK = 1 / 64
"""Seconds to which a deadline is rounded up: it ends at most this much late."""


class _Pending:
    """A deadline waiting for its tick; `cancel` as a timer handle's (`Timeout` calls it)."""

    __slots__ = ("timeout", "waiting")

    def __init__(self, waiting: dict[_Pending, None], timeout: Deadline) -> None:
        self.waiting = waiting
        self.timeout = timeout

    def cancel(self) -> None:
        self.waiting.pop(self, None)


class _Ticks:
    """One loop's deadlines by the tick they end in, each tick one timer of the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiting: dict[int, dict[_Pending, None]] = {}

    def add(self, when: float, timeout: Deadline) -> _Pending:
        tick = -int(-when // TICK)  # the first tick not before `when`
        waiting = self.waiting.get(tick)
        if waiting is None:
            waiting = self.waiting[tick] = {}
            self.loop.call_at(tick * TICK, self._end, tick)
        pending = _Pending(waiting, timeout)
        waiting[pending] = None
        return pending

    def _end(self, tick: int) -> None:
        for pending in list(self.waiting.pop(tick, ())):
            pending.timeout.expire()


_local = threading.local()


def _ticks(loop: asyncio.AbstractEventLoop) -> _Ticks:
    """The running loop's ticks (a thread runs one loop at a time)."""
    ticks: _Ticks | None = getattr(_local, "ticks", None)
    if ticks is None or ticks.loop is not loop:
        ticks = _local.ticks = _Ticks(loop)
    return ticks


class Deadline(asyncio.Timeout):  # type: ignore[misc]  # final for typeshed, not at run time
    """`asyncio.Timeout`, ending at most `TICK` late, on a timer shared with every deadline
    that ends in the same tick."""

    def reschedule(self, when: float | None) -> None:
        super().reschedule(None)  # the state checked, the deadline it had dropped
        if when is None:
            return
        self._when = when
        loop = asyncio.get_running_loop()
        handler: Any = (loop.call_soon(self.expire) if when <= loop.time()
                        else _ticks(loop).add(when, self))
        self._timeout_handler = handler

    def expire(self) -> None:
        """Its time has come: cancel the task, as `asyncio.Timeout`'s own timer does."""
        cast(Any, self)._on_timeout()


def deadline(delay: float | None) -> Deadline:
    """`asyncio.timeout(delay)`, as a `Deadline`."""
    loop = asyncio.get_running_loop()
    return Deadline(loop.time() + delay if delay is not None else None)


class Budget(Deadline):  # type: ignore[misc]  # see Deadline
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
