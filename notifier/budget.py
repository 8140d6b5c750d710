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
from asyncio import CancelledError
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

__all__ = ["TICK", "Budget", "Deadline", "deadline", "pause_budget"]

TICK = 1 / 64
"""Seconds to which a deadline is rounded up: it ends at most this much late."""


class _Ticks:
    """One loop's deadlines by the tick they end in, each tick one timer of the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiting: dict[int, dict[Deadline, None]] = {}

    def add(self, when: float, timeout: Deadline) -> dict[Deadline, None]:
        """`timeout` waits for the tick of `when`: in the dict returned (its `cancel` takes
        it out again)."""
        tick = -int(-when // TICK)  # the first tick not before `when`
        waiting = self.waiting.get(tick)
        if waiting is None:
            waiting = self.waiting[tick] = {}
            self.loop.call_at(tick * TICK, self._end, tick)
        waiting[timeout] = None
        return waiting

    def _end(self, tick: int) -> None:
        for timeout in list(self.waiting.pop(tick, ())):
            timeout.expire()


_local = threading.local()


def _ticks(loop: asyncio.AbstractEventLoop) -> _Ticks:
    """The running loop's ticks (a thread runs one loop at a time)."""
    ticks: _Ticks | None = getattr(_local, "ticks", None)
    if ticks is None or ticks.loop is not loop:
        ticks = _local.ticks = _Ticks(loop)
    return ticks


_State: Any = type(vars(asyncio.Timeout(None))["_state"])
"""`asyncio.Timeout`'s states, which its own methods (`expired`, `when`) still read."""
_CREATED, _ENTERED, _EXPIRING, _EXPIRED, _EXITED = (
    _State.CREATED, _State.ENTERED, _State.EXPIRING, _State.EXPIRED, _State.EXITED)


class Deadline(asyncio.Timeout):  # type: ignore[misc]  # final for typeshed, not at run time
    """`asyncio.Timeout`, ending at most `TICK` late, on a timer shared with every deadline
    that ends in the same tick.

    Entered, left and moved by its own code, with `asyncio.Timeout`'s states and outcomes
    (a cancellation from outside stays one; its own expiry is a TimeoutError): a poll has
    two (its budget, its request's time limit), and the standard class's checks and calls
    (its `reschedule` taken twice for each move, a handle object per deadline) cost 4 us
    for each, a twentieth of an unchanged poll.
    """

    __slots__ = ("_loop", "_waiting")

    def __init__(self, when: float | None,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._state = _CREATED
        self._timeout_handler: asyncio.Handle | None = None
        self._task: asyncio.Task[Any] | None = None
        self._when = when
        self._loop = loop
        self._waiting: dict[Deadline, None] | None = None
        """The tick this deadline waits for, while it waits (`_Ticks.add`)."""

    async def __aenter__(self) -> Self:
        if self._state is not _CREATED:
            raise RuntimeError("Timeout has already been entered")
        task = asyncio.current_task(self._loop)
        if task is None:
            raise RuntimeError("Timeout should be used inside a task")
        self._state = _ENTERED
        self._task = task
        self._cancelling = task.cancelling()
        if self._when is not None:
            self._arm(self._when)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc_val: BaseException | None, exc_tb: TracebackType | None) -> None:
        self._disarm()
        state = self._state
        if state is _EXPIRING:
            self._state = _EXPIRED
            assert self._task is not None
            if self._task.uncancel() <= self._cancelling and exc_type is CancelledError:
                raise TimeoutError from exc_val  # its own expiry: not a cancellation
        elif state is _ENTERED:
            self._state = _EXITED

    def reschedule(self, when: float | None) -> None:
        if self._state is not _ENTERED:
            if self._state is _CREATED:
                raise RuntimeError("Timeout has not been entered")
            raise RuntimeError(f"Cannot change state of {self._state.value} Timeout")
        self._when = when
        self._disarm()
        if when is not None:
            self._arm(when)

    def _arm(self, when: float) -> None:
        loop = self._loop or asyncio.get_running_loop()
        if when <= loop.time():
            self._timeout_handler = loop.call_soon(self.expire)
        else:
            self._waiting = _ticks(loop).add(when, self)

    def _disarm(self) -> None:
        waiting = self._waiting
        if waiting is not None:
            self._waiting = None
            waiting.pop(self, None)
        handle = self._timeout_handler
        if handle is not None:
            self._timeout_handler = None
            handle.cancel()

    def expire(self) -> None:
        """Its time has come: cancel the task, as `asyncio.Timeout`'s own timer does."""
        self._waiting = self._timeout_handler = None
        if self._state is _ENTERED:
            assert self._task is not None
            self._task.cancel()
            self._state = _EXPIRING


def deadline(delay: float | None) -> Deadline:
    """`asyncio.timeout(delay)`, as a `Deadline`."""
    loop = asyncio.get_running_loop()
    return Deadline(loop.time() + delay if delay is not None else None, loop)


class Budget(Deadline):  # type: ignore[misc]  # see Deadline
    """A poll's budget (`async with Budget(seconds)`) that starts when its first request
    gets its slot (`start`): until then the poll only queues, which a budget must not count.

    The same as starting it at once and pausing it for that first wait, without the two
    moves of its timer that a pause costs: most polls of a large claim wait there."""

    __slots__ = ("_started", "seconds")

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
