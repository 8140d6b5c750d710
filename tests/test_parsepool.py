"""Parse workers a hostile body cannot stall: the time limit, the replacement, the lanes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import yaml

import notifier
from notifier.config import load_config
from notifier.daemon import fetch_settings
from notifier.entrytext import MAX_ENTRIES
from notifier.failures import Failure
from notifier.fetch import Fetcher
from notifier.models import ParsedFeed
from notifier.poll import Poller, StoreThread, parsepool
from notifier.poll.parsepool import ParsePool
from notifier.poll.parseworker import RECYCLE_GROWTH
from notifier.poll.record import PollReport
from notifier.poll.retrieve import Polled
from notifier.store import FeedState, Store
from tests.support.blog_server import BlogServer
from tests.support.engine import running_engine
from tests.support.feed_farm import FeedFarm
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


def test_a_body_waiting_behind_an_overrunning_parse_is_parsed_by_the_next_worker() -> None:
    """A worker holds the next body while it parses (no idle round trip between bodies):
    the body behind a parse that overruns is not lost with the killed worker, and its own
    time limit starts only when a worker takes it up."""
    bomb = rss_with_author("a" * 200_000, "UTF-16")

    async def drive() -> tuple[object, list[object]]:
        pool = ParsePool(workers=1, time_limit=1.0)
        try:
            await pool.parse(atom(1), "http://blog.test/warm/feed/atom/", {})  # started
            stuck = asyncio.create_task(pool.parse(bomb, "http://blog.test/bomb/", {}))
            await asyncio.sleep(0)  # the bomb goes first, the others queue behind it
            behind = [asyncio.create_task(pool.parse(atom(n), f"http://blog.test/{n}/", {}))
                      for n in (2, 3, 4)]
            return await stuck, list(await asyncio.gather(*behind))
        finally:
            pool.shutdown()

    stuck, behind = asyncio.run(drive())
    assert str(stuck) == "parser took more than 1 s"
    assert [len(p.entries) if isinstance(p, ParsedFeed) else p for p in behind] == [2, 3, 4]


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


def test_a_body_queued_behind_busy_workers_is_parsed_however_long_it_waited(
        tmp_path: Path, blog_server: BlogServer) -> None:
    """A first run of thousands of feeds fills the parse queue: a feed fetched early waits
    for a worker longer than its whole budget on a busy machine. That wait is the pool's
    backlog, not the feed's slowness, so the feed is parsed, not failed for time (and
    fetched and parsed again next cycle)."""
    blog_server.add_file("/queued/feed/", atom(2), "application/atom+xml")
    url = blog_server.url("/queued/feed/")
    config_path = tmp_path / "notifier.yaml"
    config_path.write_text(yaml.safe_dump({
        "state": "sqlite:///state.db", "channels": {"out": {"type": "console"}},
        "subscriptions": [{"name": "q", "url": url, "notify": ["out"]}]}), encoding="utf-8")
    config = load_config(config_path, {})
    feed = FeedState(id=1, url=url, title="", api_root=None, etag=None, last_modified=None,
                     body_hash=None, interval=600.0, next_due=0.0, last_polled=None,
                     last_status=None, last_failure=None, error_count=0)

    async def drive() -> tuple[Polled, Polled]:
        pool = ParsePool(workers=1, time_limit=10.0)
        store = Store(config.state_url())
        db = StoreThread()
        try:
            async with Fetcher(fetch_settings(config)) as fetcher:
                poller = Poller(config, store, fetcher, db, parser=pool)
                poller.feed_budget = 2.0
                warm = await poller._retrieve(feed, rescan=False, conditional=False,
                                              expect=None, proceed=lambda: True)
                # The only worker is busy for longer than the feed's budget.
                busy = asyncio.create_task(pool.run(time.sleep, 3.0))
                await asyncio.sleep(0.2)
                queued = await poller._retrieve(feed, rescan=False, conditional=False,
                                                expect=None, proceed=lambda: True)
                await busy
                await poller.close()
                return warm, queued
        finally:
            pool.shutdown()
            db.close()
            store.close()

    warm, queued = asyncio.run(drive())
    assert warm.failure is None and warm.parsed is not None
    assert queued.failure is None, queued.failure
    assert queued.parsed is not None and len(queued.parsed.entries) == 2


def test_a_budget_stands_still_only_while_waiting_for_a_worker() -> None:
    async def drive() -> tuple[float, float, object, object]:
        pool = ParsePool(workers=1, time_limit=10.0)
        loop = asyncio.get_running_loop()
        try:
            assert isinstance(await pool.parse(atom(1), "http://blog.test/w/", {}), ParsedFeed)
            busy = asyncio.create_task(pool.run(time.sleep, 1.0))
            await asyncio.sleep(0.1)  # the sleep holds the only worker
            async with asyncio.timeout(5.0) as budget:
                before = budget.when() or 0.0
                started = loop.time()
                parsed = await pool.parse(atom(2), "http://blog.test/a/", {}, budget=budget)
                waited = loop.time() - started
                after = budget.when() or 0.0
            await busy
            # A job that overruns its budget is still cut by it once it runs.
            late: object = None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5) as budget:
                    late = await pool.run(time.sleep, 3.0, budget=budget)
            return after - before, waited, parsed, late
        finally:
            pool.shutdown()

    moved, waited, parsed, late = asyncio.run(drive())
    assert isinstance(parsed, ParsedFeed)
    assert 0.5 < moved <= waited  # moved on by the wait for the worker, not by the parse
    assert late is None  # the budget ran while the job itself ran


def test_a_large_daemon_keeps_its_parse_workers() -> None:
    """A daemon over 10,000 feeds is larger than a worker may grow; its workers are forked
    from it before they exec, and must not count its size as their own (they did: each was
    replaced after every parse, one process start per feed)."""
    ballast = bytearray(RECYCLE_GROWTH + 32 * 1024 * 1024)
    for offset in range(0, len(ballast), 4096):  # resident, not only reserved
        ballast[offset] = 1

    async def drive() -> list[list[int]]:
        pool = ParsePool(workers=1)
        seen = []
        try:
            for n in range(1, 4):
                assert isinstance(await pool.parse(atom(n), "http://blog.test/a/", {}),
                                  ParsedFeed)
                seen.append(pool.worker_pids())
        finally:
            pool.shutdown()
        return seen

    seen = asyncio.run(drive())
    del ballast
    assert len(seen[0]) == 1 and seen == [seen[0]] * 3


_KEPT: list[bytearray] = []


def _grow_past_the_recycling_limit(seconds: float) -> str:
    """Runs in a worker: holds on to more than RECYCLE_GROWTH, as a huge parse's leftovers
    would, so that the worker retires after answering."""
    time.sleep(seconds)
    block = bytearray(RECYCLE_GROWTH + 8 * 1024 * 1024)
    for offset in range(0, len(block), 4096):  # resident, not only reserved
        block[offset] = 1
    _KEPT.append(block)
    return "grown"


def test_the_body_behind_a_retiring_worker_is_parsed_by_the_next_one() -> None:
    """A worker that grew too large retires after its answer, leaving the body it held in
    its pipe untouched: that body goes to a fresh worker and is parsed, not failed."""

    async def drive() -> tuple[object, object, list[int], list[int]]:
        pool = ParsePool(workers=1, time_limit=30.0)
        try:
            await pool.parse(atom(1), "http://blog.test/warm/", {})
            before = pool.worker_pids()
            grows = asyncio.create_task(pool.run(_grow_past_the_recycling_limit, 0.5))
            await asyncio.sleep(0.1)  # it holds the worker; the next body waits in its pipe
            behind = await pool.parse(atom(3), "http://blog.test/behind/", {})
            return await grows, behind, before, pool.worker_pids()
        finally:
            pool.shutdown()

    grown, behind, before, after = asyncio.run(drive())
    assert grown == "grown"
    assert isinstance(behind, ParsedFeed) and len(behind.entries) == 3, behind
    assert before and after and set(before).isdisjoint(after)  # a fresh worker parsed it


def test_a_parse_arriving_as_its_worker_starts_waits_for_it_without_hanging(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A body that asks for a worker just as the one being started is ready, before its
    starter took it into the pool, shares that worker. It used to spin in the event loop
    for ever (the starter never ran again): a first run of 10,000 feeds hung at the
    replacement of a retired worker with the CPU at 100%."""
    started: list[int] = []
    arriving: list[asyncio.Task[object]] = []
    real = parsepool._Worker

    async def drive() -> list[object]:
        loop = asyncio.get_running_loop()
        pool = ParsePool(workers=1, time_limit=30.0)

        def arrive() -> None:
            arriving.append(asyncio.create_task(
                pool.parse(atom(3), "http://blog.test/3/feed/atom/", {})))

        def start(memory_limit: int) -> parsepool._Worker:
            worker = real(memory_limit)
            started.append(1)
            if len(started) == 1:
                # Runs on the loop before the start is known there: the new parse enters
                # the pool when the start is done and its starter not yet resumed.
                loop.call_soon_threadsafe(arrive)
            return worker

        monkeypatch.setattr(parsepool, "_Worker", start)
        try:
            first = await pool.parse(atom(2), "http://blog.test/2/feed/atom/", {})
            for _ in range(100):
                if arriving:
                    break
                await asyncio.sleep(0.01)
            return [first, await arriving[0]]
        finally:
            pool.shutdown()

    def give_up(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError("the pool spun without yielding to the event loop")

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.alarm(60)  # the spin never yields: only a signal ends it
    try:
        results = asyncio.run(drive())
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert [len(r.entries) if isinstance(r, ParsedFeed) else r for r in results] == [2, 3]
    assert started == [1]  # one worker, shared


def test_a_worker_started_for_a_parse_that_gave_up_serves_the_next_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A feed whose time ran out while its worker was still starting (seconds on a busy
    machine) leaves that worker to the pool: the next body is parsed by it, not by a second
    process started beside an untracked one."""
    calls: list[int] = []
    started: list[int] = []
    real = parsepool._Worker

    def start(memory_limit: int) -> parsepool._Worker:
        calls.append(1)
        time.sleep(0.5)  # a slow start: the parse that asked for it gives up meanwhile
        worker = real(memory_limit)
        started.append(worker.process.pid or 0)
        return worker

    async def drive() -> tuple[object, list[int]]:
        pool = ParsePool(workers=1, time_limit=30.0)
        try:
            gave_up = asyncio.create_task(pool.parse(atom(1), "http://blog.test/1/", {}))
            await asyncio.sleep(0.1)
            gave_up.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gave_up
            parsed = await pool.parse(atom(2), "http://blog.test/2/", {})
            for _ in range(300):  # every start asked for has ended
                if len(started) == len(calls):
                    break
                await asyncio.sleep(0.1)
            return parsed, pool.worker_pids()
        finally:
            pool.shutdown()

    monkeypatch.setattr(parsepool, "_Worker", start)
    parsed, pids = asyncio.run(drive())
    assert isinstance(parsed, ParsedFeed) and len(parsed.entries) == 2, parsed
    assert len(started) == 1 and pids == started, (started, pids)


def test_a_parse_worker_loads_the_parser_and_not_the_daemons_libraries() -> None:
    """Every worker start (one per 2,000 bodies, and each suspect's) pays for what it
    imports: the parser, not the event loop, the SQL layer, the HTTP clients or the
    configuration's validation, which only the daemon uses."""
    # Nor multiprocessing's start-up (a resource tracker, a bootstrap that re-imported the
    # daemon's main module and with it the command line's modules).
    heavy = ("asyncio", "concurrent", "sqlite3", "socket", "aiohttp", "httpx", "pydantic",
             "yaml", "jinja2", "apscheduler", "multiprocessing", "threading", "runpy")
    daemons = ("notifier.__main__", "notifier.cli", "notifier.commands", "notifier.daemon",
               "notifier.config", "notifier.fetch", "notifier.store", "notifier.poll.parsepool")
    probe = ("sorted({m.split('.')[0] for m in __import__('sys').modules} & "
             f"{set(heavy) | {'feedparser', 'notifier'}!r})")
    notifiers = "sorted(m for m in __import__('sys').modules if m.startswith('notifier.'))"

    async def drive() -> tuple[object, object]:
        pool = ParsePool(workers=1)
        try:
            assert isinstance(await pool.parse(atom(2), "http://blog.test/a/", {}), ParsedFeed)
            return await pool.run(eval, probe), await pool.run(eval, notifiers)
        finally:
            pool.shutdown()

    imported, modules = asyncio.run(drive())
    assert imported == ["feedparser", "notifier"]
    assert isinstance(modules, list) and "notifier.parse" in modules
    assert not [m for m in modules if m.startswith(daemons)], modules


def test_a_parse_worker_leaves_the_http_clients_unloaded_until_something_fetches() -> None:
    """feedparser and xml.sax import HTTP clients a worker never uses (some 20 ms of each
    start): they are put off, every kind of document still parses (RSS 1.0 goes through
    feedparser's own parser and xml.sax), and code that does fetch gets the real module."""
    rss10 = (b'<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
             b'22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"><channel><title>Blog'
             b'</title><link>http://blog.test/</link></channel><item rdf:about="http://'
             b'blog.test/1"><title>One</title><link>http://blog.test/1</link></item>'
             b'</rdf:RDF>')
    loaded = ("[m for m in ('urllib.request', 'urllib.error', 'http.client', 'ssl', "
              "'tempfile', 'feedparser.http') "
              "if type(__import__('sys').modules.get(m)).__name__ == 'module']")
    fetches = ("__import__('feedparser.api').api.http.get.__module__, "
               "__import__('urllib.request').request.urlopen.__module__, "
               "__import__('feedparser.api').api.urllib.error.URLError.__module__")

    async def drive() -> tuple[object, object, object, object]:
        pool = ParsePool(workers=1)
        try:
            atom_feed = await pool.parse(atom(2), "http://blog.test/a/", {})
            rdf_feed = await pool.parse(rss10, "http://blog.test/rdf", {})
            return atom_feed, rdf_feed, await pool.run(eval, loaded), \
                await pool.run(eval, fetches)
        finally:
            pool.shutdown()

    atom_feed, rdf_feed, unloaded, modules = asyncio.run(drive())
    assert isinstance(atom_feed, ParsedFeed) and len(atom_feed.entries) == 2
    assert isinstance(rdf_feed, ParsedFeed)
    assert [e.link for e in rdf_feed.entries] == ["http://blog.test/1"]
    assert unloaded == []
    assert modules == ("feedparser.http", "urllib.request", "urllib.error")


def test_a_parse_worker_imports_from_where_the_daemon_did(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker finds notifier, and the modules its jobs name, where the daemon found them
    (its `sys.path`: a checkout, an editable install, a PYTHONPATH), not wherever a fresh
    interpreter would look: a benchmark or an upgrade in place ran another version's parser
    otherwise."""
    extra = tmp_path / "elsewhere"
    extra.mkdir()
    (extra / "pool_probe_job.py").write_text(
        "def where():\n"
        "    import notifier, sys\n"
        "    return notifier.__file__, __file__, sys.path\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(extra))  # the daemon's sys.path, not its environment
    import pool_probe_job  # type: ignore[import-not-found]

    async def drive() -> object:
        pool = ParsePool(workers=1)
        try:
            return await pool.run(pool_probe_job.where)
        finally:
            pool.shutdown()

    found = asyncio.run(drive())
    assert isinstance(found, tuple)
    package, job, path = found
    assert package == notifier.__file__
    assert Path(job) == extra / "pool_probe_job.py"
    assert path[0] == str(extra)


_INSTALLED = """
import asyncio, json, notifier
from notifier.poll.parsepool import ParsePool

FEED = (b'<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><id>x</id>'
        b'<updated>2026-01-01T00:00:00Z</updated></feed>')

async def main():
    pool = ParsePool(workers=1)
    try:
        parsed = await pool.parse(FEED, "http://blog.test/", {})
        worker = await pool.run(eval, "__import__('notifier').__file__")
    finally:
        pool.shutdown()
    print(json.dumps([notifier.__file__, worker, type(parsed).__name__]))

asyncio.run(main())
"""


def test_a_parse_worker_imports_an_installed_notifier(tmp_path: Path) -> None:
    """A daemon started as users start it, from any folder, its package found by the
    install alone (an editable install's import hook, as here, or site-packages): its
    workers parse with that same package."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", _INSTALLED], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    daemons, workers, parsed = json.loads(done.stdout)
    assert workers == daemons and parsed == "ParsedFeed"
    assert not Path(daemons).is_relative_to(tmp_path)


def test_a_worker_that_cannot_start_is_reported_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that dies before it is ready (a broken install, no memory) fails the parse
    with why, at once, not after the start's whole time limit."""
    monkeypatch.setattr(parsepool, "BOOT", "import sys; sys.exit(3)")

    async def drive() -> object:
        pool = ParsePool(workers=1)
        try:
            return await pool.parse(atom(1), "http://blog.test/a/", {})
        finally:
            pool.shutdown()

    started = time.monotonic()
    result = asyncio.run(drive())
    assert str(result) == ("parser worker did not start: it exited with status 3 before it "
                           "was ready")
    assert time.monotonic() - started < parsepool.WORKER_START_LIMIT / 2


_ORPHANS = """
import asyncio, json, re
from notifier.poll.parsepool import ParsePool

FEED = (b'<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><id>x</id>'
        b'<updated>2026-01-01T00:00:00Z</updated></feed>')

async def main():
    quiet, busy = ParsePool(workers=1), ParsePool(workers=1, time_limit=3600)
    await quiet.parse(FEED, "http://blog.test/", {})
    # Endless jobs: one in Python, one in a single call in C (a regex that backtracks for
    # hours) that never gives up the interpreter lock.
    jobs = [asyncio.create_task(busy.run(eval, "sum(i for i in range(10**12))")),
            asyncio.create_task(busy.run(re.match, "(a+)+$", "a" * 60 + "b", suspect=True))]
    while len(busy.worker_pids()) < 2:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)  # they have their jobs
    print(json.dumps({"idle": quiet.worker_pids(), "busy": busy.worker_pids()}), flush=True)
    await asyncio.gather(*jobs)

asyncio.run(main())
"""


def _gone(pid: int) -> bool:
    try:
        return "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return True


def test_parse_workers_end_when_the_daemon_is_killed() -> None:
    """`kill -9` of the daemon (or a crash) leaves no parse worker behind: an idle one ends
    at its pipe's end, and so do one in the middle of a parse that would never end and one
    stuck in a single call in C."""
    daemon = subprocess.Popen([sys.executable, "-c", _ORPHANS], stdout=subprocess.PIPE)
    workers: dict[str, list[int]] = {}
    try:
        assert daemon.stdout is not None
        workers = json.loads(daemon.stdout.readline())
        assert len(workers["idle"]) == 1 and len(workers["busy"]) == 2, workers
        assert not any(_gone(pid) for pid in workers["idle"] + workers["busy"])
        daemon.kill()
        daemon.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(
                _gone(pid) for pid in workers["idle"] + workers["busy"]):
            time.sleep(0.05)
        assert [pid for pid in workers["idle"] + workers["busy"] if not _gone(pid)] == []
    finally:
        daemon.kill()
        daemon.wait(10)
        for pid in workers.get("idle", []) + workers.get("busy", []):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


class _HeavyFarm(FeedFarm):
    """Comment feeds of some 200 KB each, as a blog's full-text feeds weigh."""

    def answer(self, thread: int) -> tuple[str, bytes]:
        etag, body = super().answer(thread)
        return etag, body.replace(b"</feed>", b"<!-- " + b"x" * 200_000 + b" --></feed>")


def test_fetching_waits_while_the_bodies_waiting_for_a_parse_are_too_many(
        tmp_path: Path) -> None:
    """Fetching outruns one parse worker: a first run held every feed's body at once (996
    at 1,000 feeds), hundreds of MB with real blogs' feeds. Past the pool's limit, new
    requests wait for the parse to catch up; every feed is still read and parsed."""
    feeds, concurrency, body = 30, 6, 200_000
    limit = 512 * 1024
    with _HeavyFarm(feeds) as farm:
        config_file = tmp_path / "notifier.yaml"
        config_file.write_text(yaml.safe_dump({
            "state": "sqlite:///state.db",
            "http": {"concurrency": concurrency, "per_host": concurrency},
            "channels": {"me": {"type": "console"}},
            "subscriptions": [{"name": f"t{i}", "url": farm.origin + farm.path(i),
                               "watch": "comments", "notify": ["me"]} for i in range(feeds)],
        }), encoding="utf-8")
        config = load_config(config_file)
        peak = 0

        async def drive() -> PollReport:
            async with running_engine(config) as engine:
                pool = engine.poller.parser
                pool.max_waiting = limit
                parse = pool.parse

                async def watched(body: bytes, *args: Any, **kwargs: Any
                                  ) -> ParsedFeed | Failure:
                    nonlocal peak
                    peak = max(peak, pool.waiting + len(body))
                    return await parse(body, *args, **kwargs)

                pool.parse = watched  # type: ignore[method-assign]
                return await engine.poll(force=True)

        report = asyncio.run(asyncio.wait_for(drive(), 120))
        statuses = [h.status for h in farm.hits]
    assert "30 feeds polled (0 unchanged, 0 failed)" in report.summary()
    assert statuses.count(200) >= feeds
    # The limit, plus what requests already on their way when it was reached brought.
    assert peak <= limit + concurrency * (body + 10_000), peak
