"""Secrets stay secret: a feed behind Basic auth, a key in a feed's query, secrets in files.

A subscription URL with `user:password@` used to make every cycle fail (the transport
refused the URL beside an Authorization header) and `check` printed the password; a key in
a feed's query reached `check`, the log and the stored error. Now the credentials travel as
a Basic Authorization header, and every place a person reads shows the URL redacted.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from notifier.cli import main
from tests.support.blog_server import POST_PATH, BlogServer
from tests.support.configs import SECRET_PATH, chat_channel
from tests.support.daemon import cli_env
from tests.support.webhook_receiver import WebhookReceiver
from tests.test_hostile_feeds import HEALTHY, atom, hook_texts, status

PASSWORD = "pa55-w0rd-s3cret"
API_KEY = "k3y-0f-the-feed-9f8e7d6c"


def notifier(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "notifier", *args], capture_output=True,
                          text=True, env=cli_env(), timeout=120, check=False)


def test_a_feed_behind_basic_auth_is_polled_and_its_secrets_never_shown(
        tmp_path: Path, blog_server: BlogServer, webhook_receiver: WebhookReceiver) -> None:
    blog_server.add_file(HEALTHY, atom(1), "application/atom+xml; charset=UTF-8")
    host = blog_server.origin.removeprefix("http://")
    url = f"http://reader:{PASSWORD}@{host}{HEALTHY}?apikey={API_KEY}"
    missing = f"http://reader:{PASSWORD}@{host}/missing/?apikey={API_KEY}"
    (tmp_path / "hook.url").write_text(webhook_receiver.url + "\n", encoding="utf-8")
    config = tmp_path / "notifier.yaml"
    config.write_text(yaml.safe_dump({
        "state": "sqlite:///state.db",
        # The webhook's URL (its token) from a file, as systemd credentials provide it.
        "channels": {"hook": {"type": "webhook", "url_file": "hook.url", "format": "json"}},
        "subscriptions": [
            {"name": "private", "url": url, "watch": "comments", "notify": ["hook"]},
            {"name": "missing", "url": missing, "watch": "comments", "notify": ["hook"]}],
    }), encoding="utf-8")

    check = notifier("check", "-c", str(config))
    assert check.returncode == 0, check.stderr
    assert "private: comments of http://reader:…@" in check.stdout, check.stdout
    first = notifier("run", "--once", "-v", "-c", str(config))
    blog_server.add_file(HEALTHY, atom(2), "application/atom+xml; charset=UTF-8")
    second = notifier("run", "--once", "-v", "-c", str(config))
    assert "Comment number 2" in "".join(hook_texts(webhook_receiver)), second.stderr

    sent = [r for r in blog_server.requests if r.path.startswith(HEALTHY)]
    expected = "Basic " + base64.b64encode(f"reader:{PASSWORD}".encode()).decode()
    assert sent and all(r.headers.get("authorization") == expected for r in sent)
    shown = status(config)
    assert "/missing/" in shown and "HTTP 404" in shown, shown
    for text in (check.stdout, check.stderr, first.stderr, second.stderr, shown):
        assert PASSWORD not in text and API_KEY not in text, text
    # The stored error names the URL redacted (the subscription's own URL stays usable).
    with contextlib.closing(sqlite3.connect(tmp_path / "state.db")) as db:
        errors = [row[0] for row in db.execute("SELECT last_error FROM subscriptions "
                                               "WHERE last_error IS NOT NULL")]
    assert errors == [f"http://reader:…@{host}/missing/?apikey=…: HTTP 404 Not Found"], errors


def test_a_secret_file_that_cannot_be_read_is_a_clear_configuration_error(
        tmp_path: Path) -> None:
    config = tmp_path / "notifier.yaml"
    config.write_text(yaml.safe_dump({
        "channels": {"hook": {"type": "webhook", "url_file": "nowhere.txt"}},
        "subscriptions": [{"name": "a", "url": "https://blog.example/feed/", "notify": ["hook"]}],
    }), encoding="utf-8")
    check = notifier("check", "-c", str(config))
    assert check.returncode == 2
    assert "channels.hook.url_file: cannot read nowhere.txt" in check.stderr, check.stderr
    assert "Traceback" not in check.stderr


def test_check_never_prints_an_over_long_value_in_full(tmp_path: Path) -> None:
    long_url = "https://blog.example/feed/?" + "&".join(f"p{n}=v{n}" for n in range(2000))
    config = tmp_path / "notifier.yaml"
    config.write_text(yaml.safe_dump({
        "channels": {"screen": {"type": "console"}},
        "subscriptions": [{"name": "long", "url": long_url, "notify": ["screen"]}],
    }), encoding="utf-8")
    check = notifier("check", "-c", str(config))
    assert check.returncode == 0, check.stderr
    line = next(x for x in check.stdout.splitlines() if "long:" in x)
    assert len(line) < 400 and f"({len(long_url):,} characters)" in line, line


def test_add_and_preview_of_an_unreadable_private_feed_never_print_its_secrets(
        tmp_path: Path, blog_server: BlogServer, capsys: pytest.CaptureFixture[str]) -> None:
    """Discovery's errors quote the URL as typed; the commands print them redacted."""
    host = blog_server.origin.removeprefix("http://")
    url = f"http://reader:{PASSWORD}@{host}/missing/?apikey={API_KEY}"
    config = tmp_path / "notifier.yaml"
    config.write_text(yaml.safe_dump({
        "state": "sqlite:///state.db",
        "channels": {"screen": {"type": "console"}},
        "subscriptions": [{"name": "private", "url": url, "notify": ["screen"]}],
    }), encoding="utf-8")
    assert main(["add", url.replace("/missing/", "/gone/"), "-c", str(config)]) == 1
    added = capsys.readouterr()
    assert main(["preview", "private", "-c", str(config)]) == 1
    previewed = capsys.readouterr()
    assert "nothing was added" in added.err and "reading its feed failed" in previewed.err
    assert "404" in added.err and "404" in previewed.err
    for shown in (added.err, added.out, previewed.err, previewed.out):
        assert PASSWORD not in shown and API_KEY not in shown
    assert f"http://reader:…@{host}/gone/?apikey=…" in added.err


@pytest.mark.parametrize(("state", "said"), [
    (f"postgresql://notifier:{PASSWORD}@db.example.org:5432x/notifier",
     "state: the port of this database URL is not a number from 1 to 65535"),
    (f"postgres://notifier:{PASSWORD}@db.example.org/notifier",
     "state: expected sqlite:///FILE or postgresql://user:password@host/db"),
    # The store speaks psycopg: another driver's name is refused by `check`, not at start.
    (f"postgresql+asyncpg://notifier:{PASSWORD}@db.example.org/notifier",
     "state: expected sqlite:///FILE or postgresql://user:password@host/db"),
    ("sqlite:///state.db?mode=ro",
     "state: unknown option mode='ro'; a SQLite state URL takes only ?timeout=SECONDS"),
])
def test_a_wrong_database_url_is_named_by_check_without_its_password(
        tmp_path: Path, state: str, said: str, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "notifier.yaml"
    config.write_text(yaml.safe_dump({
        "state": state, "channels": {"screen": {"type": "console"}},
        "subscriptions": [{"name": "s", "url": "https://blog.example.org/",
                           "notify": ["screen"]}],
    }, sort_keys=False), encoding="utf-8")
    for command in ("check", "status", "run"):
        assert main([command, "-c", str(config)]) == 2
        err = capsys.readouterr().err
        assert f"{config}:1: {said}" in err and PASSWORD not in err, err


def test_vv_shows_the_libraries_http_lines_without_a_webhooks_token(
        tmp_path: Path, webhook_receiver: WebhookReceiver) -> None:
    """README: `-v` adds notifier's debug detail, `-vv` also the libraries' (HTTP,
    scheduler). The HTTP client names the request's whole URL; the webhook's token in its
    path must not reach the log even then."""
    config = tmp_path / "notifier.yaml"
    config.write_text(f"""\
state: sqlite:///state.db
channels:
{chat_channel("team", webhook_receiver, "slack")}subscriptions:
  - name: thread
    url: https://blog.example.org/
    notify: [team]
""", encoding="utf-8")
    one = notifier("-v", "test-channel", "team", "-c", str(config))
    two = notifier("-vv", "test-channel", "team", "-c", str(config))
    assert one.returncode == 0 and two.returncode == 0, (one.stderr, two.stderr)
    assert "HTTP Request: POST" not in one.stderr, one.stderr
    assert "HTTP Request: POST http://127.0.0.1/…" in two.stderr, two.stderr
    token = SECRET_PATH.rsplit("/", 1)[1]
    for text in (one.stdout, one.stderr, two.stdout, two.stderr):
        assert token not in text and "T000/B000" not in text, text


def test_a_follow_up_that_fails_unexpectedly_is_logged_without_secrets(
        tmp_path: Path, blog_server: BlogServer, webhook_receiver: WebhookReceiver,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A bug in a follow-up (a REST listing, older pages) is logged with its exception's
    text, which may quote the URL it was reading, token and all."""
    from notifier import backfill
    from notifier.commands.run import run_async
    from notifier.config import load_config
    from notifier.daemon import run_once

    async def broken(*args: object, **kwargs: object) -> backfill.Completion:
        raise ValueError(f"cannot read {blog_server.origin}/wp-json/?api_key={API_KEY}")

    monkeypatch.setattr(backfill, "follow_up", broken)
    config = tmp_path / "notifier.yaml"
    config.write_text(yaml.safe_dump({
        "state": "sqlite:///state.db",
        "channels": {"hook": {"type": "webhook", "url": webhook_receiver.url, "format": "json"}},
        "subscriptions": [{"name": "thread", "url": blog_server.url(POST_PATH),
                           "watch": "comments", "notify": ["hook"]}],
    }), encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="notifier"):
        run_async(run_once(load_config(config, {})))
    failed = [r.getMessage() for r in caplog.records if "follow-up" in r.getMessage()]
    assert failed and "ValueError: cannot read http://127.0.0.1" in failed[0], failed
    assert API_KEY not in caplog.text
