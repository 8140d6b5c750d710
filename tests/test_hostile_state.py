"""One bad entry never fails a batch, and text from a feed cannot misdirect a reader.

On the state a user runs (PostgreSQL when NOTIFIER_TEST_POSTGRES_URL is set, SQLite
always): a comment carrying `&#0;` (PostgreSQL refuses NUL in text), an author with a lone
surrogate (no driver encodes one) and a comment whose id is too long for PostgreSQL's index
arrive beside healthy feeds in one run. Every healthy comment is still delivered, the
odd-but-storable ones too, and a poll the database still refuses is recorded as that feed's
failure, not the batch's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import databases
from tests.support.blog_server import BlogServer
from tests.support.daemon import cli_env
from tests.support.smtp_server import ReceivedMail, SmtpServer
from tests.support.webhook_receiver import WebhookReceiver
from tests.test_hostile_feeds import (
    comment_feed,
    daemon,
    hook_texts,
    status,
    stop,
    wait_until,
)


@pytest.fixture(params=databases.KINDS)
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with databases.state_url(request.param, tmp_path) as url:
        yield url


def feed(name: str, newest: str = "", *, key: str = "") -> bytes:
    """A comment feed of one plain comment, plus `newest` as comment 2 when given."""
    post = f"http://blog.test/{name}/"
    text = comment_feed(1, post=post).replace("{encoding}", "UTF-8")
    if newest:
        entry = (f"<entry><title>By: Reader 2</title><author><name>Reader 2</name></author>"
                 f"<id>{key or post + '#comment-2'}</id>"
                 f"<link rel=\"alternate\" href=\"{post}#comment-2\" type=\"text/html\" />"
                 f"<updated>2024-05-01T11:00:00Z</updated>"
                 f"<published>2024-05-01T11:00:00Z</published>"
                 f"<content type=\"html\">{newest}</content>"
                 f"<thr:in-reply-to ref=\"{post}\" href=\"{post}\" type=\"text/html\" /></entry>")
        text = text.replace("<entry>", entry + "<entry>", 1)
    return text.encode()


def noise(length: int) -> str:
    """Incompressible text (PostgreSQL compresses a long repetitive key under its limit)."""
    out = ""
    seed = b"notifier"
    while len(out) < length:
        seed = hashlib.sha256(seed).digest()
        out += seed.hex()
    return out[:length]


def run_once(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "notifier", "run", "--once", "-c", str(config)],
                          capture_output=True, text=True, env=cli_env(), timeout=120, check=False)


def test_one_unstorable_comment_never_loses_the_others(
        tmp_path: Path, state_url: str, blog_server: BlogServer,
        webhook_receiver: WebhookReceiver) -> None:
    names = ["ok1", "ok2", "ok3", "nul", "surrogate", "longid", "bidi"]
    for name in names:
        blog_server.add_file(f"/{name}/feed/atom/", feed(name), "application/atom+xml")
    config = tmp_path / "notifier.yaml"
    config.write_text(yaml.safe_dump({
        "state": state_url,
        "channels": {"hook": {"type": "webhook", "url": webhook_receiver.url,
                              "format": "slack"}},
        "subscriptions": [{"name": n, "url": blog_server.origin + f"/{n}/feed/atom/",
                           "watch": "comments", "notify": ["hook"]} for n in names],
    }), encoding="utf-8")
    first = run_once(config)
    assert first.returncode == 0, first.stderr

    for name in ("ok1", "ok2", "ok3"):
        blog_server.add_file(f"/{name}/feed/atom/", feed(name, f"Fine comment on {name}"),
                             "application/atom+xml")
    blog_server.add_file("/nul/feed/atom/", feed("nul", "Null&amp;#0; here &#0; and here"),
                         "application/atom+xml")
    blog_server.add_file("/surrogate/feed/atom/", feed("surrogate", "Lone &#xD800; half"),
                         "application/atom+xml")
    long_key = "http://blog.test/longid/?c=" + noise(9000)
    blog_server.add_file("/longid/feed/atom/", feed("longid", "A long id", key=long_key),
                         "application/atom+xml")
    blog_server.add_file("/bidi/feed/atom/",
                         feed("bidi", "Name reversal \u202egnp.exe\u202c here"),
                         "application/atom+xml")
    second = run_once(config)
    texts = hook_texts(webhook_receiver)
    for name in ("ok1", "ok2", "ok3"):
        assert any(f"Fine comment on {name}" in t for t in texts), (second.stderr, texts)
    assert any("Null" in t for t in texts), (second.stderr, texts)
    assert any("Lone" in t and "half" in t for t in texts), (second.stderr, texts)
    bidi = [t for t in texts if "Name reversal" in t]
    assert bidi and "\\u202e" not in bidi[0].lower() and "\u202e" not in bidi[0], bidi
    # The over-long id: stored where the database takes it, else that feed alone failed.
    longid_delivered = any("A long id" in t for t in texts)
    shown = status(config)
    assert longid_delivered or "the state refused this poll's entries" in shown, shown
    if not longid_delivered:
        assert "1 failed" in second.stderr, second.stderr
    assert "Traceback" not in second.stderr, second.stderr


def _flood_feed(count: int, *, reply: int = 0) -> bytes:
    """Comments 1..count on one post; comment `reply` answers comment 1 (by Reader 1)."""
    post = "http://blog.test/flood/"
    text = comment_feed(count, post=post).replace("{encoding}", "UTF-8")
    if reply:
        head, sep, tail = text.partition(f"<id>{post}#comment-{reply}</id>")
        tail = tail.replace(f'<thr:in-reply-to ref="{post}"',
                            f'<thr:in-reply-to ref="{post}#comment-1"', 1)
        text = head + sep + tail
    return text.encode()


def _numbers(texts: Iterable[str]) -> list[int]:
    return sorted(int(n) for text in texts for n in re.findall(r"Comment number (\d+)\.", text))


def _plain(mail: ReceivedMail) -> str:
    part = mail.get_body(("plain",))
    assert part is not None, mail
    return str(part.get_content())


def _hooks(hook: WebhookReceiver) -> list[dict[str, Any]]:
    return [r.json for r in hook.received if isinstance(r.json, dict)]


def test_catch_up_after_downtime_is_reported_in_full_and_a_flood_is_summarised(
        tmp_path: Path, blog_server: BlogServer, webhook_receiver: WebhookReceiver,
        smtp_server: SmtpServer) -> None:
    path = "/flood/feed/atom/"
    blog_server.add_file(path, _flood_feed(1), "application/atom+xml")
    config = tmp_path / "notifier.yaml"
    config.write_text(yaml.safe_dump({
        "state": "sqlite:///state.db",
        "defaults": {"interval": "2s", "jitter": 0},  # flood_limit: the default, 50
        "channels": {
            "hook": {"type": "webhook", "url": webhook_receiver.url, "format": "json"},
            "mail": {"type": "email", "from": "Notifier <notifier@example.org>",
                     "to": ["reader@example.org"],
                     "smtp": {"host": "127.0.0.1", "port": smtp_server.port,
                              "security": "none"}},
        },
        "subscriptions": [{"name": "flooded", "url": blog_server.origin + path,
                           "watch": "comments", "notify": ["hook", "mail"]},
                          {"name": "mine", "url": blog_server.origin + path,
                           "watch": "comments", "replies_to": ["Reader 1"],
                           "notify": ["hook", "mail"]}],
    }), encoding="utf-8")
    assert run_once(config).returncode == 0  # the baseline: comment 1

    # The daemon is down for 4 intervals while 120 comments arrive: more than flood_limit,
    # but no more than 50 per interval nobody read. Every one is reported, once.
    blog_server.add_file(path, _flood_feed(121), "application/atom+xml")
    time.sleep(8)
    caught_up = run_once(config)
    assert caught_up.returncode == 0, caught_up.stderr
    hooks = _hooks(webhook_receiver)
    assert [h["type"] for h in hooks] == ["comment.created"] * 120, hooks[:3]
    assert _numbers(h["entry"]["text"] for h in hooks) == list(range(2, 122))
    assert _numbers(_plain(m) for m in smtp_server.messages) == list(range(2, 122))

    # An import right after, between two polls on time: 1,001 comments at once is a flood.
    # Each channel gets one summary holding the newest 5; all are stored, none sent again.
    # The one reply to Reader 1 among them still arrives on its own, for "mine".
    webhook_receiver.clear()
    smtp_server.clear()
    blog_server.add_file(path, _flood_feed(1122, reply=600), "application/atom+xml")
    flooded = run_once(config)
    assert flooded.returncode == 0, flooded.stderr
    hooks = _hooks(webhook_receiver)
    assert len(hooks) == 2, hooks
    summary = next(h for h in hooks if h["type"] == "digest")
    assert summary["total"] == 1000 and summary["count"] == 5
    assert _numbers(n["entry"]["text"] for n in summary["notifications"]) == \
        [1118, 1119, 1120, 1121, 1122]
    reply = next(h for h in hooks if h["type"] == "comment.created")
    assert reply["subscription"] == "mine" and _numbers([reply["entry"]["text"]]) == [600]
    assert len(smtp_server.messages) == 2
    headline = '1,000 new comments on "a post"; the newest 5 follow'
    mail = next(m for m in smtp_server.messages if m["Subject"] == headline)
    body = _plain(mail)
    assert body.startswith(headline) and _numbers([body]) == [1118, 1119, 1120, 1121, 1122]
    assert "1122 entries seen" in status(config)
    again = run_once(config)
    assert again.returncode == 0, again.stderr
    assert len(webhook_receiver.received) == 2 and len(smtp_server.messages) == 2


def _one_feed_config(tmp_path: Path, blog_server: BlogServer, hook: WebhookReceiver) -> Path:
    blog_server.add_file("/one/feed/atom/", feed("one"), "application/atom+xml")
    config = tmp_path / "notifier.yaml"
    config.write_text(yaml.safe_dump({
        "state": "sqlite:///state.db",
        "defaults": {"interval": "1s", "jitter": 0},
        "channels": {"hook": {"type": "webhook", "url": hook.url, "format": "json"}},
        "subscriptions": [{"name": "one", "url": blog_server.origin + "/one/feed/atom/",
                           "watch": "comments", "notify": ["hook"]}],
    }), encoding="utf-8")
    return config


def test_a_second_run_on_the_same_state_exits_2_naming_the_first(
        tmp_path: Path, blog_server: BlogServer, webhook_receiver: WebhookReceiver) -> None:
    config = _one_feed_config(tmp_path, blog_server, webhook_receiver)
    log = tmp_path / "daemon.log"
    with daemon(config, log) as first:
        wait_until(lambda: " running: " in log.read_text(), 30, "start", log)
        for extra in ([], ["--once"]):
            second = subprocess.run([sys.executable, "-m", "notifier", "run", *extra, "-c",
                                     str(config)], capture_output=True, text=True, env=cli_env(),
                                    timeout=60, check=False)
            assert second.returncode == 2, second.stderr
            assert f"in use by another notifier (pid {first.pid})" in second.stderr
            assert "Traceback" not in second.stderr
        assert "one" in status(config)  # read-only commands work beside it
        # A backup while the daemon runs is a consistent, usable state.
        copy = tmp_path / "copy.db"
        made = subprocess.run([sys.executable, "-m", "notifier", "backup", "-c", str(config),
                               str(copy)], capture_output=True, text=True, env=cli_env(),
                              timeout=60, check=False)
        assert made.returncode == 0, made.stderr
        stop(first)
    with contextlib.closing(sqlite3.connect(copy)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*) FROM subscriptions").fetchone() == (1,)
    # Restore: the copy in the state's place, and the next run goes on from it.
    (tmp_path / "state.db").unlink()
    copy.rename(tmp_path / "state.db")
    again = run_once(config)
    assert again.returncode == 0, again.stderr
    assert "does not exist" not in again.stderr and "baseline" not in again.stdout


@pytest.mark.parametrize("damage", ["garbage", "truncated", "newer"])
def test_a_state_that_cannot_be_read_stops_the_run_and_is_left_alone(
        tmp_path: Path, blog_server: BlogServer, webhook_receiver: WebhookReceiver,
        damage: str) -> None:
    config = _one_feed_config(tmp_path, blog_server, webhook_receiver)
    state = tmp_path / "state.db"
    assert run_once(config).returncode == 0
    if damage == "garbage":
        state.write_bytes(b"this is not a database at all\n" * 100)
    elif damage == "truncated":
        data = state.read_bytes()
        state.write_bytes(data[:len(data) // 3])
    else:
        with contextlib.closing(sqlite3.connect(state)) as db:
            db.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
            db.commit()
    before = state.read_bytes()
    result = run_once(config)
    assert result.returncode == 2, result.stderr
    assert str(state) in result.stderr or "state.db" in result.stderr, result.stderr
    assert "restore" in result.stderr or "upgrade" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert state.read_bytes() == before  # never overwritten


def test_an_empty_state_file_is_created_anew_with_a_warning(
        tmp_path: Path, blog_server: BlogServer, webhook_receiver: WebhookReceiver) -> None:
    config = _one_feed_config(tmp_path, blog_server, webhook_receiver)
    (tmp_path / "state.db").write_bytes(b"")
    result = run_once(config)
    assert result.returncode == 0, result.stderr
    assert "WARNING" in result.stderr and "is empty (0 bytes" in result.stderr, result.stderr
    assert "starts with a baseline" in result.stderr


def test_a_state_whose_folder_is_missing_says_to_create_the_folder(
        tmp_path: Path, blog_server: BlogServer, webhook_receiver: WebhookReceiver) -> None:
    """No state was ever there: the advice is to create the folder or correct `state:`, not
    to restore a backup or move a file away, and `run` does not first announce that it
    creates a new state. `check` does not call such a configuration OK."""
    config = _one_feed_config(tmp_path, blog_server, webhook_receiver)
    config.write_text(config.read_text().replace("sqlite:///state.db",
                                                 "sqlite:///var/state.db"))
    folder = tmp_path / "var"
    for command in (["check"], ["run", "--once"], ["status"], ["retry", "--now"]):
        result = subprocess.run([sys.executable, "-m", "notifier", *command, "-c",
                                 str(config)], capture_output=True, text=True, env=cli_env(),
                                timeout=60, check=False)
        assert result.returncode == 2, (command, result.stderr)
        assert f"its folder {folder} does not exist; create it (mkdir -p {folder}) or " \
               "correct `state:`" in result.stderr, (command, result.stderr)
        assert "restore" not in result.stderr and "creating a new" not in result.stderr, \
            (command, result.stderr)
        assert "Traceback" not in result.stderr
    assert not folder.exists()


def test_commands_before_the_first_run_create_no_state(
        tmp_path: Path, blog_server: BlogServer, webhook_receiver: WebhookReceiver) -> None:
    """`status`, `retry`, `reload` and `export` only read or amend a state: had one of them
    created it, the first `run` would no longer say that a new state starts every
    subscription with a baseline (a wrong `state:` path after a move would go unnoticed)."""
    config = _one_feed_config(tmp_path, blog_server, webhook_receiver)
    shown = status(config)
    assert "(not created yet: `notifier run` creates it" in shown, shown
    assert "one: " in shown and "not discovered yet" in shown, shown

    def cli(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "notifier", *command, "-c", str(config)],
                              capture_output=True, text=True, env=cli_env(), timeout=60,
                              check=False)

    retry = cli("retry", "--now")
    assert retry.returncode == 0 and "nothing to retry" in retry.stdout, retry
    reload = cli("reload")
    assert reload.returncode == 1 and "no daemon has run on it" in reload.stderr, reload
    export = cli("export")
    assert export.returncode == 0 and "/one/feed/atom/" in export.stdout, export
    assert not (tmp_path / "state.db").exists()
    first = run_once(config)
    assert first.returncode == 0, first.stderr
    assert "does not exist: creating a new, empty state" in first.stderr, first.stderr
    assert "not created yet" not in status(config)


def test_a_state_that_cannot_be_written_gives_one_error_then_quiet_retries(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Disk full (SQLite's own error, as a full disk raises it): one ERROR without a
    traceback, growing pauses, and a line when the state is writable again."""
    from notifier import daemon

    monkeypatch.setattr(daemon, "STATE_BACKOFF_MAX", 0.05)
    full = sqlite3.OperationalError("database or disk is full")
    calls = 0

    async def cycle() -> None:
        nonlocal calls
        calls += 1
        if calls <= 4:
            raise full

    async def drive() -> None:
        wanted = asyncio.Event()
        worker = daemon._Worker("poll", wanted, cycle)
        task = asyncio.create_task(worker.run())
        for n in range(1, 6):
            wanted.set()
            for _ in range(400):  # the cycle starts (within 20 s, however busy the machine)
                if calls >= n:
                    break
                await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    with caplog.at_level(logging.INFO, logger="notifier"):
        asyncio.run(drive())
    assert calls == 5
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is None
    assert "database or disk is full" in errors[0].getMessage()
    assert any("writable again after 4 failed cycles" in r.getMessage()
               for r in caplog.records)
