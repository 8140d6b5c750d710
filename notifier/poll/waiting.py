"""Waiting on many tasks without letting the slowest one set the pace."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

__all__ = ["wait_while_finishing"]


async def wait_while_finishing(tasks: Iterable[asyncio.Future[Any]], quiet: float,
                               cap: float) -> None:
    """Wait for `tasks` while they keep finishing: return once all are done, once none
    finished for `quiet` seconds, or after `cap` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + cap
    pending = {t for t in tasks if not t.done()}
    while pending and (left := end - loop.time()) > 0:
        done, pending = await asyncio.wait(pending, timeout=min(quiet, left),
                                           return_when=asyncio.FIRST_COMPLETED)
        if not done:
            return
