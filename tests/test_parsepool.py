"""Parse workers a hostile body cannot stall: the time limit, the replacement, the lanes."""

from __future__ import annotations

import asyncio
import os

import pytest

from notifier.models import ParsedFeed
from notifier.poll.parsepool import ParsePool
from tests.test_hostile_feeds import atom, rss_with_author


def test_an_overrunning_parse_is_cut_and_its_worker_replaced() -> None:
    # UTF-16, so the byte-level author cap cannot see it: feedparser's quadratic
    # author-email search runs for minutes unless the worker is stopped.
    bomb = rss_with_author("a" * 200_000, "UTF-16")

    async def drive() -> tuple[object, object, object, set[int], list[int]]:
        pool = ParsePool(workers=1, time_limit=1.0)
        try:
            first = await pool.parse(atom(2), "http://blog.test/a/feed/atom/", {})
            before = set(pool.worker_pids())
            task = asyncio.create_task(pool.parse(bomb, "http://blog.test/bomb/", {}))
            stuck_pids: set[int] = set()
            for _ in range(600):  # its worker starts (seconds on a busy machine)
                stuck_pids = set(pool.worker_pids()) - before
                if stuck_pids or task.done():
                    break
                await asyncio.sleep(0.05)
            stuck = await task
            after = await pool.parse(atom(3), "http://blog.test/a/feed/atom/", {})
            return first, stuck, after, stuck_pids, pool.worker_pids()
        finally:
            pool.shutdown()

    first, stuck, after, stuck_pids, now = asyncio.run(drive())
    assert isinstance(first, ParsedFeed)
    assert str(stuck) == "parser took more than 1 s"
    assert isinstance(after, ParsedFeed) and len(after.entries) == 3
    assert stuck_pids and not stuck_pids & set(now)  # the stuck worker is gone...
    for pid in stuck_pids:  # ... killed, not left running
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_url_whose_parse_overran_no_longer_holds_up_the_others() -> None:
    bomb = rss_with_author("a" * 200_000, "UTF-16")

    async def drive() -> tuple[float, object]:
        pool = ParsePool(workers=1, time_limit=3.0)
        try:
            assert str(await pool.parse(bomb, "http://blog.test/bomb/", {})) == \
                "parser took more than 3 s"
            # A fresh worker for the ordinary lane (the stuck one was killed).
            assert isinstance(await pool.parse(atom(1), "http://blog.test/w/", {}), ParsedFeed)
            # Now a suspect: it parses in its own lane while an ordinary feed is parsed.
            slow = asyncio.create_task(pool.parse(bomb, "http://blog.test/bomb/", {}))
            await asyncio.sleep(0.5)
            loop = asyncio.get_running_loop()
            started = loop.time()
            quick = await pool.parse(atom(2), "http://blog.test/a/feed/atom/", {})
            took = loop.time() - started
            await slow
            return took, quick
        finally:
            pool.shutdown()

    took, quick = asyncio.run(drive())
    assert isinstance(quick, ParsedFeed)
    assert took < 2.5, took
