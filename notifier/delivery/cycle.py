"""The delivery cycle: drain the outbox, one channel at a time, never blocking polling.

    outbox -> claim due rows -> hold / gather digests -> render -> send (paced)
           -> mark sent / schedule a retry / dead-letter / disable the channel

Polling only queues and this only drains: each channel drains on its own task with its own
pacing, so a slow, paced or failing channel delays neither detection nor another channel.
A row is marked sent only after its server accepted it; what a stop or a crash cuts short is
still queued (its claim expires or is released at the next start) and goes out again under
the same notification id, so a receiver can drop the rare repeat.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from notifier.cluster import Node
from notifier.config import Config
from notifier.delivery.channel import Channel, DeliveryError, PermanentFailure, TemporaryFailure
from notifier.delivery.digest import DIGEST_MAX, Schedule, plan, schedule_for
from notifier.delivery.pacing import MAX_INLINE_WAIT, Pacer
from notifier.delivery.retry import Verdict, after_failure
from notifier.models import Entry, Notice
from notifier.store import OutboxItem, Store
from notifier.textsafety import shown_entry, strip_bidi_controls

log = logging.getLogger("notifier")
T = TypeVar("T")

DELIVERY_BATCH = 50


class StoreRunner(Protocol):
    """Runs a store method on the one thread that talks to the database."""

    def __call__(self, fn: Callable[..., T], *args: Any) -> Awaitable[T]: ...


@dataclass(frozen=True, slots=True)
class FailedDelivery:
    """A message a channel did not take, and what becomes of it: a value, as a feed's
    failure is (`failures.FailedFeed`), for the code that counts, and a line for the
    person reading `run --once`."""

    channel: str
    reason: str  # the channel's words (`DeliveryError`: no secrets)
    verdict: Verdict  # retried when, or dead-lettered
    notifications: int  # one message may carry several (a digest)

    @property
    def dead(self) -> bool:
        """Whether nothing more will be tried: a permanent failure, or out of attempts."""
        return self.verdict.retry_at is None

    def __str__(self) -> str:
        """The line `run --once` prints: "channel <name>: <reason> (<what next>)"."""
        return f"channel {self.channel}: {self.reason} ({self.verdict.reason})"


@dataclass
class DeliveryReport:
    """What one delivery pass did: the counts the summary line shows, and the failures
    that make `run --once` exit 1."""

    sent: int = 0
    failed: int = 0
    dead: int = 0
    held: int = 0  # newly held for a digest or quiet hours
    errors: list[FailedDelivery] = field(default_factory=list)


class Delivery:
    """Sends what the outbox holds, through the configured channels."""

    def __init__(self, config: Config, store: Store, channels: Mapping[str, Channel],
                 db: StoreRunner, *, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None, node: Node | None = None) -> None:
        self.config = config
        self.node = node or Node.of(config)
        self.store = store
        self.channels = channels
        self.clock = clock
        self.rng = rng or random.Random()
        self._db = db
        self._subs = {s.name: s for s in config.subscriptions}
        self._disabled: dict[str, str] = {}
        self._pacers: dict[str, Pacer] = {}

    def keep_pacing(self, previous: Delivery, names: Iterable[str]) -> None:
        """After a reload: the named channels (settings unchanged) keep their pacing, so a
        reload never lets a paced channel send early."""
        for name in names:
            if name in previous._pacers:
                self._pacers[name] = previous._pacers[name]

    async def deliver(self, *, limit: int = 1000,
                      channels: Iterable[str] | None = None) -> DeliveryReport:
        """Send what is due, at most `limit` rows per channel.

        Each channel drains on its own task with its own pacing, so a slow, paced or
        failing channel never holds back another.
        """
        report = DeliveryReport()
        # Read each time: `notifier retry --channel NAME` re-enables a channel while we run.
        self._disabled = await self._db(self.store.disabled_channels)
        names = [n for n in (self.channels if channels is None else channels)
                 if n in self.channels]
        await asyncio.gather(*(self._drain(name, limit, report) for name in names))
        return report

    async def _drain(self, name: str, limit: int, report: DeliveryReport) -> None:
        channel = self.channels[name]
        pacer = self._pacers.setdefault(name, Pacer(channel.pace))
        # A burst is only seen whole if one claim can hold it.
        size = DIGEST_MAX if channel.config.burst_limit else DELIVERY_BATCH
        lease = self.node.lease
        # One node delivers to a channel at a time (a lease its heartbeat renews): it alone
        # paces the channel and gathers its digests. A pause a server asked any node for
        # holds for all.
        mine, paused = await self._db(self.store.lease_channel, name, self.node.name,
                                      self.clock(), lease)
        if not mine:
            return
        if paused is not None:
            pacer.not_before = max(pacer.not_before, paused)
        async with channel.delivery_round():  # one SMTP connection for all the batches
            await self._drain_claims(channel, name, pacer, size, limit, report)

    async def _drain_claims(self, channel: Channel, name: str, pacer: Pacer, size: int,
                            remaining: int, report: DeliveryReport) -> None:
        lease = self.node.lease
        while remaining > 0 and name not in self._disabled:
            now = self.clock()
            if pacer.wait(now) > MAX_INLINE_WAIT:
                break
            items = await self._db(self.store.claim_due, now, min(size, remaining),
                                   lease, [name], self.node.name)
            if not items:
                break
            remaining -= len(items)
            claim = items[0].claim_id or ""
            self.node.claims.add(claim)
            try:
                messages = await self._plan(channel, items, now, report)
                if not await self._deliver_channel(channel, messages, pacer, report, now):
                    break
            finally:
                self.node.claims.discard(claim)
            mine, _ = await self._db(self.store.lease_channel, name, self.node.name,
                                     self.clock(), lease)
            if not mine:
                break

    async def _plan(self, channel: Channel, items: list[OutboxItem], now: float,
                    report: DeliveryReport) -> list[_Message]:
        """Hold what must wait, gather digests, and make one message of each of the rest."""
        started = {i.digest_id for i in items if i.digest_id}
        claim = items[0].claim_id
        if started:
            items += await self._db(self.store.claim_digest_members, started, now,
                                    self.node.lease, self.node.name, claim)
        decided = plan(items, now=now, row_id=lambda i: i.id, created=lambda i: i.created,
                       was_held=lambda i: i.held_until is not None,
                       digest_id=lambda i: i.digest_id,
                       schedule=lambda i: self._schedule(channel, i.subscription),
                       burst_limit=channel.config.burst_limit)
        if decided.hold:
            await self._db(self.store.hold, decided.hold, claim)
            report.held += len(decided.hold)
            log.info("holding %d notification(s) for %s until %s", len(decided.hold),
                     channel.name, _utc(min(decided.hold.values())))
        for digest_id, members in decided.digests:
            if members[0].digest_id is None:
                await self._db(self.store.assign_digest, digest_id, [m.id for m in members],
                               claim)
        sending = decided.singles + [m for _, members in decided.digests for m in members]
        parents = await self._db(self.store.entries_by_key,
                                 {i.entry.parent_key for i in sending if i.entry.parent_key})
        messages = [_Message(self._notice(item, parents), (item,)) for item in decided.singles]
        for digest_id, members in decided.digests:
            members.sort(key=lambda m: (m.entry.published or _EPOCH, m.id))
            notices = tuple(self._notice(member, parents) for member in members)
            messages.append(_Message(_digest_notice(digest_id, notices), tuple(members)))
        return messages

    def _schedule(self, channel: Channel, subscription: str) -> Schedule:
        sub = self._subs.get(subscription)
        return schedule_for(channel.config.schedule, sub.schedule if sub else None)

    async def _deliver_channel(self, channel: Channel, messages: Sequence[_Message],
                               pacer: Pacer, report: DeliveryReport, claimed_at: float) -> bool:
        """Send, paced; False when the channel must stop for now (paused, disabled).

        Messages go one at a time unless the kind sends batches itself (SMTP reuses one
        connection) and no pacing applies. What is not attempted is given back.
        """
        batches = type(channel).send_batch is not Channel.send_batch and pacer.interval == 0
        step = max(len(messages), 1) if batches else 1
        by_id = {m.notice.notification_id: m for m in messages}
        attempted: set[str] = set()
        try:
            for start in range(0, len(messages), step):
                wait = pacer.wait(self.clock())
                if wait > MAX_INLINE_WAIT or channel.name in self._disabled:
                    return False
                if not self.node.holds(claimed_at, self.clock() + wait):
                    return False  # paused past the lease: another node sends these now
                if wait > 0:
                    await asyncio.sleep(wait)
                group = messages[start:start + step]
                async for result in channel.send_batch([m.notice for m in group]):
                    message = by_id[result.notification_id]
                    attempted.add(result.notification_id)
                    pacer.sent(self.clock(), channel.take_pause())
                    await self._settle(channel, message, result.error, report, pacer)
            return True
        finally:
            leftover = [i for m in messages if m.notice.notification_id not in attempted
                        for i in m.items]
            if leftover:
                await self._db(self.store.release, [i.id for i in leftover],
                               leftover[0].claim_id)

    async def _settle(self, channel: Channel, message: _Message, error: DeliveryError | None,
                      report: DeliveryReport, pacer: Pacer) -> None:
        now = self.clock()
        ids = [i.id for i in message.items]
        first = message.items[0]
        claim = first.claim_id
        if error is None:
            await self._db(self.store.mark_sent, ids, now, claim)
            report.sent += len(ids)
            if message.notice.digest:
                log.info("sent a digest of %d notifications to %s", len(ids), channel.name)
            else:
                log.info("sent %s to %s (%s)", first.entry.link or first.entry.key,
                         channel.name, first.subscription)
            return
        permanent = isinstance(error, PermanentFailure)
        retry_after = error.retry_after if isinstance(error, TemporaryFailure) else None
        if retry_after is not None:
            pacer.sent(now, retry_after)  # the server asked the whole channel to slow down
            await self._db(self.store.pause_channel, channel.name, pacer.not_before)
        verdict = after_failure(channel.retry_policy,
                                attempts=max(i.attempts for i in message.items) + 1,
                                created=min(i.age_from for i in message.items), now=now,
                                retry_after=retry_after, permanent=permanent, rng=self.rng)
        text = f"{error} ({verdict.reason})"
        # A retry's "in 593 s" goes stale at once; `status` shows the stored next_attempt.
        stored = str(error) if verdict.retry_at is not None else text
        await self._db(self.store.mark_failed, ids, stored, verdict.retry_at, now, claim)
        report.errors.append(FailedDelivery(channel.name, str(error), verdict, len(ids)))
        if verdict.retry_at is None:
            report.dead += len(ids)
        else:
            report.failed += len(ids)
        log.warning("delivery to %s failed: %s", channel.name, text)
        if isinstance(error, PermanentFailure) and error.disable:
            self._disabled[channel.name] = str(error)
            await self._db(self.store.disable_channel, channel.name, str(error), now)
            log.error("channel %s disabled: %s; once fixed, `notifier retry --now --channel %s` "
                      "sends what it kept", channel.name, error, channel.name)

    def _notice(self, item: OutboxItem, parents: dict[str, Entry]) -> Notice:
        entry = shown_entry(item.entry)
        parent = parents.get(entry.parent_key) if entry.parent_key else None
        return Notice(
            notification_id=item.notification_id, subscription=item.subscription,
            channel=item.channel, entry=entry, feed_title=strip_bidi_controls(item.feed_title),
            feed_url=item.feed_url,
            is_reply=bool(entry.parent_key) and entry.parent_key != entry.post_key,
            parent=shown_entry(parent) if parent is not None else None, missing=item.missing,
            revision=item.revision)


@dataclass(frozen=True, slots=True)
class _Message:
    """One message to send and the outbox rows it settles (several for a digest)."""

    notice: Notice
    items: tuple[OutboxItem, ...]


def _digest_notice(digest_id: str, notices: tuple[Notice, ...]) -> Notice:
    """One notice standing for many; `entry` and feed are the first member's."""
    first = notices[0]
    subscriptions = {n.subscription for n in notices}
    return Notice(notification_id=digest_id,
                  subscription=first.subscription if len(subscriptions) == 1 else "",
                  channel=first.channel, entry=first.entry, feed_title=first.feed_title,
                  feed_url=first.feed_url, is_reply=False, parent=None, digest=notices)


_EPOCH = datetime.fromtimestamp(0, UTC)


def _utc(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
