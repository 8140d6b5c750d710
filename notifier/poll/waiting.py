"""Waiting on many tasks without letting the slowest one set the pace."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

__all__ = ["wait_while_finishing"]


async def wait_while_finishing(tasks: Iterable[asyncio.Future[Any]], quiet: float,
                               cap: float) -> None:
    """Wait for `tasks` while they keep finishing: return once all are done, once none
    finished for `quiet` seconds, or after `cap` seconds.

    Each task gets one callback for the whole wait, which counts it off and wakes the
    waiter: `asyncio.wait(FIRST_COMPLETED)` in a loop would add and remove a callback on
    every pending task each time one finishes (the last few hundred fetches of a cycle).
    """
    loop = asyncio.get_running_loop()
    end = loop.time() + cap
    pending = [t for t in tasks if not t.done()]
    left = len(pending)
    waiter: asyncio.Future[None] | None = None

    def finished(_: asyncio.Future[Any]) -> None:
        nonlocal left
        left -= 1
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    for task in pending:
        task.add_done_callback(finished)
    try:
        while left and (time_left := end - loop.time()) > 0:
            waiter = loop.create_future()
            try:
                async with asyncio.timeout(min(quiet, time_left)):
                    await waiter
            except TimeoutError:
                return
    finally:
        for task in pending:
            task.remove_done_callback(finished)
