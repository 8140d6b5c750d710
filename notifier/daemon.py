"""Assemble the parts for a run, drive them, and stop cleanly.

APScheduler ticks; long-lived workers do the work: one polls, and each channel has its own
delivery worker, so a slow, paced or failing channel never holds back another (nor polling).
A tick only wakes a worker, so a cycle that takes longer than a tick never overlaps with the
next one, and a stop request has a fixed set of tasks to wait for. Digest times are cron
jobs of the same scheduler that wake the delivery workers at the minute. On SIGTERM or
SIGINT the workers get a few seconds to finish what they are doing; whatever is cut short is
safe by construction (a poll batch is one transaction; an unacknowledged notification stays
queued and is sent on the next run).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass

import httpx
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from notifier import __version__
from notifier.channels import build_channel
from notifier.cluster import Node
from notifier.config import Config
from notifier.delivery.channel import Channel, ChannelContext
from notifier.delivery.cycle import Delivery, DeliveryReport
from notifier.delivery.digest import cron_trigger
from notifier.fetch import Fetcher, FetchSettings
from notifier.poll import ParsePool, Poller, PollReport, StoreThread
from notifier.render import Renderer
from notifier.store import Store

log = logging.getLogger("notifier")

STOP_GRACE = 5.0
"""Seconds the workers get to finish after a stop signal before they are cancelled."""
DELIVERY_TICK = 5.0


@dataclass(frozen=True)
class OnceResult:
    poll: PollReport
    delivery: DeliveryReport

    @property
    def ok(self) -> bool:
        return not self.poll.errors and not self.delivery.errors


def fetch_settings(config: Config) -> FetchSettings:
    return FetchSettings(timeout=config.http.timeout, max_bytes=config.http.max_body,
                         max_connections=config.http.concurrency,
                         per_host=config.http.per_host,
                         block_private=config.http.block_private_networks)


class Engine:
    """The two halves of a run side by side: polling queues, delivery drains.

    They share only the store (through one worker thread); the daemon, not the poller,
    owns delivery, so a channel's trouble never reaches the poll path.
    """

    def __init__(self, config: Config, store: Store, fetcher: Fetcher,
                 channels: dict[str, Channel], *, parser: ParsePool,
                 clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None, node: Node | None = None) -> None:
        self.store = store
        self.db = StoreThread()
        self.clock = clock
        self.node = node or Node.of(config)
        rng = rng or random.Random()
        self.poller = Poller(config, store, fetcher, self.db, parser=parser, clock=clock,
                             rng=rng, node=self.node)
        self.delivery = Delivery(config, store, channels, self.db, clock=clock, rng=rng,
                                 node=self.node)
        self._heart: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the state, forget claims a killed process left behind, start beating.

        On SQLite this is the only node, so every claim left is a dead process's; on
        PostgreSQL only this node's own (a stable `cluster.node` name finds them at once;
        others' run out within a lease).
        """
        await self.db(self.store.migrate)
        single = self.store.engine.dialect.name == "sqlite"
        await self.db(self.store.release_node, self.node.name, self.clock(), single)
        await self.node.beat(self.store, self.db, self.clock)
        self._heart = asyncio.create_task(self._beat(), name="heartbeat")
        log.info("node %s (lease %.0f s, subscriptions %s)", self.node.name, self.node.lease,
                 self.node.config_hash)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.node.beat_every)
            try:
                await self.node.beat(self.store, self.db, self.clock)
            except Exception:
                log.exception("heartbeat failed; trying again in %.0f s", self.node.beat_every)

    async def stop(self) -> None:
        """Stop beating and give back what this node holds, so others take over at once."""
        if self._heart is None:
            return
        self._heart.cancel()
        await asyncio.gather(self._heart, return_exceptions=True)
        self._heart = None
        await self.db(self.store.release_node, self.node.name, self.clock())

    async def poll(self, *, force: bool = False) -> PollReport:
        return await self.poller.poll(force=force)

    async def deliver(self, *, limit: int = 1000,
                      channels: Iterable[str] | None = None) -> DeliveryReport:
        """Send what is due, at most `limit` rows per channel: see `notifier.delivery`."""
        return await self.delivery.deliver(limit=limit, channels=channels)

    def close(self) -> None:
        self.db.close()


@contextlib.asynccontextmanager
async def open_engine(config: Config) -> AsyncIterator[Engine]:
    """Everything a run needs, opened in order and closed in reverse, also on errors."""
    node = Node.of(config)
    store = Store(config.state_url(), node.name, node.lease)
    parser = ParsePool()
    try:
        async with Fetcher(fetch_settings(config)) as fetcher, httpx.AsyncClient(
                follow_redirects=False, timeout=httpx.Timeout(15.0),
                headers={"User-Agent": f"notifier/{__version__}"}) as http:
            renderer = Renderer(config.base_dir,
                                {s.name: s.templates for s in config.subscriptions})
            context = ChannelContext(renderer=renderer, http=http)
            channels = {name: build_channel(name, cfg, context)
                        for name, cfg in config.channels.items()}
            engine = Engine(config, store, fetcher, channels, parser=parser, node=node)
            try:
                await engine.start()
                try:
                    yield engine
                finally:
                    await engine.stop()
            finally:
                engine.close()
    finally:
        parser.shutdown()
        store.close()


async def run_once(config: Config) -> OnceResult:
    """Poll every subscription now, deliver everything due, and report."""
    async with open_engine(config) as engine:
        poll = await engine.poll(force=True)
        delivery = await engine.deliver(limit=1_000_000)
        log.info("cycle done: %s; %d sent, %d to retry, %d dead-lettered, "
                 "%d held for a digest or quiet hours", poll.summary(),
                 delivery.sent, delivery.failed, delivery.dead, delivery.held)
        return OnceResult(poll, delivery)


def digest_times(config: Config) -> list[tuple[str, str]]:
    """Every distinct (cron expression, time zone) of a channel or subscription digest."""
    timings = [*config.channels.values(), *config.subscriptions]
    return sorted({(t.digest, t.timezone) for t in timings if t.digest is not None})


def poll_tick_seconds(config: Config) -> float:
    """Often enough to honour the shortest interval, rarely enough to cost nothing."""
    shortest = min(config.interval(s) for s in config.subscriptions)
    return max(1.0, min(15.0, shortest / 10))


async def run_forever(config: Config, stop: asyncio.Event | None = None) -> None:
    """The daemon: poll and deliver until SIGTERM/SIGINT (or `stop` is set)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    async with open_engine(config) as engine:
        poll_wanted = asyncio.Event()
        deliver_wanted = {name: asyncio.Event() for name in config.channels}

        def wake_delivery() -> None:
            for event in deliver_wanted.values():
                event.set()

        scheduler = AsyncIOScheduler(event_loop=loop)
        scheduler.add_job(poll_wanted.set, IntervalTrigger(seconds=poll_tick_seconds(config)),
                          id="poll-tick", coalesce=True, max_instances=1)
        scheduler.add_job(wake_delivery, IntervalTrigger(seconds=DELIVERY_TICK),
                          id="deliver-tick", coalesce=True, max_instances=1)
        for index, (expr, zone) in enumerate(digest_times(config)):
            scheduler.add_job(wake_delivery, cron_trigger(expr, zone), id=f"digest-{index}",
                              coalesce=True, max_instances=1)
        poll_wanted.set()
        wake_delivery()

        async def poll_cycle() -> None:
            report = await engine.poll()
            if report.feeds_polled or report.feeds_failed:
                log.info("poll cycle: %s", report.summary())
            if report.queued:
                wake_delivery()

        def deliver_cycle(name: str) -> Callable[[], Awaitable[None]]:
            async def cycle() -> None:
                await engine.deliver(channels=[name])
            return cycle

        workers = [_Worker("poll", poll_wanted, poll_cycle)]
        workers += [_Worker(f"delivery to {name}", event, deliver_cycle(name))
                    for name, event in deliver_wanted.items()]
        tasks = [asyncio.create_task(w.run(), name=w.name) for w in workers]
        scheduler.start()
        log.info("notifier %s running: %d subscriptions, %d channels",
                 __version__, len(config.subscriptions), len(config.channels))
        try:
            await stop.wait()
            log.info("stopping: letting work in flight finish for up to %.0f s", STOP_GRACE)
        finally:
            scheduler.shutdown(wait=False)
            await _drain(workers, tasks)
    log.info("stopped")


class _Worker:
    """Runs one kind of cycle whenever its event is set; knows whether it is mid-cycle."""

    def __init__(self, name: str, wanted: asyncio.Event,
                 cycle: Callable[[], Awaitable[None]]) -> None:
        self.name = name
        self.wanted = wanted
        self.cycle = cycle
        self.busy = False

    async def run(self) -> None:
        while True:
            await self.wanted.wait()
            self.wanted.clear()
            self.busy = True
            try:
                await self.cycle()
            except Exception:
                log.exception("%s cycle failed; trying again at the next tick", self.name)
            finally:
                self.busy = False


async def _drain(workers: list[_Worker], tasks: list[asyncio.Task[None]]) -> None:
    """Cancel idle workers at once; give busy ones the grace period to finish their cycle."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STOP_GRACE
    while True:
        for worker, task in zip(workers, tasks, strict=True):
            if not worker.busy or loop.time() >= deadline:
                task.cancel()
        if all(task.done() for task in tasks):
            break
        await asyncio.sleep(0.05)
    await asyncio.gather(*tasks, return_exceptions=True)
