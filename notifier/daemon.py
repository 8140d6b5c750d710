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
import dataclasses
import logging
import os
import random
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from notifier import __version__
from notifier.channels import CHANNEL_KINDS, build_channel
from notifier.cluster import Node
from notifier.config import Config, ConfigError, load_config, split_listen
from notifier.delivery.channel import Channel, ChannelContext
from notifier.delivery.cycle import Delivery, DeliveryReport
from notifier.delivery.digest import cron_trigger
from notifier.errors import NotifierError
from notifier.fetch import Fetcher, FetchSettings
from notifier.memory import release_freed_memory
from notifier.poll import ParsePool, Poller, PollReport, StoreThread
from notifier.poll.shards import Helper, Link, Share
from notifier.render import Renderer
from notifier.sdnotify import SystemdNotifier
from notifier.store import DaemonRecord, Store
from notifier.store.statefile import unwritable

if TYPE_CHECKING:
    from notifier.admin import AdminServer

log = logging.getLogger("notifier")

HEALTH_DB_TIMEOUT = 10.0
"""Seconds the database gets to answer the health check's query."""
STUCK_AFTER = 3600.0
"""A cycle running longer than this (seconds) is a hung loop for the health check and the
watchdog: far above a first poll of 10,000 feeds (about 4 minutes)."""
STOP_GRACE = 5.0
"""Seconds the workers get to finish after a stop signal before they are cancelled."""
STATE_BACKOFF_MAX = 60.0
"""Longest pause between cycles while the state cannot be written."""
DELIVERY_TICK = 5.0


@dataclass(frozen=True)
class OnceResult:
    """One pass of `run --once`: what its poll and its delivery did, for the exit status."""

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
                 rng: random.Random | None = None,
                 context: ChannelContext | None = None, node: Node | None = None) -> None:
        self.config = config
        self.store = store
        self.fetcher = fetcher
        self.parser = parser
        self.clock = clock
        self.rng = rng or random.Random()
        self.context = context
        self.db = StoreThread()
        self.node = node or Node.of(config)
        self.poller = Poller(config, store, fetcher, self.db, parser=parser, clock=clock,
                             rng=self.rng, node=self.node)
        self.delivery = Delivery(config, store, channels, self.db, clock=clock, rng=self.rng,
                                 node=self.node)
        self._heart: asyncio.Task[None] | None = None

    async def start(self, *, alone: bool = True) -> None:
        """Open the state, forget claims a killed process left behind, start beating.

        On SQLite this is the only node, so every claim left is a dead process's; on
        PostgreSQL only this node's own (a stable `cluster.node` name finds them at once;
        others' run out within a lease). Not `alone`: one of the two processes of a split
        run (`poll.shards`), whose claims were given back before they started.
        """
        await self.db(self.store.migrate)
        single = alone and self.store.dialect == "sqlite"
        await self.db(self.store.release_node, self.node.name, self.clock(), single)
        await self.node.beat(self.store, self.db, self.clock)
        self._heart = asyncio.create_task(self._beat(), name="heartbeat")
        log.info("node %s (lease %.0f s, subscriptions %s)", self.node.name, self.node.lease,
                 self.node.config_hash)

    async def _beat(self) -> None:
        # At a fixed rate, not a fixed gap after each beat: a beat waits for the store's
        # thread behind poll writes, and leases renewed late by that wait run out sooner.
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due = max(due + self.node.beat_every, loop.time())
            await asyncio.sleep(due - loop.time())
            try:
                await self.node.beat(self.store, self.db, self.clock)
            except Exception as exc:
                if unwritable(exc) is None:
                    log.exception("heartbeat failed; trying again in %.0f s",
                                  self.node.beat_every)
                # An unwritable state is told once, by the worker that met it first.

    async def release_stranded(self, failed_since: float) -> None:
        """Once the state is writable again: give back the deliveries this node claimed
        before it failed and no longer works on (their release failed with the state), so
        those notifications are not hidden for the rest of a lease."""
        await self.db(self.store.release_stranded, self.node.name,
                      failed_since + self.node.lease, frozenset(self.node.claims))

    async def stop(self) -> None:
        """Stop beating and give back what this node holds, so others take over at once."""
        if self._heart is None:
            return
        self._heart.cancel()
        await asyncio.gather(self._heart, return_exceptions=True)
        self._heart = None
        await self.db(self.store.release_node, self.node.name, self.clock())

    def reconfigure(self, config: Config) -> None:
        """Poll and deliver by `config` from the next cycle on (a reload).

        The poller is reconfigured in place (a feed in flight finishes, and is never polled
        twice beside it); a delivery cycle in flight finishes on the channels it started
        with. Everything that must survive lives in the store: seen entries, baselines, the
        outbox; so a subscription that is new gets its baseline at its first poll, a removed
        one is simply no longer planned, and queued notifications wait for their channel as
        before. Channels with unchanged settings keep their pacing.
        """
        if self.context is None:
            raise RuntimeError("this engine was built without a channel context")
        renderer = Renderer(config.base_dir, {s.name: s.templates for s in config.subscriptions})
        context = ChannelContext(renderer=renderer, http=self.context.http)
        channels = {name: build_channel(name, cfg, context)
                    for name, cfg in config.channels.items()}
        # The same node, beating on: what it claimed stays its own; the others see its new
        # subscriptions at the next heartbeat.
        self.node.config_hash = config.subscriptions_hash()
        delivery = Delivery(config, self.store, channels, self.db, clock=self.clock,
                            rng=self.rng, node=self.node)
        delivery.keep_pacing(self.delivery, [name for name, cfg in config.channels.items()
                                             if self.config.channels.get(name) == cfg])
        self.config, self.context = config, context
        self.poller.reconfigure(config)
        self.delivery = delivery

    async def poll(self, *, force: bool = False) -> PollReport:
        return await self.poller.poll(force=force)

    async def deliver(self, *, limit: int = 1000,
                      channels: Iterable[str] | None = None) -> DeliveryReport:
        """Send what is due, at most `limit` rows per channel: see `notifier.delivery`."""
        return await self.delivery.deliver(limit=limit, channels=channels)

    def close(self) -> None:
        self.db.close()


@contextlib.asynccontextmanager
async def open_engine(config: Config, *, node: Node | None = None, alone: bool = True
                      ) -> AsyncIterator[Engine]:
    """Everything a run needs, opened in order and closed in reverse, also on errors.

    `node` and `alone`: one process of a split run (see `Engine.start`)."""
    node = node or Node.of(config)
    store = Store(config.state_url(), node.name, node.lease)
    parser = ParsePool()
    try:
        async with contextlib.AsyncExitStack() as stack:
            settings = fetch_settings(config)
            if not alone:  # two processes share `http.concurrency` (each host is in one)
                settings = dataclasses.replace(settings, max_connections=max(
                    1, settings.max_connections // 2))
            fetcher = await stack.enter_async_context(Fetcher(settings))
            http = None
            if any(CHANNEL_KINDS[c.type].uses_http for c in config.channels.values()):
                import httpx  # only for channels that speak HTTP: mail alone does not load it

                http = await stack.enter_async_context(httpx.AsyncClient(
                    follow_redirects=False, timeout=httpx.Timeout(15.0),
                    headers={"User-Agent": f"notifier/{__version__}"}))
            renderer = Renderer(config.base_dir,
                                {s.name: s.templates for s in config.subscriptions})
            context = ChannelContext(renderer=renderer, http=http)
            channels = {name: build_channel(name, cfg, context)
                        for name, cfg in config.channels.items()}
            engine = Engine(config, store, fetcher, channels, parser=parser, context=context,
                            node=node)
            try:
                await engine.start(alone=alone)
                try:
                    yield engine
                finally:
                    await engine.stop()
            finally:
                await engine.poller.close()
                engine.close()
    finally:
        parser.shutdown()
        store.close()


async def poll_share(config: Config, share: Share, node: str, link: Link) -> PollReport:
    """The helper of a split run (`poll.shards`): poll its share, deliver nothing, and say
    it is alive at the heartbeat's rate (from this loop: a blocked loop falls silent)."""
    me = Node.of(config)
    me.name = node

    async def alive() -> None:
        while True:
            link.alive()
            await asyncio.sleep(link.every)

    beating = asyncio.create_task(alive(), name="alive")
    try:
        async with open_engine(config, node=me, alone=False) as engine:
            engine.poller.share = share
            engine.poller.on_queued = link.queued
            engine.poller.on_polled = link.polled
            return await engine.poll(force=True)
    finally:
        beating.cancel()


async def run_once(config: Config, helper: Helper | None = None,
                   share: Share | None = None) -> OnceResult:
    """Poll every subscription now, deliver everything due, and report.

    With a `helper` (a split run, `poll.shards`) this process polls `share` and the helper
    the rest; its report joins this one's, and what it queues is delivered from here."""
    async with (open_engine(config, alone=helper is None) as engine,
                contextlib.AsyncExitStack() as rounds):
        # The whole run is one delivery round: a mail channel keeps its SMTP connection
        # from one batch to the next while the poll goes on (not one per batch).
        for channel in engine.delivery.channels.values():
            await rounds.enter_async_context(channel.delivery_round())
        delivery = DeliveryReport()
        # Channels deliver while the poll goes on, as in the daemon: sending 1,000 mails
        # after the last feed was polled doubled a changed run. A channel that summarises
        # bursts waits for the whole poll, so a burst is judged on all it found.
        early = [name for name, c in config.channels.items() if c.burst_limit is None]
        queued = asyncio.Event()
        engine.poller.on_queued = queued.set
        polling = True

        async def deliver_while_polling() -> None:
            while polling and early:
                await queued.wait()
                queued.clear()
                if polling:
                    _add(delivery, await engine.deliver(limit=1_000_000, channels=early))

        sender = asyncio.create_task(deliver_while_polling(), name="delivery while polling")
        try:
            poll = await (engine.poll(force=True) if helper is None
                          else _poll_beside(engine, helper, share, queued.set))
        except BaseException:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            raise
        finally:
            polling = False
            queued.set()
            engine.poller.on_queued = None
        await sender
        _add(delivery, await engine.deliver(limit=1_000_000))
        log.info("cycle done: %s; %d sent, %d to retry, %d dead-lettered, "
                 "%d held for a digest or quiet hours", poll.summary(),
                 delivery.sent, delivery.failed, delivery.dead, delivery.held,
                 extra=poll.fields())
        return OnceResult(poll, delivery)


async def _poll_beside(engine: Engine, helper: Helper, share: Share | None,
                       queued: Callable[[], None]) -> PollReport:
    """This process's share, while the helper polls its own; one report for both. A helper
    that died without its report has the feeds it had not polled polled here, and what it
    had written is counted from its messages (a feed it polled but had not written is asked
    again; one recorded is never recorded twice)."""
    engine.poller.share = share
    theirs = asyncio.create_task(helper.follow(queued), name="second poll process")
    try:
        report = await engine.poll(force=True)
    except BaseException:
        theirs.cancel()
        await asyncio.gather(theirs, return_exceptions=True)
        raise
    helped = await theirs
    if helped is None:
        await engine.db(engine.store.release_node, helper.node, engine.clock())
        done = await engine.db(engine.store.polled_since, helper.node, helper.started)
        engine.poller.share = Share(helper.share.feeds - done)
        helped = await engine.poll(force=True)
        helped.add(helper.partial)
    report.add(helped)
    return report


def _add(total: DeliveryReport, part: DeliveryReport) -> None:
    total.sent += part.sent
    total.failed += part.failed
    total.dead += part.dead
    total.held += part.held
    total.errors.extend(part.errors)


def digest_times(config: Config) -> list[tuple[str, str]]:
    """Every distinct (cron expression, time zone) of a channel or subscription digest."""
    timings = [*config.channels.values(), *config.subscriptions]
    return sorted({(t.digest, t.timezone) for t in timings if t.digest is not None})


def poll_tick_seconds(config: Config) -> float:
    """Often enough to honour the shortest interval, rarely enough to cost nothing."""
    shortest = min(config.interval(s) for s in config.subscriptions)
    return max(1.0, min(15.0, shortest / 10))


async def run_forever(config: Config, stop: asyncio.Event | None = None,
                      reload: asyncio.Event | None = None) -> None:
    """The daemon: poll and deliver until SIGTERM/SIGINT (or `stop` is set); SIGHUP (or
    `reload`) reads the configuration file again."""
    stop = stop or asyncio.Event()
    reload = reload or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum, event in ((signal.SIGTERM, stop), (signal.SIGINT, stop),
                          (signal.SIGHUP, reload)):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, event.set)
    async with open_engine(config) as engine:
        await Daemon(config, engine).run(stop, reload)
    log.info("stopped")


class Daemon:
    """The long-lived workers, their scheduler, the admin listener and the reload logic."""

    def __init__(self, config: Config, engine: Engine,
                 systemd: SystemdNotifier | None = None) -> None:
        # Here, not at the top: `run --once` and the other commands never schedule anything,
        # nor serve metrics (prometheus_client) or the status page.
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        from notifier.admin import Metrics

        self.config = config
        self.engine = engine
        self.metrics = Metrics()
        self.systemd = systemd or SystemdNotifier()
        self.started = time.time()
        self.poll_wanted = asyncio.Event()
        self.deliver_wanted: dict[str, asyncio.Event] = {}
        self.workers: dict[str, tuple[_Worker, asyncio.Task[None]]] = {}
        self.scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop())
        self.admin: AdminServer | None = None
        self.stuck_after = STUCK_AFTER

    async def run(self, stop: asyncio.Event, reload: asyncio.Event) -> None:
        if self.config.admin.listen:
            host, port = split_listen(self.config.admin.listen)
            from notifier.admin import AdminServer

            self.admin = AdminServer(host, port, self)
            try:
                await self.admin.start()
            except OSError as exc:
                await self.admin.stop()
                raise AdminListenError(f"admin.listen {self.config.admin.listen}: cannot "
                                       f"listen: {exc.strerror or exc}") from exc
        self._schedule()
        self.metrics.channels(list(self.config.channels))
        self._start_worker("poll", _Worker("poll", self.poll_wanted, self._poll_cycle,
                                           self.engine.release_stranded))
        for name in self.config.channels:
            self._start_delivery(name)
        self.scheduler.start()
        self.poll_wanted.set()
        self.wake_delivery()
        # Polls that finish after their cycle returned (slow feeds) wake delivery too.
        self.engine.poller.on_queued = self.wake_delivery
        self.engine.poller.on_polled = self.metrics.observe_poll
        await self._register()
        log.info("notifier %s running: %d subscriptions, %d channels",
                 __version__, len(self.config.subscriptions), len(self.config.channels))
        self.systemd.ready(self._status_line())
        watchdog = (asyncio.create_task(self._watchdog(self.systemd.watchdog_seconds / 2))
                    if self.systemd.watchdog_seconds else None)
        try:
            while not stop.is_set():
                stopped = asyncio.create_task(stop.wait())
                reloaded = asyncio.create_task(reload.wait())
                await asyncio.wait((stopped, reloaded), return_when=asyncio.FIRST_COMPLETED)
                for task in (stopped, reloaded):
                    task.cancel()
                if reload.is_set() and not stop.is_set():
                    reload.clear()
                    await self.reload()
            log.info("stopping: letting work in flight finish for up to %.0f s", STOP_GRACE)
        finally:
            self.systemd.stopping()
            if watchdog is not None:
                watchdog.cancel()
            self.scheduler.shutdown(wait=False)
            workers = list(self.workers.values())
            await _drain([w for w, _ in workers], [t for _, t in workers])
            if self.admin is not None:
                await self.admin.stop()
            with contextlib.suppress(Exception):
                await self.engine.db(self.engine.store.clear_daemon, os.getpid())

    async def _register(self) -> None:
        """Note this process in the state for `notifier reload`; warn of a live other one."""
        store, me = self.engine.store, os.getpid()
        other = await self.engine.db(store.daemon_record)
        # Several nodes on one PostgreSQL share the work by design (see `cluster`).
        shared = store.dialect == "postgresql"
        if other is not None and other.pid != me and other.host == socket.gethostname() \
                and not shared and other.started \
                and process_started(other.pid) == other.started:
            log.warning("another notifier daemon (pid %d, %s) runs on this state: each would "
                        "send what the other sends; stop one of them", other.pid, other.config)
        await self.engine.db(store.register_daemon, DaemonRecord(
            host=socket.gethostname(), pid=me, started=process_started(me),
            config=str(self.config.path.resolve())))

    # --- workers and their ticks ------------------------------------------------------

    def wake_delivery(self) -> None:
        for event in self.deliver_wanted.values():
            event.set()

    def _start_worker(self, key: str, worker: _Worker) -> None:
        self.workers[key] = (worker, asyncio.create_task(worker.run(), name=worker.name))

    def _start_delivery(self, name: str) -> None:
        event = self.deliver_wanted[name] = asyncio.Event()

        async def cycle() -> None:
            report = await self.engine.deliver(channels=[name])
            self.metrics.observe_delivery(name, report)

        self._start_worker(f"delivery:{name}", _Worker(f"delivery to {name}", event, cycle,
                                                       self.engine.release_stranded))

    async def _stop_delivery(self, name: str) -> None:
        """A channel left the configuration: its worker ends after the cycle it is in."""
        self.deliver_wanted.pop(name, None)
        worker, task = self.workers.pop(f"delivery:{name}")
        await _drain([worker], [task])

    async def _poll_cycle(self) -> None:
        report = await self.engine.poll()
        self.metrics.last_poll.set(time.time())
        if report.feeds_polled or report.feeds_failed or report.discovery_failed:
            log.info("poll cycle: %s", report.summary(), extra=report.fields())
            release_freed_memory()  # the bodies and entries of this cycle are gone
        if report.queued:
            self.wake_delivery()

    def _schedule(self) -> None:
        """(Re)build the ticks and the digest times from the current configuration."""
        from apscheduler.triggers.interval import IntervalTrigger

        for job in self.scheduler.get_jobs():
            job.remove()
        self.scheduler.add_job(self.poll_wanted.set,
                               IntervalTrigger(seconds=poll_tick_seconds(self.config)),
                               id="poll-tick", coalesce=True, max_instances=1)
        self.scheduler.add_job(self.wake_delivery, IntervalTrigger(seconds=DELIVERY_TICK),
                               id="deliver-tick", coalesce=True, max_instances=1)
        for index, (expr, zone) in enumerate(digest_times(self.config)):
            self.scheduler.add_job(self.wake_delivery, cron_trigger(expr, zone),
                                   id=f"digest-{index}", coalesce=True, max_instances=1)

    def _status_line(self) -> str:
        return (f"polling {len(self.config.subscriptions)} subscriptions for "
                f"{len(self.config.channels)} channels")

    # --- reload -----------------------------------------------------------------------

    async def reload(self) -> bool:
        """Read the configuration file again and apply it; keep the old one if it is bad."""
        path = self.config.path
        log.info("reload: reading %s", path)
        self.systemd.reloading()
        try:
            new = await self._load(path)
            changes = describe_changes(self.config, new)
            self.engine.reconfigure(new)
        except (ConfigError, ReloadRefused) as exc:
            log.error("reload refused, still running the previous configuration: %s", exc)
            return self._refused()
        except Exception:
            # A bug must not take the running configuration down with it.
            log.exception("reload failed, still running the previous configuration")
            return self._refused()
        old = self.config
        self.config = new
        for name in old.channels:
            if name not in new.channels:
                await self._stop_delivery(name)
        for name in new.channels:
            if name not in old.channels:
                self._start_delivery(name)
        self._schedule()
        self.metrics.channels(list(new.channels))
        self.metrics.reloads.labels(result="applied").inc()
        log.info("reload applied: %s", changes)
        for setting in ("http", "admin"):
            if getattr(old, setting) != getattr(new, setting):
                log.warning("reload: the %s settings changed; they take effect at the next "
                            "restart", setting)
        self.systemd.ready(self._status_line())
        self.poll_wanted.set()
        self.wake_delivery()
        return True

    def _refused(self) -> bool:
        self.metrics.reloads.labels(result="refused").inc()
        self.systemd.ready(self._status_line())
        return False

    async def _load(self, path: Path) -> Config:
        new = await asyncio.to_thread(load_config, path)
        if new.state_url() != self.config.state_url():
            raise ReloadRefused(
                f"{path}: state: the database changed ({Store.describe_url(new.state_url())}); "
                "moving to another database needs a restart")
        return new

    # --- what the admin listener and the watchdog ask ---------------------------------

    async def health(self) -> tuple[bool, dict[str, object]]:
        """Healthy while every loop is alive (not ended, no cycle running for longer than
        `stuck_after`) and the database answers within a bound."""
        loops = {}
        ok = self.scheduler.running
        now = time.monotonic()
        for worker, task in self.workers.values():
            if task.done():
                loops[worker.name], ok = "stopped", False
            elif worker.busy_since is None:
                loops[worker.name] = "idle"
            elif now - worker.busy_since > self.stuck_after:
                loops[worker.name], ok = f"stuck for {now - worker.busy_since:.0f} s", False
            else:
                loops[worker.name] = "busy"
        try:
            await asyncio.wait_for(self.engine.db(self.engine.store.ping), HEALTH_DB_TIMEOUT)
            database = "ok"
        except Exception as exc:
            database = f"not answering: {type(exc).__name__}"
            ok = False
        return ok, {"status": "ok" if ok else "failing", "version": __version__,
                    "uptime_seconds": round(time.time() - self.started, 1),
                    "database": database, "scheduler": "running" if self.scheduler.running
                    else "stopped", "loops": loops}

    async def metrics_text(self) -> bytes:
        snapshot = await self.engine.db(self.engine.store.ops_snapshot)
        disabled = await self.engine.db(self.engine.store.disabled_channels)
        names = {s.name for s in self.config.subscriptions}
        snapshot = dataclasses.replace(snapshot, discoveries_failing=tuple(
            n for n in snapshot.discoveries_failing if n in names))
        self.metrics.observe_state(snapshot, disabled, list(self.config.channels), time.time())
        return self.metrics.render()

    async def status_page(self) -> str:
        from notifier.admin import read_facts, render_page

        facts = await self.engine.db(read_facts, self.engine.store, self.config)
        return render_page(facts, self.config, self.started)

    async def _watchdog(self, every: float) -> None:
        while True:
            ok, facts = await self.health()
            if ok:
                self.systemd.watchdog()
            else:
                log.warning("health check failing, not telling the watchdog: %s", facts)
            await asyncio.sleep(every)


class AdminListenError(NotifierError):
    """The admin listener cannot bind its address (in use, not local, no permission)."""


class ReloadRefused(NotifierError):
    """A new configuration that cannot be applied while running."""


def describe_changes(old: Config, new: Config) -> str:
    """`subscriptions: +2 (a, b), -1 (c), 1 changed; channels: 1 changed (mail)`."""
    parts = []
    for what, before, after in (
            ("subscriptions", {s.name: s for s in old.subscriptions},
             {s.name: s for s in new.subscriptions}),
            ("channels", dict(old.channels), dict(new.channels))):
        added = [n for n in after if n not in before]
        removed = [n for n in before if n not in after]
        changed = [n for n in after if n in before and before[n] != after[n]]
        bits = [f"{sign}{len(names)} ({_names(names)})" if sign else
                f"{len(names)} changed ({_names(names)})"
                for sign, names in (("+", added), ("-", removed), ("", changed)) if names]
        parts.append(f"{what}: {', '.join(bits) or 'unchanged'}")
    return "; ".join(parts)


def _names(names: list[str], most: int = 5) -> str:
    return ", ".join(names[:most]) + (f", and {len(names) - most} more"
                                      if len(names) > most else "")


def process_started(pid: int) -> str:
    """The start time of process `pid` (clock ticks since boot, from /proc), or "" where
    unknown: with the pid it names one process, never a later one that reused the pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else ""


class _Worker:
    """Runs one kind of cycle whenever its event is set; knows whether it is mid-cycle."""

    def __init__(self, name: str, wanted: asyncio.Event,
                 cycle: Callable[[], Awaitable[None]],
                 recovered: Callable[[float], Awaitable[None]] | None = None) -> None:
        self.name = name
        self.wanted = wanted
        self.cycle = cycle
        self.recovered = recovered
        """Called with the time the state first failed, once it is writable again."""
        self.busy_since: float | None = None  # monotonic time the running cycle began
        self.state_failures = 0  # cycles in a row the state refused (disk full, read-only)
        self.failed_since = 0.0  # wall-clock time of the first of those

    @property
    def busy(self) -> bool:
        return self.busy_since is not None

    async def run(self) -> None:
        while True:
            await self.wanted.wait()
            self.wanted.clear()
            self.busy_since = time.monotonic()
            try:
                await self.cycle()
            except Exception as exc:
                reason = unwritable(exc)
                if reason is None:
                    log.exception("%s cycle failed; trying again at the next tick", self.name)
                    continue
                # Disk full, a read-only file, a lost server: one ERROR saying so, not a
                # traceback every tick, and fewer tries while it lasts. Nothing is lost:
                # what was not written is polled or sent again.
                self.state_failures += 1
                if self.state_failures == 1:
                    self.failed_since = time.time()
                    log.error("%s: the state cannot be written (%s); nothing is lost, trying "
                              "again with growing pauses (at most %.0f s) until it can",
                              self.name, reason, STATE_BACKOFF_MAX)
                self.busy_since = None
                await asyncio.sleep(min(STATE_BACKOFF_MAX, 2.0 ** self.state_failures))
            else:
                if self.state_failures:
                    log.warning("%s: the state is writable again after %d failed cycles",
                                self.name, self.state_failures)
                    self.state_failures = 0
                    if self.recovered is not None:
                        try:
                            await self.recovered(self.failed_since)
                        except Exception as exc:  # their lease still ends them
                            log.warning("%s: stranded claims not released: %s", self.name,
                                        unwritable(exc) or exc)
            finally:
                self.busy_since = None


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
