"""Three daemons on one PostgreSQL share the polling, and losing two of them loses nothing.

Real `notifier run` processes, a real PostgreSQL (NOTIFIER_TEST_POSTGRES_URL, started by
`.ci/run`), 300 comment feeds on a loopback server that times every request, and a webhook
receiver. While comments keep arriving, one node is SIGKILLed and another SIGSTOPped until
the others have taken its feeds over (their fencing tokens moved on), then resumed. The
server's log shows each feed asked for at most once per half interval; the receiver shows
every comment delivered, repeated at most once per lost node; a trigger on `feeds` logs every
poll written with the writing connection's node name and the lease it was written under,
which shows that nothing the paused node had fetched was written after it woke over
another node's claim (a batch it was writing when paused, its rows locked, it finishes).
"""

from __future__ import annotations

import json
import random
import re
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import notifier
from notifier.store.db import Database
from tests.support import databases
from tests.support.daemon import run_cli, signal_group, start, stop_groups, wait_until
from tests.support.feed_farm import FeedFarm
from tests.support.webhook_receiver import WebhookReceiver

FEEDS = 300
INTERVAL = 4.0
LEASE = 4.0
"""A killed node's feeds pass on when its leases run out, at least two thirds of a lease
(leases are renewed every third) after its last request: more than half an interval here,
with a margin for a loaded machine's late heartbeats."""
NODES = ("n1", "n2", "n3")

pytestmark = pytest.mark.skipif(not databases.PG_URL,
                                reason="NOTIFIER_TEST_POSTGRES_URL is not set")

WRITE_LOG = """
CREATE TABLE poll_writes (feed_id integer, writer text, lease_owner text, lease_token integer,
                          last_polled double precision, written double precision);
CREATE FUNCTION log_poll_write() RETURNS trigger AS $$
BEGIN
  INSERT INTO poll_writes VALUES (NEW.id, current_setting('application_name'),
      OLD.lease_owner, OLD.lease_token, NEW.last_polled,
      extract(epoch from clock_timestamp()));
  RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER poll_writes AFTER UPDATE ON feeds FOR EACH ROW
  WHEN (NEW.last_polled IS DISTINCT FROM OLD.last_polled) EXECUTE FUNCTION log_poll_write();
CREATE TABLE claims (feed_id integer, owner text, claimed double precision);
CREATE FUNCTION log_claim() RETURNS trigger AS $$
BEGIN
  INSERT INTO claims VALUES (NEW.id, NEW.lease_owner, extract(epoch from clock_timestamp()));
  RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER claims AFTER UPDATE ON feeds FOR EACH ROW
  WHEN (NEW.lease_token IS DISTINCT FROM OLD.lease_token) EXECUTE FUNCTION log_claim();
"""


QUEUE_LOG = """
CREATE TABLE queued_by (entry_key text, writer text);
CREATE FUNCTION log_queued() RETURNS trigger AS $$
BEGIN
  INSERT INTO queued_by VALUES (NEW.entry_key, current_setting('application_name'));
  RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER queued_by AFTER INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION log_queued();
"""


@pytest.fixture
def database() -> Iterator[tuple[str, Database]]:
    """A schema of its own on the test PostgreSQL: its URL and an engine on it."""
    with databases.postgres_schema() as url:
        engine = Database(url)
        try:
            yield url, engine
        finally:
            engine.dispose()


def write_config(folder: Path, name: str, state: str, farm: FeedFarm,
                 hook: WebhookReceiver) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "state": state,
        "defaults": {"interval": f"{INTERVAL:g}s", "jitter": 0},
        "http": {"concurrency": 10, "per_host": 10},
        "cluster": {"lease": f"{LEASE:g}s", "node": name},
        "channels": {"hook": {"type": "webhook", "url": hook.url, "format": "json",
                              "retry": {"first": "1s", "factor": 1, "max": "1s"}}},
        "subscriptions": [{"name": f"thread {i}", "url": farm.origin + farm.path(i),
                           "watch": "comments", "notify": ["hook"]} for i in range(FEEDS)],
    }), encoding="utf-8")
    return path


def _held(engine: Database, node: str) -> dict[int, int]:
    """Feed id -> fencing token of the feeds `node` holds an unexpired lease on."""
    with engine.connect() as conn:
        return {row.id: row.lease_token for row in conn.execute(
            "SELECT id, lease_token FROM feeds WHERE lease_owner = :n "
            "AND lease_until > extract(epoch from now())", {"n": node})}


def test_three_nodes_share_feeds_and_survive_a_kill_and_a_pause(
        tmp_path: Path, database: tuple[str, Database],
        webhook_receiver: WebhookReceiver) -> None:
    url, engine = database
    rng = random.Random()
    with FeedFarm(FEEDS, delay=0.05) as farm:
        configs = {n: write_config(tmp_path, n, url, farm, webhook_receiver) for n in NODES}
        logs = {n: tmp_path / f"{n}.log" for n in NODES}
        baseline = run_cli("run", "--once", "-c", str(configs["n1"]), timeout=300)
        assert baseline.returncode == 0, baseline.stderr
        with engine.begin() as conn:
            conn.execute(WRITE_LOG)
        farm.clear_hits()

        added: list[tuple[int, int]] = []
        stop_adding = threading.Event()

        def add() -> None:
            while not stop_adding.wait(0.3):
                for thread in rng.sample(range(FEEDS), 3):
                    added.append((thread, farm.add_comment(thread)))

        adder = threading.Thread(target=add, daemon=True)
        procs = {n: start(configs[n], logs[n]) for n in NODES}
        adder.start()
        try:
            def polled_by() -> dict[str, int]:
                with engine.connect() as conn:
                    return dict(conn.execute(
                        "SELECT polled_by, count(*) FROM feeds GROUP BY polled_by").all())

            # Three interpreters start at once: on a loaded machine that alone takes seconds.
            wait_until(lambda: all(polled_by().get(n, 0) > 0 for n in NODES), 60,
                       "every node to poll feeds", explain=lambda: (
                           polled_by(), {n: logs[n].read_text()[-1500:] for n in NODES}))
            shares = polled_by()

            # SIGKILL n1 while it holds feeds: they are polled by the others after its lease.
            wait_until(lambda: _held(engine, "n1"), 30, "n1 to hold leases")
            dying = _held(engine, "n1")
            signal_group(procs["n1"], signal.SIGKILL)
            procs["n1"].wait(timeout=10)
            killed_at = time.time()

            # SIGSTOP n2 while it holds feeds, until the others claimed them (token moved on).
            for _ in range(10):
                wait_until(lambda: _held(engine, "n2"), 30, "n2 to hold leases")
                signal_group(procs["n2"], signal.SIGSTOP)
                stopped_at = time.time()
                stopped = _held(engine, "n2")
                if stopped:
                    break
                signal_group(procs["n2"], signal.SIGCONT)  # it had just written them: again
            assert stopped

            def taken_over() -> bool:
                with engine.connect() as conn:
                    now = {row.id: row.lease_token for row in conn.execute(
                        "SELECT id, lease_token FROM feeds WHERE id = ANY(:ids)",
                        {"ids": list(stopped)})}
                # Feeds whose rows n2 holds locked (stopped in the middle of a batch sent as
                # one pipeline) stay its own until it wakes: its write is then legitimate.
                return any(now[i] > token for i, token in stopped.items())

            def feeds_left() -> object:
                with engine.connect() as conn:
                    return conn.execute(
                        "SELECT id, lease_owner, lease_until, lease_token, next_due, "
                        "extract(epoch from now()) FROM feeds WHERE id = ANY(:ids)",
                        {"ids": list(stopped)}).all(), conn.execute(
                        "SELECT application_name, state, now() - state_change, "
                        "left(query, 60) "
                        "FROM pg_stat_activity WHERE application_name LIKE 'n%'").all()

            wait_until(taken_over, 4 * LEASE + 2 * INTERVAL, "n2's feeds to be taken over",
                       explain=feeds_left)
            time.sleep(max(0.0, stopped_at + LEASE + INTERVAL - time.time()))
            signal_group(procs["n2"], signal.SIGCONT)
            resumed_at = time.time()
            time.sleep(INTERVAL)
            stop_adding.set()
            adder.join(timeout=5)

            expected = set(added)

            def delivered() -> set[tuple[int, int]]:
                found = set()
                for request in webhook_receiver.received:
                    match = re.search(r"Comment (\d+) on thread (\d+)", request.body.decode())
                    if match:
                        found.add((int(match.group(2)), int(match.group(1))))
                return found

            def undelivered() -> object:
                missing = sorted(expected - delivered())
                with engine.connect() as conn:
                    outbox = conn.execute(
                        "SELECT entry_key, status, claimed_until, claim_owner, attempts, "
                        "last_error FROM outbox WHERE status <> 'sent'").all()
                    channels = conn.execute("SELECT * FROM channel_state").all()
                    feeds = conn.execute(
                        "SELECT id, lease_owner, lease_until, next_due, last_polled, etag "
                        "FROM feeds WHERE url = ANY(:u)",
                        {"u": [farm.origin + farm.path(t) for t, _ in missing]}).all()
                return (missing, outbox, channels, feeds, time.time(),
                        {n: logs[n].read_text()[-1500:] for n in ("n2", "n3")})

            wait_until(lambda: expected <= delivered(), 6 * INTERVAL + 4 * LEASE,
                       f"{len(expected)} comments to be delivered", explain=undelivered)

            # `status` tells the operator which node does what: n1 is silent, n2 and n3
            # alive, each with its version and its share; each feed names its last poller.
            shown = run_cli("status", "--json", "-c", str(configs["n3"]), timeout=120)
            assert shown.returncode == 0, shown.stderr
            status = json.loads(shown.stdout)
            table = run_cli("status", "-c", str(configs["n3"]), timeout=120).stdout
        finally:
            stop_adding.set()
            stop_groups(procs.values())
        hits = farm.hits

    logs_text = {n: logs[n].read_text(errors="replace") for n in NODES}
    assert all(procs[n].returncode == 0 for n in ("n2", "n3")), logs_text

    # Polling was shared: every node wrote polls, and no feed was asked for twice within
    # half an interval, kills and pauses included. One exception, which no node can avoid:
    # a request n2 had decided to send (its lease checked) when it was paused goes out as it
    # wakes. Such a request is the first for one of n2's held feeds right after it woke, and
    # n2 drops its result ("lost the lease"), so there are at most as many as it reports.
    assert all(shares.get(n, 0) > 0 for n in NODES), shares
    with engine.connect() as conn:
        held_threads = {int(re.findall(r"/feed/(\d+)/", row.url)[0]) for row in conn.execute(
            "SELECT url FROM feeds WHERE id = ANY(:ids)", {"ids": list(stopped)})}
    by_feed: dict[int, list[float]] = defaultdict(list)
    for hit in hits:
        by_feed[hit.thread].append(hit.at)
    woke = {feed: min(t for t in by_feed[feed] if t >= resumed_at) for feed in held_threads
            if any(resumed_at <= t <= resumed_at + LEASE for t in by_feed[feed])}
    close = [(feed, round(b - a, 3)) for feed, times in by_feed.items()
             for a, b in zip(sorted(times), sorted(times)[1:], strict=False)
             if b - a < INTERVAL / 2 and woke.get(feed) not in (a, b)]
    excused = [feed for feed, at in woke.items()
               if any(0 < abs(t - at) < INTERVAL / 2 for t in by_feed[feed])]
    dropped = sum(int(n) for n in re.findall(r"lost the lease on (\d+) feed", logs_text["n2"]))
    assert len(excused) <= dropped, (excused, dropped)
    if close:
        with engine.connect() as conn:
            rows = conn.execute(
                "SELECT f.url, w.writer, w.lease_owner, w.lease_token, w.last_polled, w.written "
                "FROM poll_writes w JOIN feeds f ON f.id = w.feed_id").all()
        t0 = killed_at
        detail = {feed: ([round(t - t0, 2) for t in sorted(by_feed[feed])],
                         [(r.writer, r.lease_token, round(r.last_polled - t0, 2),
                           round(r.written - t0, 2)) for r in rows
                          if r.url.endswith(f"/feed/{feed}/")]) for feed, _ in close[:3]}
        print("stopped", stopped_at - t0, "resumed", resumed_at - t0, detail)
    assert not close, f"feeds requested twice within {INTERVAL / 2} s: {close[:10]}"
    assert len(by_feed) == FEEDS

    # Every comment arrived; each lost node may cause one repeat, no more.
    requests = [r for r in webhook_receiver.received if r.json is not None]
    ids = [r.headers["webhook-id"] for r in requests]
    assert delivered() >= expected
    assert len(ids) - len(set(ids)) <= 2, f"{len(ids) - len(set(ids))} repeats"
    assert len(set(ids)) == len(delivered())  # one id per comment

    nodes = {n["name"]: n for n in status["nodes"]}
    assert {name: nodes[name]["state"] for name in NODES} == {
        "n1": "silent", "n2": "alive", "n3": "alive"}, nodes
    assert all(nodes[n]["version"] == notifier.__version__
               and not nodes[n]["differs_from_others"] for n in NODES), nodes
    assert nodes["n2"]["feeds_polled"] > 0 and nodes["n3"]["feeds_polled"] > 0, nodes
    assert {f["polled_by"] for f in status["feeds"]} <= set(NODES)
    assert all(f["polled_by"] for f in status["feeds"]), status["feeds"][:3]
    assert re.search(r"polled .* by n[23];", table) and re.search(r"\n  n1 +silent", table)

    # Fencing: every poll was written by the node holding the feed's lease at that moment,
    # and nothing the paused node fetched before its pause was written after it woke over
    # another node's claim. One kind of late write is n2's own to finish: a batch it was
    # writing when paused (rows locked, the rest of one pipeline sent as it woke). Nobody
    # could claim those rows meanwhile, so each such write carries the token n2 held at the
    # pause, and no other node claimed that feed between the pause and the write.
    with engine.connect() as conn:
        writes = conn.execute(
            "SELECT feed_id, writer, lease_owner, lease_token, last_polled, written "
            "FROM poll_writes").all()
        claimed_since = conn.execute(
            "SELECT feed_id, owner, claimed FROM claims WHERE claimed > :t",
            {"t": stopped_at}).all()
    foreign = [w for w in writes if w.writer != w.lease_owner]
    assert not foreign, f"polls written by a node not holding the lease: {foreign[:5]}"
    late_writes = [w for w in writes if w.writer == "n2" and w.last_polled < stopped_at
                   and w.written > resumed_at]
    stale = [w for w in late_writes if w.lease_token != stopped.get(w.feed_id)
             or any(c.feed_id == w.feed_id and c.owner != "n2" and c.claimed < w.written
                    for c in claimed_since)]
    assert not stale, f"polls from before n2's pause written after it woke: {stale[:5]}"
    print("n2's writes under way at its pause, finished as it woke:", len(late_writes))
    taken = [w for w in writes if w.feed_id in stopped and w.writer != "n2"
             and w.written > stopped_at]
    assert taken and all(w.lease_token > stopped[w.feed_id] for w in taken), taken
    assert all(w.writer != "n1" for w in writes if w.written > killed_at)
    # The killed node's feeds were claimed by the others once its leases ran out (within
    # a lease, then the next poll tick of a node), not left waiting for it.
    with engine.connect() as conn:
        claims = conn.execute(
            "SELECT feed_id, owner, claimed FROM claims WHERE claimed > :t",
            {"t": killed_at}).all()
    late = {feed: min((c.claimed - killed_at for c in claims
                       if c.feed_id == feed and c.owner != "n1"), default=None)
            for feed in dying}
    assert all(t is not None and t < LEASE + INTERVAL for t in late.values()), late
    print("n1's feeds claimed by others after its kill, s:",
          sorted(round(t, 2) for t in late.values() if t is not None)[-3:])
    # What n2 says about the claims it held when it woke (dropped polls, or a session that
    # PostgreSQL ended after a lease idle in a transaction), for the record.
    print("n2:", re.findall(r".*(?:lost the lease on|polls dropped|idle-in-transaction).*",
                            logs_text["n2"])[:3])


def test_two_nodes_send_each_digest_once_and_a_killed_sender_is_replaced(
        tmp_path: Path, database: tuple[str, Database],
        webhook_receiver: WebhookReceiver) -> None:
    """A channel with a digest (every minute here): two daemons poll, one gathers and sends.

    The node delivering to the channel is SIGKILLed while the comments wait for the digest;
    the other takes the channel over and sends them, each once, in the digest."""
    url, engine = database
    threads = 12
    # Slow answers and two fetches at a time: a node's pass over the due feeds outlasts the
    # other's next tick, so both poll (and queue) rather than one taking every feed.
    with FeedFarm(threads, delay=0.3) as farm:
        configs = {}
        for name in ("d1", "d2"):
            configs[name] = write_config(tmp_path, name, url, farm, webhook_receiver)
            config = yaml.safe_load(configs[name].read_text(encoding="utf-8"))
            config["http"] = {"concurrency": 2, "per_host": 2}
            config["channels"]["hook"]["digest"] = "* * * * *"
            config["subscriptions"] = config["subscriptions"][:threads]
            configs[name].write_text(yaml.safe_dump(config), encoding="utf-8")
        logs = {n: tmp_path / f"{n}.log" for n in configs}
        baseline = run_cli("run", "--once", "-c", str(configs["d1"]), timeout=300)
        assert baseline.returncode == 0, baseline.stderr
        with engine.begin() as conn:  # which node queued each notification
            conn.execute(QUEUE_LOG)
        procs = {n: start(configs[n], logs[n]) for n in configs}
        try:
            def query(sql: str, **params: object) -> list[Any]:
                with engine.connect() as conn:
                    return list(conn.execute(sql, params).all())

            def sender() -> str | None:
                rows = query("SELECT lease_owner FROM channel_state WHERE name = 'hook' "
                             "AND lease_until > extract(epoch from now())")
                return rows[0].lease_owner if rows else None

            wait_until(lambda: all("poll cycle:" in logs[n].read_text() for n in configs),
                       60, "both nodes to poll",
                       explain=lambda: {n: logs[n].read_text()[-1500:] for n in configs})
            # The comments must all be held for the digest before the minute turns. Added
            # over a few seconds, so that both nodes' passes over the due feeds find some.
            while 60 - time.time() % 60 < 30:
                time.sleep(1)
            turn = (time.time() // 60 + 1) * 60
            added = []
            for thread in range(threads):
                added.append((thread, farm.add_comment(thread)))
                time.sleep(0.5)

            def held() -> int:
                return len(query("SELECT id FROM outbox WHERE status = 'held'"))

            wait_until(lambda: held() == threads, 20, "every comment held for the digest",
                       explain=lambda: query("SELECT entry_key, status FROM outbox"))
            assert webhook_receiver.received == []
            queued_by = {r.writer for r in query("SELECT writer FROM queued_by")}
            # Delivery ran when they were queued: one node took the channel.
            wait_until(sender, 10, "a node to take the channel")
            dying = sender()
            assert dying is not None
            survivor = next(n for n in configs if n != dying)
            signal_group(procs[dying], signal.SIGKILL)
            procs[dying].wait(timeout=10)
            killed_at = time.time()
            assert killed_at < turn, "the machine was too slow to kill before the digest"

            def delivered() -> list[tuple[int, int]]:
                """(thread, comment) of each notification in every message received."""
                found = []
                for request in webhook_receiver.received:
                    body = request.json if isinstance(request.json, dict) else {}
                    for member in body.get("notifications", [body]):
                        text = str(member.get("entry", {}).get("text", ""))
                        match = re.search(r"Comment (\d+) on thread (\d+)", text)
                        if match:
                            found.append((int(match.group(2)), int(match.group(1))))
                return found

            wait_until(lambda: len(delivered()) >= threads, 60 + LEASE + 20,
                       "the digest", explain=lambda: (delivered(), query(
                            "SELECT entry_key, status, held_until, claim_owner FROM outbox"),
                            logs[survivor].read_text()[-1500:]))
            time.sleep(INTERVAL)  # a second digest of this minute, were one sent, is here
            sent = query("SELECT claim_owner, digest_id, sent_at FROM outbox "
                         "WHERE status = 'sent'")
        finally:
            stop_groups(procs.values())

    assert procs[survivor].returncode == 0, logs[survivor].read_text()
    assert queued_by == {"d1", "d2"}  # both nodes queued comments for the one digest
    requests = [r.json for r in webhook_receiver.received]
    assert all(isinstance(r, dict) and r["type"] == "digest" for r in requests), requests
    assert sorted(delivered()) == sorted(added)  # every comment, each once
    # Sent by the node that took the channel over, after the kill, as one digest.
    assert {r.claim_owner for r in sent} == {survivor}
    assert all(r.sent_at > killed_at for r in sent)
    assert len(requests) == len({r.digest_id for r in sent}) == 1
