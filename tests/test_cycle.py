"""The poll cycle's end: a daemon cycle returns once only stragglers remain, and every poll,
a straggler's too, is written once."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import yaml

from notifier.config import load_config
from notifier.poll.cycle import CYCLE_WAIT
from tests.support.engine import running_engine
from tests.support.feed_farm import FeedFarm

FEEDS = 45
SLOW = 0.1
"""Seconds each answer takes, one at a time (per_host 1): the cycle's polls land every
0.1 s, more often than the writer lingers for a batch, for 4.5 s, longer than a cycle
waits (`CYCLE_WAIT`)."""


class _Clock:
    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        import time

        return time.time() + self.ahead


def test_a_daemon_cycle_leaves_a_slow_hosts_stragglers_to_the_background(
        tmp_path: Path) -> None:
    """The cycle stops waiting after `CYCLE_WAIT` while a slow host's feeds keep landing
    faster than the writer lingers for a batch (its end-of-cycle mark arrives mid-batch),
    and what lands after it returned is still written, and counted, once."""
    assert FEEDS * SLOW > CYCLE_WAIT + 1.0
    clock = _Clock()
    with FeedFarm(FEEDS) as farm:
        path = tmp_path / "notifier.yaml"
        path.write_text(yaml.safe_dump({
            "state": "sqlite:///state.db",
            "defaults": {"interval": "60s", "jitter": 0},
            "http": {"concurrency": 100, "per_host": 1},
            "channels": {"me": {"type": "console"}},
            "subscriptions": [{"name": f"thread {i}", "url": farm.origin + farm.path(i),
                               "watch": "comments", "notify": ["me"]} for i in range(FEEDS)],
        }), encoding="utf-8")
        config = load_config(path)

        async def scenario() -> tuple[int, int, int]:
            async with running_engine(config, clock=clock) as engine:
                # Bounded: a writer that lost count of its queue would hang a cycle.
                await asyncio.wait_for(engine.poll(force=True), 60)  # the baselines
                farm.clear_hits()
                farm.delay = SLOW
                clock.ahead += 61  # every feed due
                report = await asyncio.wait_for(engine.poll(), 60)
                left = engine.poller._running
                for _ in range(300):  # the stragglers land (bounded: 30 s)
                    if not engine.poller._inflight:
                        break
                    await asyncio.sleep(0.1)
                later = engine.poller._take_report()
                return left, report.feeds_polled, later.feeds_polled

        left, in_cycle, after = asyncio.run(scenario())
        hits = farm.hits
    assert left > 0, "the cycle waited for every straggler"
    assert in_cycle + after == FEEDS  # every poll counted once, in the cycle or later
    assert len(hits) == FEEDS  # each feed asked once
    with sqlite3.connect(tmp_path / "state.db") as db:
        polled = db.execute("SELECT count(*) FROM feeds WHERE last_polled > ?",
                            (clock() - 50,)).fetchone()[0]
    assert polled == FEEDS  # and each written
