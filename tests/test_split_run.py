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
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from notifier.poll.shards import partition
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


def write_config(tmp_path: Path, farms: tuple[FeedFarm, ...], smtp: SmtpServer) -> Path:
    subs = "".join(f"  - {{name: h{h}t{t}, url: '{farm.origin}{farm.path(t)}', "
                   "watch: comments, notify: [me]}\n"
                   for h, farm in enumerate(farms) for t in range(THREADS))
    path = tmp_path / "notifier.yaml"
    path.write_text(f"""\
state: sqlite:///state.db
defaults: {{interval: 10m}}
channels:
{email_channel("me", smtp)}subscriptions:
{subs}""", encoding="utf-8")
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


def test_a_first_run_names_ten_subscriptions_and_counts_the_rest(
        tmp_path: Path, farms: tuple[FeedFarm, FeedFarm], smtp_server: SmtpServer) -> None:
    # 40 names on one line were a wall of text; 10,000 were unreadable.
    first = run_once(write_config(tmp_path, farms, smtp_server))
    assert first.returncode == 0, first.stderr
    line = next(x for x in first.stdout.splitlines() if x.startswith("baseline:"))
    assert "recorded on 40 feeds (h0t0, h0t1, h0t10," in line
    assert line.endswith(" and 30 more); new ones will be reported"), line
