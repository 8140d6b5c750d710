"""Delivery through the real outbox to real servers on loopback, with a clock the test moves.

Rows are queued the way a poll queues them (`Store.record_polls`); the pipeline's delivery
step then claims, holds, gathers and sends them to the webhook receiver or the SMTP server.
Backoff, Retry-After, digests and quiet hours are driven by moving the injected clock, never
by sleeping; only pacing, which is about real time, is measured in real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml

from notifier.channels import build_channel
from notifier.cli import main
from notifier.config import load_config
from notifier.daemon import Engine, digest_times, fetch_settings
from notifier.delivery.channel import ChannelContext
from notifier.delivery.cycle import DeliveryReport
from notifier.fetch import Fetcher
from notifier.models import Entry
from notifier.poll import ParsePool
from notifier.render import Renderer
from notifier.store import PollRecord, QueuedNotice, Store
from tests.support.smtp_server import SmtpServer
from tests.support.webhook_receiver import WebhookReceiver

POST = "http://blog.test/2013/10/20/why-defend-stalin/"
T = TypeVar("T")


class Clock:
    def __init__(self, when: datetime) -> None:
        self.now = when.timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, when: datetime) -> None:
        self.now = when.timestamp()


class RealClock(Clock):
    """Pacing is about real time: this clock is the wall clock."""

    def __init__(self) -> None:
        super().__init__(datetime.now(UTC))

    def __call__(self) -> float:
        return time.time()


def utc(year: int, month: int, day: int, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def write_config(tmp_path: Path, channels: dict[str, Any],
                 subscription: dict[str, Any] | None = None) -> Path:
    path = tmp_path / "notifier.yaml"
    document = {"state": "sqlite:///state.db", "channels": channels,
                "subscriptions": [{"name": "thread", "url": POST, "notify": ["hook"],
                                   **(subscription or {})}]}
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def comment(n: int) -> Entry:
    return Entry(key=f"{POST}#comment-{n}", kind="comment", author=f"Reader {n}",
                 title=f"By: Reader {n}", link=f"{POST}#comment-{n}",
                 content_html=f"<p>Comment number {n}.</p>", content_hash=f"h{n}",
                 published=datetime(2013, 10, 21, 9, n % 60, tzinfo=UTC), post_key=POST,
                 post_title="Why Defend Stalin?", post_link=POST)


def queue(path: Path, numbers: range, at: datetime | float, channel: str = "hook") -> None:
    """What a poll writes: the new comments and one outbox row each, in one transaction."""
    when = at.timestamp() if isinstance(at, datetime) else at
    store = Store(load_config(path, {}).state_url())
    try:
        store.migrate()
        feed = store.save_discovery("thread", POST, "comments", POST + "feed/atom/", None,
                                    600.0, when)
        entries = [comment(n) for n in numbers]
        store.record_polls([PollRecord(
            feed_id=feed, polled_at=when, next_due=when + 600, status=200,
            new_entries=entries,
            notices=[QueuedNotice("thread", channel, e.key) for e in entries])])
    finally:
        store.close()


@contextlib.asynccontextmanager
async def pipeline(config_path: Path, clock: Clock) -> AsyncIterator[Engine]:
    """The daemon's delivery parts with the test's clock; a new one is a restart."""
    config = load_config(config_path, {})
    store = Store(config.state_url())
    pool = ParsePool(workers=1)
    try:
        async with Fetcher(fetch_settings(config)) as fetcher, httpx.AsyncClient() as http:
            context = ChannelContext(renderer=Renderer(config.base_dir), http=http)
            channels = {name: build_channel(name, cfg, context)
                        for name, cfg in config.channels.items()}
            pipe = Engine(config, store, fetcher, channels, parser=pool, clock=clock)
            try:
                await pipe.start()
                yield pipe
            finally:
                pipe.close()
    finally:
        pool.shutdown()
        store.close()


def stats(config_path: Path, channel: str = "hook") -> tuple[int, int, int, int]:
    store = Store(load_config(config_path, {}).state_url())
    try:
        s = store.channel_stats()[channel]
        return s.queued, s.held, s.sent, s.dead
    finally:
        store.close()


def hook(receiver: WebhookReceiver, fmt: str = "json", **extra: Any) -> dict[str, Any]:
    return {"hook": {"type": "webhook", "url": receiver.url, "format": fmt,
                     "retry": {"first": "10s", "factor": 6, "max": "1h"}, **extra}}


def deliver_at(path: Path, clock: Clock, *steps: datetime | float,
               observe: Callable[[], T] | None = None) -> list[T]:
    """One process's life: at each step (a time, or seconds later) deliver what is due.

    Returns what `observe` says after each step. Each call is a new process: a restart.
    """
    seen: list[T] = []

    async def run() -> None:
        async with pipeline(path, clock) as pipe:
            for step in steps:
                if isinstance(step, datetime):
                    clock.set(step)
                else:
                    clock.now += step
                await pipe.deliver()
                if observe is not None:
                    seen.append(observe())

    asyncio.run(run())
    return seen


# --- retries ---------------------------------------------------------------------------------

NOON = utc(2026, 11, 27, 12, 0)


def test_500_500_200_is_delivered_once_after_two_retries(
        tmp_path: Path, webhook_receiver: WebhookReceiver) -> None:
    path = write_config(tmp_path, hook(webhook_receiver))
    queue(path, range(1, 2), NOON)
    webhook_receiver.script([(500, {}, b"down"), (500, {}, b"down")])
    seen = deliver_at(path, Clock(NOON),
                      0,    # 500: retry in about 10 s
                      5,    # not due yet: nothing is sent
                      10,   # 500 again: retry in about 60 s
                      30,   # not due yet
                      40,   # 204
                      0,    # nothing left
                      observe=lambda: (len(webhook_receiver.received), stats(path)))
    assert seen == [(1, (1, 0, 0, 0)), (1, (1, 0, 0, 0)), (2, (1, 0, 0, 0)),
                    (2, (1, 0, 0, 0)), (3, (0, 0, 1, 0)), (3, (0, 0, 1, 0))]
    received = webhook_receiver.received
    assert [r.status for r in received] == [500, 500, 204]
    assert len({r.headers["webhook-id"] for r in received}) == 1


def test_429_retry_after_is_respected_for_the_whole_channel(
        tmp_path: Path, webhook_receiver: WebhookReceiver) -> None:
    path = write_config(tmp_path, hook(webhook_receiver))
    queue(path, range(1, 4), NOON)
    webhook_receiver.script([(429, {"Retry-After": "120"}, b"slow down")])
    # The refused message waits 120 s, and so do the two behind it: the server asked the
    # channel, not one message, to slow down.
    assert deliver_at(path, Clock(NOON), 0, 100, 20,
                      observe=lambda: len(webhook_receiver.received)) == [1, 1, 4]
    ids = [r.headers["webhook-id"] for r in webhook_receiver.received]
    assert ids[0] in ids[1:] and len(set(ids)) == 3
    assert stats(path) == (0, 0, 3, 0)


def test_a_429_pause_holds_for_the_node_that_delivers_next(
        tmp_path: Path, webhook_receiver: WebhookReceiver) -> None:
    # Two nodes on one state (a stable `cluster.node` each). Node a is told to wait 120 s
    # and stops; node b, delivering next, must wait out the same pause (stored with the
    # channel), not send the two other queued notifications at once.
    path = write_config(tmp_path, hook(webhook_receiver))
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    nodes = {}
    for name in ("a", "b"):
        nodes[name] = tmp_path / f"{name}.yaml"
        nodes[name].write_text(yaml.safe_dump({**document, "cluster": {"node": name}}),
                               encoding="utf-8")
    queue(path, range(1, 4), NOON)
    webhook_receiver.script([(429, {"Retry-After": "120"}, b"slow down")])
    clock = Clock(NOON)
    assert deliver_at(nodes["a"], clock, 0,
                      observe=lambda: len(webhook_receiver.received)) == [1]
    assert deliver_at(nodes["b"], clock, 30, 60, 31,
                      observe=lambda: len(webhook_receiver.received)) == [1, 1, 4]
    assert stats(path) == (0, 0, 3, 0)


def test_a_delivery_round_sends_all_its_mail_over_one_smtp_connection(
        tmp_path: Path, smtp_server: SmtpServer) -> None:
    # More notifications than one claim takes (50): the claims follow one another on the
    # connection the first one opened, and each message is still marked sent on its own.
    path = write_config(tmp_path, {"hook": {
        "type": "email", "from": "notifier@example.org", "to": ["reader@example.org"],
        "smtp": {"host": "127.0.0.1", "port": smtp_server.port, "security": "none"}}})
    queue(path, range(1, 121), NOON)
    assert deliver_at(path, Clock(NOON), 0, observe=lambda: stats(path)) == [(0, 0, 120, 0)]
    mails = smtp_server.wait_for(120)
    numbers = [re.search(r"Reader (\d+)", m["Subject"]) for m in mails]
    assert sorted(int(n.group(1)) for n in numbers if n) == list(range(1, 121))
    assert len({m.peer for m in mails}) == 1


# --- digests ---------------------------------------------------------------------------------


def test_ten_notifications_become_one_digest_at_the_cron_time_across_a_restart(
        tmp_path: Path, webhook_receiver: WebhookReceiver) -> None:
    # 08:00 in Berlin is 07:00 UTC in November.
    path = write_config(tmp_path, hook(webhook_receiver, digest="0 8 * * *",
                                       timezone="Europe/Berlin"))
    clock = Clock(utc(2026, 11, 27, 6, 30))
    queue(path, range(1, 11), clock.now)
    deliver_at(path, clock, 0, utc(2026, 11, 27, 6, 59, 59))
    assert webhook_receiver.received == []
    assert stats(path) == (0, 10, 0, 0)

    deliver_at(path, clock, utc(2026, 11, 27, 7, 0), 0)  # a new process: the hold survived
    # A comment that comes after the digest went waits for tomorrow's.
    queue(path, range(11, 12), clock.now + 30)
    deliver_at(path, clock, 60)

    assert len(webhook_receiver.received) == 1
    body = webhook_receiver.received[0].json
    assert isinstance(body, dict) and body["type"] == "digest" and body["count"] == 10
    links = [n["entry"]["link"] for n in body["notifications"]]
    assert links == [f"{POST}#comment-{n}" for n in range(1, 11)]
    assert webhook_receiver.received[0].headers["webhook-id"] == body["id"]
    assert stats(path) == (0, 1, 10, 0)


def test_email_digest_is_one_readable_message(tmp_path: Path,
                                              smtp_server: SmtpServer) -> None:
    path = write_config(tmp_path, {"hook": {
        "type": "email", "from": "Thread notifier <notifier@example.org>",
        "to": ["reader@example.org"], "digest": "0 8 * * *",
        "smtp": {"host": "127.0.0.1", "port": smtp_server.port, "security": "none"}}})
    clock = Clock(utc(2026, 11, 27, 7, 30))
    queue(path, range(1, 11), clock.now)
    deliver_at(path, clock, 0, utc(2026, 11, 27, 8, 0, 1))
    assert len(smtp_server.messages) == 1
    mail = smtp_server.messages[0]
    assert mail["Subject"] == '10 new comments on "Why Defend Stalin?"'
    assert mail["Message-ID"].startswith("<digest-")
    text_part, html_part = (mail.get_body(preferencelist=(kind,)) for kind in ("plain", "html"))
    assert text_part is not None and html_part is not None
    text, html = text_part.get_content(), html_part.get_content()
    for n in range(1, 11):
        assert f"Reader {n}" in text and f"#comment-{n}" in html


def test_a_digest_cut_short_by_a_crash_is_sent_again_whole_with_the_same_id(
        tmp_path: Path, webhook_receiver: WebhookReceiver,
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(tmp_path, hook(webhook_receiver, digest="0 8 * * *"))
    clock = Clock(utc(2026, 11, 27, 7, 30))
    queue(path, range(1, 6), clock.now)
    deliver_at(path, clock, 0)

    class Killed(Exception):
        """The process died between the server's acceptance and the commit."""

    def die(*_args: object) -> None:
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(Store, "mark_sent", die)
        with pytest.raises(Killed):
            deliver_at(path, clock, utc(2026, 11, 27, 8, 0))
    # Two more comments arrive meanwhile: they must not join the digest already sent.
    queue(path, range(6, 8), clock.now)
    deliver_at(path, clock, 0)

    first, second = webhook_receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body
    assert stats(path) == (0, 2, 5, 0)  # the late comments wait for tomorrow's digest


def test_quiet_hours_hold_messages_and_send_one_digest_after(
        tmp_path: Path, webhook_receiver: WebhookReceiver) -> None:
    path = write_config(tmp_path, hook(webhook_receiver, "slack",
                                       quiet_hours={"from": "22:00", "to": "07:00"}))
    clock = Clock(utc(2026, 11, 27, 23, 15))
    queue(path, range(1, 4), clock.now)
    assert deliver_at(path, clock, 0, utc(2026, 11, 28, 6, 59), utc(2026, 11, 28, 7, 0),
                      observe=lambda: len(webhook_receiver.received)) == [0, 0, 1]
    queue(path, range(4, 5), clock.now + 3600)
    deliver_at(path, clock, 3600)
    texts = [str(json.loads(r.body)["text"]) for r in webhook_receiver.received]
    assert len(texts) == 2
    assert texts[0].startswith('3 new comments on "Why Defend Stalin?"')
    assert all(f"Reader {n}" in texts[0] for n in (1, 2, 3))
    assert "Reader 4" in texts[1] and "new comments" not in texts[1]


def test_a_subscription_digest_overrides_its_channel(
        tmp_path: Path, webhook_receiver: WebhookReceiver) -> None:
    path = write_config(tmp_path, hook(webhook_receiver), {"digest": "30 9 * * 1-5"})
    clock = Clock(utc(2026, 11, 28, 12, 0))  # a Saturday: the next weekday 09:30 is Monday
    queue(path, range(1, 3), clock.now)
    assert deliver_at(path, clock, 0, utc(2026, 11, 30, 9, 29), utc(2026, 11, 30, 9, 30),
                      observe=lambda: len(webhook_receiver.received)) == [0, 0, 1]


# --- bursts and pacing -----------------------------------------------------------------------


def test_a_burst_beyond_the_limit_becomes_one_summary(
        tmp_path: Path, webhook_receiver: WebhookReceiver) -> None:
    path = write_config(tmp_path, hook(webhook_receiver, "slack", burst_limit=5))
    queue(path, range(1, 61), NOON)
    deliver_at(path, Clock(NOON), 0)
    queue(path, range(61, 64), NOON)
    deliver_at(path, Clock(NOON), 0)
    texts = [str(json.loads(r.body)["text"]) for r in webhook_receiver.received]
    assert len(texts) == 4  # one summary of 60, then three ordinary messages
    assert texts[0].startswith("60 new comments") and "… and 35 more" in texts[0]
    assert stats(path) == (0, 0, 63, 0)


def test_pacing_spaces_one_channel_without_holding_back_another(
        tmp_path: Path, webhook_receiver: WebhookReceiver) -> None:
    other = WebhookReceiver().start()
    try:
        path = write_config(tmp_path, {**hook(webhook_receiver, pace="300ms"),
                                       "fast": {"type": "webhook", "url": other.url}})
        queue(path, range(1, 6), time.time())
        queue(path, range(1, 6), time.time(), channel="fast")
        deliver_at(path, RealClock(), 0)
        paced = [r.at for r in webhook_receiver.received]
        fast = [r.at for r in other.received]
    finally:
        other.stop()
    assert len(paced) == 5 and len(fast) == 5
    gaps = [b - a for a, b in itertools.pairwise(paced)]
    assert min(gaps) >= 0.28, gaps
    assert max(fast) < paced[-1]  # the other channel did not wait for this one's pacing


def test_discord_is_paced_by_its_rate_limit_headers(
        tmp_path: Path, webhook_receiver: WebhookReceiver) -> None:
    path = write_config(tmp_path, hook(webhook_receiver, "discord"))
    queue(path, range(1, 4), time.time())
    empty_bucket = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "0.6",
                    "Content-Type": "application/json"}
    webhook_receiver.script([(200, empty_bucket, b"{}")])
    deliver_at(path, RealClock(), 0)
    first, second, third = (r.at for r in webhook_receiver.received)
    assert second - first >= 0.55  # waited for the bucket to refill
    assert third - second < 0.5  # and no longer than Discord asked


def test_slack_webhooks_default_to_one_message_a_second(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, {
        "hook": {"type": "webhook", "url": "https://hooks.example.org/x", "format": "slack"},
        "json": {"type": "webhook", "url": "https://hooks.example.org/y"},
        "own": {"type": "webhook", "url": "https://hooks.example.org/z", "format": "slack",
                "pace": "5s"}}), {})
    context = ChannelContext(renderer=Renderer(config.base_dir), http=httpx.AsyncClient())
    paces = {name: build_channel(name, cfg, context).pace
             for name, cfg in config.channels.items()}
    assert paces == {"hook": 1.0, "json": 0.0, "own": 5.0}


# --- status ----------------------------------------------------------------------------------


def test_status_tells_held_digests_and_disabled_channels(
        tmp_path: Path, webhook_receiver: WebhookReceiver,
        capsys: pytest.CaptureFixture[str]) -> None:
    # In the future: `notifier retry` queues again at the real time, which must have come.
    path = write_config(tmp_path, hook(webhook_receiver, digest="0 8 * * *"))
    clock = Clock(utc(2099, 11, 27, 7, 30))
    queue(path, range(1, 4), clock.now)

    def status() -> str:
        assert main(["status", "-c", str(path)]) == 0
        return capsys.readouterr().out

    deliver_at(path, clock, 0)
    out = status()
    assert "held" in out.splitlines()[2]
    assert "3 held for a digest or quiet hours; next release 2099-11-27 08:00:00 UTC" in out

    webhook_receiver.script([(410, {}, b"")])
    deliver_at(path, clock, utc(2099, 11, 27, 8, 0))
    out = status()
    row = next(line for line in out.splitlines() if line.startswith("  hook "))
    assert row.split()[1:6] == ["0", "0", "0", "0", "3"]  # the refused digest: dead letters
    assert "DISABLED" in row
    assert "nothing is sent (3 kept) until `notifier retry --now --channel hook`" in out

    assert main(["retry", "-c", str(path), "--channel", "hook"]) == 0
    deliver_at(path, clock, 0)
    out = status()
    assert "3 of the sent went out in 1 digest message" in out and "DISABLED" not in out


def test_retry_re_enables_a_channel_while_the_daemon_runs(
        tmp_path: Path, webhook_receiver: WebhookReceiver) -> None:
    path = write_config(tmp_path, hook(webhook_receiver))
    later = utc(2099, 1, 1, 12, 0)  # `retry` queues again at the real time: it must have come
    queue(path, range(1, 3), later)
    webhook_receiver.script([(410, {}, b"")])

    def retry_from_another_shell() -> int:
        assert main(["retry", "-c", str(path), "--channel", "hook"]) == 0
        return len(webhook_receiver.received)

    # 410 disables the channel; the operator's `retry` is seen by the next delivery cycle
    # of the same process, which sends the refused message and the one behind it.
    assert deliver_at(path, Clock(later), 0, 0, observe=retry_from_another_shell) == [1, 3]
    assert stats(path) == (0, 0, 2, 0)


def test_the_daemon_wakes_delivery_at_every_distinct_digest_time(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"hook": {"type": "console", "digest": "0 8 * * *",
                                            "timezone": "Europe/Berlin"},
                                   "other": {"type": "console", "digest": "0 8 * * *",
                                             "timezone": "Europe/Berlin"}},
                        {"digest": "0 18 * * 1-5"})
    assert digest_times(load_config(path, {})) == [("0 18 * * 1-5", "UTC"),
                                                    ("0 8 * * *", "Europe/Berlin")]


def test_a_failed_delivery_names_its_channel_and_what_comes_next(
        tmp_path: Path, webhook_receiver: WebhookReceiver) -> None:
    """What `run --once` prints for a message a channel did not take, and counts as a
    failure: the channel, the server's words, and whether it is retried or given up."""
    path = write_config(tmp_path, hook(webhook_receiver))
    queue(path, range(1, 3), NOON)
    webhook_receiver.script([(503, {}, b"down"), (400, {}, b"no such hook")])

    async def run() -> DeliveryReport:
        async with pipeline(path, Clock(NOON)) as pipe:
            return await pipe.deliver()

    report = asyncio.run(run())
    assert [(e.channel, e.dead, e.notifications) for e in report.errors] == [
        ("hook", False, 1), ("hook", True, 1)]
    retried, given_up = map(str, report.errors)
    assert retried.startswith("channel hook: ") and "503" in retried and "retry" in retried
    assert "400" in given_up and given_up.endswith("(permanent failure)")
    assert (report.failed, report.dead) == (1, 1)
