"""Parse workers a hostile body cannot stall: the time limit, the replacement, the lanes."""

from __future__ import annotations

import asyncio
import os

import pytest

from notifier.entrytext import MAX_ENTRIES
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


def test_a_suspect_body_never_holds_up_the_ordinary_feeds() -> None:
    bomb = rss_with_author("a" * 200_000, "UTF-16")  # over 1 MiB: parsed in its own lane

    async def drive() -> tuple[object, bool]:
        pool = ParsePool(workers=1, time_limit=30.0)
        try:
            # A warm worker for the ordinary lane.
            assert isinstance(await pool.parse(atom(1), "http://blog.test/w/", {}), ParsedFeed)
            before = set(pool.worker_pids())
            slow = asyncio.create_task(pool.parse(bomb, "http://blog.test/bomb/", {}))
            for _ in range(600):  # the suspect lane's worker starts and takes the bomb
                if set(pool.worker_pids()) - before:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            quick = await pool.parse(atom(2), "http://blog.test/a/feed/atom/", {})
            still_stuck = not slow.done()
            slow.cancel()
            await asyncio.gather(slow, return_exceptions=True)
            return quick, still_stuck
        finally:
            pool.shutdown()

    quick, still_stuck = asyncio.run(drive())
    assert isinstance(quick, ParsedFeed)
    assert still_stuck  # the ordinary feed was parsed while the bomb still ran


def test_a_feed_of_100000_entries_is_cut_before_it_travels_and_its_worker_not_kept() -> None:
    """100,000 entries (30 MB here) cost feedparser 20 s and 300 MB; the pool sends the
    first MAX_ENTRIES only, and the worker that held a parse that big is replaced."""
    body = atom(100_000)

    async def drive() -> tuple[object, list[int], list[int], object, list[int]]:
        pool = ParsePool(workers=1, time_limit=60.0)
        try:
            huge = await pool.parse(body, "http://blog.test/huge/", {})
            after_huge = pool.worker_pids()
            small = await pool.parse(atom(2), "http://blog.test/a/", {})
            after_small = pool.worker_pids()
            for n in range(3):
                await pool.parse(atom(3 + n), "http://blog.test/a/", {})
            return huge, after_huge, after_small, small, pool.worker_pids()
        finally:
            pool.shutdown()

    huge, after_huge, after_small, small, later = asyncio.run(drive())
    assert isinstance(huge, ParsedFeed), huge
    assert len(huge.entries) == MAX_ENTRIES
    assert "ignored the entries beyond the first 5,000" in huge.warning
    # The newest come first in a feed: those are the ones kept.
    assert huge.entries[0].key.endswith("#comment-100000")
    assert after_huge == []  # the worker that parsed it is gone; the next one is new
    assert isinstance(small, ParsedFeed) and len(after_small) == 1
    assert later == after_small  # ordinary feeds keep their worker: no start-up per parse
