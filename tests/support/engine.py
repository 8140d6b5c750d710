"""One polling and delivering `Engine`, in-process, for tests that drive cycles by hand.

Tests that step a poll cycle at a time (a clock they move, a farm of feeds, a second node
on the same state) need the engine the daemon runs, with its store, fetcher and parse
pool, and all of it stopped and closed however the test ends: a parse worker left behind
outlives the test run.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable

from notifier.cluster import Node
from notifier.config import Config
from notifier.daemon import Engine, fetch_settings
from notifier.fetch import Fetcher
from notifier.poll import ParsePool
from notifier.store import Store


@contextlib.asynccontextmanager
async def running_engine(config: Config, *, clock: Callable[[], float] = time.time,
                         node: Node | None = None, state: str | None = None
                         ) -> AsyncIterator[Engine]:
    """A started engine over `state` (the configuration's by default), without channels;
    stopped and closed, its parse worker ended, when the block ends."""
    store = Store(state or config.state_url())
    pool = ParsePool(workers=1)
    try:
        async with Fetcher(fetch_settings(config)) as fetcher:
            engine = Engine(config, store, fetcher, {}, parser=pool, clock=clock, node=node)
            await engine.start()
            try:
                yield engine
            finally:
                await engine.stop()
                await engine.poller.close()
                engine.close()
    finally:
        pool.shutdown()
        store.close()
