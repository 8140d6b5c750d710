"""A disk that fills up under the running daemon, then has room again.

The state lives on a small tmpfs of its own, mounted for the test (skipped where the test
may not mount: not root, no CAP_SYS_ADMIN, not Linux). While a thread's comments are being
delivered, the test fills that filesystem to the last byte: SQLite meets a real ENOSPC
("database or disk is full") in the daemon's writes. The daemon must say so once, without a
traceback, keep running and back off; once space returns it must say so, give back the
claims its failed writes could not release (the lease here is 300 s: a test that waited it
out would fail), and deliver every comment exactly once; SIGTERM still stops it.
"""

from __future__ import annotations

import contextlib
import errno
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.blog_server import BlogServer
from tests.support.daemon import cli_env
from tests.support.webhook_receiver import ScriptedResponse, WebhookReceiver
from tests.test_hostile_feeds import comment_feed, daemon, stop, wait_until

FEED = "/full/feed/atom/"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs at tmp_path/disk, unmounted afterwards; skip when mounting is refused."""
    mount, umount = shutil.which("mount"), shutil.which("umount")
    if not sys.platform.startswith("linux") or not mount or not umount:
        pytest.skip("needs Linux and mount(8)")
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run([mount, "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs",
                           str(disk)], capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {done.stderr.strip()}")
    try:
        yield disk
    finally:
        for _ in range(50):  # the daemon may still be closing its files
            if subprocess.run([umount, str(disk)], capture_output=True, timeout=30,
                              check=False).returncode == 0:
                break
            time.sleep(0.1)


def _serve(blog: BlogServer, count: int) -> None:
    blog.add_file(FEED, comment_feed(count, post="http://blog.test/full/")
                  .replace("{encoding}", "UTF-8").encode(), "application/atom+xml")


def _fill(disk: Path) -> Path:
    """Write a file until the filesystem has no byte left."""
    filler = disk / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb", buffering=0) as out:
        for _ in range(1024):  # 64 MiB at most: four times the filesystem
            try:
                out.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
        for size in (4096, 512, 1):  # the last partial blocks
            with contextlib.suppress(OSError):
                for _ in range(65536):  # ends with ENOSPC long before
                    out.write(b"\0" * size)
    return filler


def _delivered(hook: WebhookReceiver) -> dict[int, set[str]]:
    """Comment number -> the webhook-ids it arrived under."""
    found: dict[int, set[str]] = {}
    for request in hook.received:
        if isinstance(request.json, dict):
            text = request.json["entry"]["text"]
            number = int(re.search(r"Comment number (\d+)\.", text)[1])  # type: ignore[index]
            found.setdefault(number, set()).add(request.headers["webhook-id"])
    return found


def test_a_full_disk_under_the_daemon_is_one_error_then_nothing_is_lost(
        tmp_path: Path, small_disk: Path, blog_server: BlogServer,
        webhook_receiver: WebhookReceiver) -> None:
    state = small_disk / "state.db"
    config = tmp_path / "notifier.yaml"
    config.write_text(yaml.safe_dump({
        "state": f"sqlite:///{state}",
        "defaults": {"interval": "1s", "jitter": 0},
        "cluster": {"lease": "300s"},
        "channels": {"hook": {"type": "webhook", "url": webhook_receiver.url, "format": "json",
                              "retry": {"first": "1s", "factor": 1, "max": "1s"}}},
        "subscriptions": [{"name": "full", "url": blog_server.origin + FEED,
                           "watch": "comments", "notify": ["hook"]}],
    }), encoding="utf-8")
    _serve(blog_server, 1)
    baseline = subprocess.run([sys.executable, "-m", "notifier", "run", "--once", "-c",
                               str(config)], capture_output=True, text=True, env=cli_env(),
                              timeout=120, check=False)
    assert baseline.returncode == 0, baseline.stderr
    # A receiver that takes its time, so the disk fills while deliveries are claimed.
    webhook_receiver.default_response = ScriptedResponse(204, delay=0.3)
    log = tmp_path / "daemon.log"
    with daemon(config, log) as proc:
        wait_until(lambda: " running: " in log.read_text(), 60, "start", log)
        _serve(blog_server, 31)  # comments 2..31
        wait_until(lambda: len(_delivered(webhook_receiver)) >= 3, 60, "first deliveries", log)
        # Empty the write-ahead log, so the next write needs new blocks, then fill the disk.
        with contextlib.closing(sqlite3.connect(state, timeout=30)) as db:
            for _ in range(50):
                if db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0:
                    break
                time.sleep(0.1)
        filler = _fill(small_disk)
        _serve(blog_server, 61)  # comments 32..61 arrive while nothing can be written
        wait_until(lambda: "the state cannot be written" in log.read_text(), 60,
                   "the disk-full error", log)
        time.sleep(8)  # several ticks of a full disk
        text = log.read_text()
        errors = [line for line in text.splitlines() if " ERROR " in line]
        assert proc.poll() is None, text[-3000:]
        assert "Traceback" not in text, text[-3000:]
        assert "database or disk is full" in text, text[-3000:]
        # One ERROR per worker that met the full disk (polling, delivery), not one per tick.
        assert 1 <= len(errors) <= 3, "\n".join(errors)
        filler.unlink()
        freed = time.monotonic()
        wait_until(lambda: "writable again" in log.read_text(), 90, "recovery", log)
        wait_until(lambda: len(_delivered(webhook_receiver)) == 60, 90,
                   "every comment delivered", log)
        took = time.monotonic() - freed
        stop(proc)
    found = _delivered(webhook_receiver)
    assert sorted(found) == list(range(2, 62))
    # A message sent while its acceptance could not be recorded goes again with its id.
    assert all(len(ids) == 1 for ids in found.values()), found
    # Claims taken before the disk filled were given back, not left to their 300 s lease.
    assert took < 90
    print(f"all delivered {took:.1f} s after the disk had room again; {len(errors)} ERROR "
          f"line(s) while it was full")
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert len([line for line in text.splitlines() if " ERROR " in line]) == len(errors)
