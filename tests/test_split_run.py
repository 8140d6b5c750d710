"""A large `run --once` split between two processes by host (`notifier.poll.shards`).

Two feed servers on two loopback addresses (two hosts), an SMTP server, and `notifier` as
its own process, with the split threshold lowered (NOTIFIER_SPLIT_MIN_FEEDS) so that 40
feeds are "large". What a user would see: every feed polled once per run, each new comment
mailed once, one summary; no host asked by both processes; and a second process that dies
costs nothing but time.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from notifier.config import load_config
from notifier.poll.shards import hosts, partition, split
from notifier.store import Store
from tests.support.configs import email_channel
from tests.support.daemon import cli_env
from tests.support.feed_farm import FeedFarm
from tests.support.smtp_server import SmtpServer

THREADS = 20  # per host
SPLIT = {"NOTIFIER_SPLIT_MIN_FEEDS": "10"}


@pytest.fixture
def farms() -> Iterator[tuple[FeedFarm, FeedFarm]]:
    first, second = FeedFarm(THREADS), FeedFarm(THREADS)
    second.host = "127.0.0.2"
    with first, second:
        yield first, second


def write_config(tmp_path: Path, farms: tuple[FeedFarm, ...], smtp: SmtpServer,
                 extra: str = "") -> Path:
    subs = "".join(f"  - {{name: h{h}t{t}, url: '{farm.origin}{farm.path(t)}', "
                   "watch: comments, notify: [me]}\n"
                   for h, farm in enumerate(farms) for t in range(THREADS))
    path = tmp_path / "notifier.yaml"
    path.write_text(f"""\
state: sqlite:///state.db
defaults: {{interval: 10m}}
channels:
{email_channel("me", smtp)}subscriptions:
{subs}{extra}""", encoding="utf-8")
    return path


def run_once(config: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "notifier", "run", "--once", "-c",
                           str(config)], capture_output=True, text=True,
                          env=cli_env({**SPLIT, **env}), timeout=120, check=False)


def polled_by(db: Path) -> Counter[str]:
    with sqlite3.connect(db) as conn:
        return Counter(row[0] for row in conn.execute("SELECT polled_by FROM feeds"))


def test_a_split_run_polls_each_feed_once_and_mails_each_comment_once(
        tmp_path: Path, farms: tuple[FeedFarm, FeedFarm], smtp_server: SmtpServer) -> None:
    config = write_config(tmp_path, farms, smtp_server)
    first = run_once(config)
    assert first.returncode == 0, first.stderr
    assert "/2 (lease" not in first.stderr  # a first run discovers: one process
    for farm in farms:
        farm.clear_hits()
        for thread in range(0, THREADS, 4):
            farm.add_comment(thread)  # 5 new comments on each host

    second = run_once(config)

    assert second.returncode == 0, second.stderr
    assert "/2 (lease" in second.stderr  # the second process started
    assert "40 feeds polled (30 unchanged, 0 failed), 10 new entries" in second.stderr
    assert smtp_server.wait_for(10, timeout=20)
    time.sleep(0.5)  # nothing more comes
    # Thread numbers repeat across the hosts; the comment's link (in the text) does not.
    mails = [str(part.get_content()) for m in smtp_server.messages
             if (part := m.get_body(("plain",))) is not None]
    assert len(mails) == len(set(mails)) == 10, [m["Subject"] for m in smtp_server.messages]
    for farm in farms:
        assert sum(farm.origin in text for text in mails) == 5
    for farm in farms:
        assert sorted(h.thread for h in farm.hits) == list(range(THREADS))  # each once
    # Each host polled by one process only: politeness (per_host, Retry-After) holds.
    owners = polled_by(tmp_path / "state.db")
    assert len(owners) == 2 and sorted(owners.values()) == [THREADS, THREADS], owners


def test_a_run_with_too_few_feeds_stays_in_one_process(
        tmp_path: Path, farms: tuple[FeedFarm, FeedFarm], smtp_server: SmtpServer) -> None:
    config = write_config(tmp_path, farms, smtp_server)
    assert run_once(config).returncode == 0
    again = run_once(config, NOTIFIER_SPLIT_MIN_FEEDS="41")
    assert again.returncode == 0, again.stderr
    assert "/2 (lease" not in again.stderr
    assert "40 feeds polled (40 unchanged" in again.stderr
    assert len(polled_by(tmp_path / "state.db")) == 1


def test_when_the_second_process_dies_the_first_polls_its_feeds(
        tmp_path: Path, farms: tuple[FeedFarm, FeedFarm], smtp_server: SmtpServer) -> None:
    config = write_config(tmp_path, farms, smtp_server)
    assert run_once(config).returncode == 0
    for farm in farms:
        farm.add_comment(1)
        farm.delay = 0.4  # slow enough to kill the second process while it polls
    proc = subprocess.Popen([sys.executable, "-m", "notifier", "run", "--once", "-c",
                             str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=cli_env(SPLIT))
    try:
        helper = _wait_for_helper(proc.pid, timeout=20)
        os.kill(helper, signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    except AssertionError as exc:
        proc.kill()
        raise AssertionError(f"{exc}: {proc.communicate()[1]}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "second poll process ended without its report (killed by signal 9)" in err, err
    assert "40 feeds polled" in err, err
    assert proc.returncode == 0, err
    assert smtp_server.wait_for(2, timeout=20)
    time.sleep(0.5)
    assert len(smtp_server.messages) == 2  # each new comment once


def test_a_second_process_that_dies_late_costs_no_count_and_no_second_request(
        tmp_path: Path, farms: tuple[FeedFarm, FeedFarm], smtp_server: SmtpServer) -> None:
    # Killed once one of its comments was mailed: the summary said "1 new entries" (its
    # own vanished with it) and every feed it had polled was asked again.
    config = write_config(tmp_path, farms, smtp_server)
    assert run_once(config).returncode == 0
    theirs = farms[1]  # the second host's feeds are the second process's (ties: by name)
    for farm in farms:
        farm.add_comment(1)
        farm.delay = 0.4
        farm.clear_hits()
    # One other feed of the second process waits until it is killed (one of its two
    # connections to the host; the other goes on): it is still polling then, however long
    # the mail took on a busy machine (it once finished first).
    theirs.held = frozenset({THREADS - 1})
    proc = _start(config)
    lines: list[str] = []
    mailed = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if line.split(" INFO    sent ")[-1].startswith(theirs.origin):
                mailed.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    helper = 0
    try:
        helper = _wait_for_helper(proc.pid, timeout=20)
        assert mailed.wait(20), "".join(lines)
        os.kill(helper, signal.SIGKILL)
        theirs.released.set()
        proc.wait(timeout=60)
        reader.join(10)
    finally:
        theirs.released.set()
        _stop(proc, helper)
    err = "".join(lines)
    assert "second poll process ended without its report (killed by signal 9)" in err, err
    assert "40 feeds polled (38 unchanged, 0 failed), 2 new entries" in err, err
    assert proc.returncode == 0, err
    assert [h.thread for h in theirs.hits].count(1) == 1  # mailed: written, not asked again
    assert smtp_server.wait_for(2, timeout=20)
    time.sleep(0.5)
    assert len(smtp_server.messages) == 2


def test_a_second_process_ends_with_the_first(
        tmp_path: Path, farms: tuple[FeedFarm, FeedFarm], smtp_server: SmtpServer) -> None:
    # A service manager's SIGTERM (KillMode=mixed, `kill`, a cron's timeout) reaches the
    # first process only. The second one used to poll on, holding the state's lock: the
    # next run exited 2 ("in use by another notifier") until it was done.
    config = write_config(tmp_path, farms, smtp_server)
    assert run_once(config).returncode == 0
    for farm in farms:
        farm.delay = 1.5  # the second process's share takes some 15 s
    proc = _start(config)
    helper = 0
    try:
        helper = _wait_for_helper(proc.pid, timeout=20)
        proc.terminate()
        proc.wait(timeout=20)  # not its output: the second process shares that
        assert _ended(helper, timeout=5), "the second process outlived the first"
    finally:
        _stop(proc, helper)
    for farm in farms:
        farm.delay = 0
        farm.add_comment(1)
    again = run_once(config)
    assert again.returncode == 0, again.stderr
    assert smtp_server.wait_for(2, timeout=20)
    time.sleep(0.5)
    assert len(smtp_server.messages) == 2  # each new comment once, none lost


def test_a_second_process_that_stops_answering_is_ended_and_its_feeds_polled(
        tmp_path: Path, farms: tuple[FeedFarm, FeedFarm], smtp_server: SmtpServer) -> None:
    # A stopped (or hung) second process used to keep the run, and the state's lock, for
    # ever: every later cron run exited 2.
    config = write_config(tmp_path, farms, smtp_server, "cluster: {lease: 2s}\n")
    assert run_once(config).returncode == 0
    for farm in farms:
        farm.add_comment(1)
        farm.delay = 0.4
    proc = _start(config)
    helper = 0
    try:
        helper = _wait_for_helper(proc.pid, timeout=20)
        os.kill(helper, signal.SIGSTOP)
        try:
            _, err = proc.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            raise AssertionError("the run waited for a stopped second process") from None
    finally:
        _stop(proc, helper)
    assert "second poll process sent nothing for 2 s" in err, err
    assert "40 feeds polled" in err, err
    assert proc.returncode == 0, err
    assert smtp_server.wait_for(2, timeout=20)
    time.sleep(0.5)
    assert len(smtp_server.messages) == 2


def test_a_run_stopped_while_its_second_process_is_stopped_ends(
        tmp_path: Path, farms: tuple[FeedFarm, FeedFarm], smtp_server: SmtpServer) -> None:
    # Ctrl-C (SIGINT to the first process) ended the second with SIGTERM, which a stopped
    # process does not act on, and then waited for it: the run never ended.
    config = write_config(tmp_path, farms, smtp_server)
    assert run_once(config).returncode == 0
    for farm in farms:
        farm.delay = 0.4
    proc = _start(config)
    helper = 0
    try:
        helper = _wait_for_helper(proc.pid, timeout=20)
        os.kill(helper, signal.SIGSTOP)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            raise AssertionError("Ctrl-C did not end the run") from None
        assert _ended(helper, timeout=5)
    finally:
        _stop(proc, helper)
    assert proc.returncode != 0


def test_one_connection_at_a_time_keeps_the_run_in_one_process(
        tmp_path: Path, farms: tuple[FeedFarm, FeedFarm], smtp_server: SmtpServer) -> None:
    # Each process of a split run has at least one connection: two would break the limit.
    config = write_config(tmp_path, farms, smtp_server, "http: {concurrency: 1}\n")
    assert run_once(config).returncode == 0
    again = run_once(config)
    assert again.returncode == 0, again.stderr
    assert "/2 (lease" not in again.stderr
    assert len(polled_by(tmp_path / "state.db")) == 1


def test_status_lists_the_nodes_of_recent_runs_not_of_every_run(
        tmp_path: Path, farms: tuple[FeedFarm, FeedFarm], smtp_server: SmtpServer) -> None:
    # Each `run --once` is a node of its own (host name and pid), a split run two: a cron
    # job's `status` listed every one of them, thousands after a month.
    config = write_config(tmp_path, farms, smtp_server)
    for _ in range(4):
        assert run_once(config).returncode == 0
    shown = subprocess.run([sys.executable, "-m", "notifier", "status", "-c", str(config)],
                           capture_output=True, text=True, env=cli_env({}), timeout=60,
                           check=False)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.split("\nnodes (", 1)[1].splitlines()[2:]
    nodes = [line.split()[0] for line in lines if line.startswith("  ") and " ago " in line]
    # The last run's two processes, and the run before (whose name some feeds may still
    # carry as the last to poll them); not the first two runs' three.
    assert 2 <= len(nodes) <= 4, shown.stdout


def _start(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "notifier", "run", "--once", "-c",
                             str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=cli_env(SPLIT))


def _stop(proc: subprocess.Popen[str], helper: int) -> None:
    """Whatever is left of a run, ended: the first process, and the second (a stopped or
    orphaned one is no longer the first's to end)."""
    if helper and not _ended(helper, timeout=0):  # first: it holds the output's pipes
        os.kill(helper, signal.SIGKILL)
        _ended(helper, timeout=5)
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


def _ended(pid: int, timeout: float) -> bool:
    """Whether `pid` is gone (or a zombie) within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            return True
        if state in ("Z", "X"):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _wait_for_helper(parent: int, timeout: float) -> int:
    """The forked second process: a child of `parent` running the same command line for
    half a second (a parse worker is a new interpreter with its own; a fork that runs
    another program, such as the library lookup's, has the same one for an instant)."""
    seen: dict[int, float] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = time.monotonic()
        with open(f"/proc/{parent}/cmdline", "rb") as f:
            command = f.read()  # read each time: at first it may not have run exec yet
        for pid in _children(parent):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    same = f.read() == command
            except OSError:
                continue
            if not same:
                seen.pop(pid, None)
            elif now - seen.setdefault(pid, now) >= 0.5:
                return pid
        time.sleep(0.02)
    raise AssertionError("the second poll process never started")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        found += [int(c) for c in children]
    return found


def test_partition_keeps_each_host_whole_and_the_shares_even() -> None:
    hosts = {i: f"h{i % 7}" for i in range(700)} | {1000 + i: "big" for i in range(300)}
    first, second = partition(hosts, 2)
    assert first | second == set(hosts) and not first & second
    by_host = {h: {i for i in hosts if hosts[i] == h} for h in set(hosts.values())}
    for members in by_host.values():
        assert members <= first or members <= second
    assert abs(len(first) - len(second)) <= 100  # the largest host is 300, the rest 100 each
    assert partition(dict(reversed(hosts.items())), 2) == [first, second]  # same split


def test_a_site_whose_feeds_are_on_two_hosts_is_polled_by_one_process() -> None:
    # A thread typed as example.com, threads followed on www.example.com, one REST root
    # (the site's probe, read once per site): the two hosts go to the same process.
    api = "https://www.site.example/wp-json/"
    urls: dict[int, tuple[str, str | None]] = {
        1: ("https://site.example/?p=1&feed=rss2", api),
        2: ("https://www.site.example/2/feed/", api),
        3: ("https://api.other.example/feed/", "https://other.example/wp-json/"),
        4: ("https://other.example/feed/", None),
    }
    urls |= {10 + i: (f"https://h{i}.example/feed/", None) for i in range(4)}
    urls |= {20 + i: ("https://site.example/feed/", None) for i in range(3)}
    keys = hosts(urls, urls)
    assert keys[1] == keys[2] == keys[20] and keys[3] == keys[4]
    assert len(set(keys.values())) == 6
    first, second = partition(keys, 2)
    assert {1, 2, 20, 21, 22} <= first or {1, 2, 20, 21, 22} <= second
    assert {3, 4} <= first or {3, 4} <= second
    assert hosts({}, [5]) == {5: ""}  # a feed gone from the state: no host, one group


def test_each_feed_is_in_one_share_and_a_feed_met_later_in_none(
        tmp_path: Path, farms: tuple[FeedFarm, FeedFarm], smtp_server: SmtpServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A feed added during the run is a thread the second process began to follow on one of
    # its own hosts: the first used to poll it too, a third connection to that host beside
    # the second's `per_host`, blind to a Retry-After the second had met there.
    path = write_config(tmp_path, farms, smtp_server)
    assert run_once(path).returncode == 0
    monkeypatch.setenv("NOTIFIER_SPLIT_MIN_FEEDS", "10")
    config = load_config(path)
    store = Store(config.state_url())
    try:
        found = split(config, store, cpus=2)
        known = set(store.feed_urls())
    finally:
        store.close()
    assert found is not None and len(known) == 2 * THREADS
    for feed_id in known:
        assert found.parent.polls(feed_id) != found.helper.polls(feed_id)
    later = max(known) + 1
    assert not found.parent.polls(later) and not found.helper.polls(later)


def test_a_first_run_names_ten_subscriptions_and_counts_the_rest(
        tmp_path: Path, farms: tuple[FeedFarm, FeedFarm], smtp_server: SmtpServer) -> None:
    # 40 names on one line were a wall of text; 10,000 were unreadable.
    first = run_once(write_config(tmp_path, farms, smtp_server))
    assert first.returncode == 0, first.stderr
    line = next(x for x in first.stdout.splitlines() if x.startswith("baseline:"))
    assert "recorded on 40 feeds (h0t0, h0t1, h0t10," in line
    assert line.endswith(" and 30 more); new ones will be reported"), line
