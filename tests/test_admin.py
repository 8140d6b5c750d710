"""The admin listener of a running daemon: /metrics read by Prometheus's own text parser,
/healthz, and the status page, with hostile feed content on it, rendered by a real browser
where one is installed."""

from __future__ import annotations

import asyncio
import html.parser
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from notifier.admin.page import FEEDS_SHOWN, PageFacts, render_page
from notifier.config import load_config
from notifier.daemon import Daemon as RunningDaemon
from notifier.daemon import open_engine
from notifier.failures import Failure, FailureKind
from notifier.store import FeedHealth
from tests.support.blog_server import BlogServer
from tests.support.daemon import Daemon, cli_env, free_port, running, wait_until
from tests.support.webhook_receiver import ScriptedResponse, WebhookReceiver

# Debian's package (installed by .ci/run when missing); other distributions name it so too.
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FEED_PATH = "/2013/11/02/a-hostile-thread/feed/atom/"
POST = "http://blog.test/2013/11/02/a-hostile-thread/"
HOSTILE_AUTHOR = '<img src=x onerror="document.title=\'owned\'">Mallory'
HOSTILE_POST = "<script>document.title='owned'</script>Post title"


def hostile_feed(count: int) -> bytes:
    """A WordPress-shaped Atom comment feed whose author names and titles are markup."""
    entries = []
    for n in range(count, 0, -1):
        stamp = f"2013-11-02T10:{n:02d}:00Z"
        entries.append(f"""<entry>
<title type="html"><![CDATA[By: {HOSTILE_AUTHOR} {n}]]></title>
<link rel="alternate" href="{POST}#comment-{n}" type="text/html" />
<author><name><![CDATA[{HOSTILE_AUTHOR} {n}]]></name></author>
<id>{POST}#comment-{n}</id>
<updated>{stamp}</updated><published>{stamp}</published>
<content type="html"><![CDATA[<p>Comment {n}<script>alert(1)</script></p>]]></content>
<thr:in-reply-to ref="{POST}" href="{POST}" type="text/html" />
</entry>""")
    return f"""<?xml version="1.0" encoding="UTF-8" ?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:thr="http://purl.org/syndication/thread/1.0">
<title type="html"><![CDATA[Comments on {HOSTILE_POST}]]></title>
<link rel="alternate" type="text/html" href="{POST}#comments" />
<id>{POST}feed/atom/</id>
<updated>2013-11-02T11:00:00Z</updated>
{"".join(entries)}
</feed>
""".encode()


def write_config(tmp_path: Path, blog: BlogServer, hook: WebhookReceiver, port: int) -> Path:
    dead_end = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens: every send fails
    path = tmp_path / "notifier.yaml"
    path.write_text(f"""\
state: sqlite:///state.db
admin:
  listen: "127.0.0.1:{port}"
defaults: {{interval: 1s, jitter: 0, backfill: 3}}
channels:
  hook: {{type: webhook, url: "{hook.url}", format: json}}
  broken:
    type: webhook
    url: "{dead_end}"
    format: json
    retry: {{first: 30s, factor: 1, max: 30s}}
subscriptions:
  - name: hostile
    url: {blog.url(FEED_PATH)}
    notify: [hook, broken]
  - name: missing
    url: {blog.url("/nothing-here/")}
    notify: [hook]
""", encoding="utf-8")
    return path


@pytest.fixture
def admin_daemon(tmp_path: Path, blog_server: BlogServer,
                 webhook_receiver: WebhookReceiver) -> Iterator[tuple[Daemon, str]]:
    blog_server.add_file(FEED_PATH, hostile_feed(5), "application/atom+xml; charset=UTF-8")
    port = free_port()
    config = write_config(tmp_path, blog_server, webhook_receiver, port)
    with running(config, tmp_path / "daemon.log") as daemon:
        daemon.wait_log("admin listener on")
        webhook_receiver.wait_for(3, timeout=30)
        yield daemon, f"http://127.0.0.1:{port}"


def samples(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics by (name, sorted labels), parsed by prometheus_client."""
    response = httpx.get(base + "/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    out = {}
    for family in text_string_to_metric_families(response.text):
        assert family.name.startswith("notifier_"), family.name
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_tell_polls_deliveries_queue_and_failures(
        admin_daemon: tuple[Daemon, str]) -> None:
    daemon, base = admin_daemon

    def settled() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        got = samples(base)
        failed = got.get(("notifier_notifications_total",
                          (("channel", "broken"), ("outcome", "failed"))), 0)
        # A poll that lands after its cycle returned is counted with the next cycle.
        fetched = got.get(("notifier_polls_total", (("result", "fetched"),)), 0)
        return got if failed >= 3 and fetched >= 1 else None

    got = wait_until(settled, 30, "the broken channel's failures and the poll in /metrics")

    def value(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    assert value("notifier_notifications_total", channel="hook", outcome="sent") == 3
    assert value("notifier_notifications_total", channel="hook", outcome="dead") == 0
    assert value("notifier_queue_depth", channel="hook") == 0
    # Three backfilled comments wait for the channel nobody answers, none given up yet.
    assert value("notifier_queue_depth", channel="broken") == 3
    assert value("notifier_dead_letters", channel="broken") == 0
    assert value("notifier_oldest_queued_age_seconds", channel="broken") > 0
    assert value("notifier_oldest_queued_age_seconds", channel="hook") == 0
    assert value("notifier_polls_total", result="fetched") >= 1
    assert value("notifier_polls_total", result="failed") >= 1  # the missing subscription
    # ... and its kind: a 404 is an HTTP failure; kinds that did not happen read 0.
    assert value("notifier_poll_failures_total", kind="http") == \
        value("notifier_polls_total", result="failed")
    assert value("notifier_poll_failures_total", kind="parser") == 0
    assert value("notifier_feeds_failing") == 1
    assert value("notifier_fetch_seconds_count") >= 1
    assert value("notifier_fetch_seconds_bucket", le="+Inf") == \
        value("notifier_fetch_seconds_count")
    assert value("notifier_new_entries_total") >= 3
    assert value("notifier_build_info", version="0.1.0") == 1
    assert "Traceback" not in daemon.log


def test_healthz_answers_200_with_the_loops_named(admin_daemon: tuple[Daemon, str]) -> None:
    _, base = admin_daemon
    response = httpx.get(base + "/healthz", timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert set(body["loops"]) == {"poll", "delivery to hook", "delivery to broken"}
    assert httpx.post(base + "/healthz", timeout=10).status_code == 405


class _Text(html.parser.HTMLParser):
    """Collects the page's text and the tags it opens."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_status_page_lists_feeds_failures_channels_and_escapes_feed_markup(
        admin_daemon: tuple[Daemon, str], blog_server: BlogServer) -> None:
    _, base = admin_daemon
    response = httpx.get(base + "/", timeout=10)
    assert response.status_code == 200
    assert "script-src" not in response.headers["content-security-policy"]
    page = _Text()
    page.feed(response.text)
    text = " ".join(page.text)
    assert "script" not in page.tags and "img" not in page.tags
    assert HOSTILE_AUTHOR in text  # shown as the text it is
    assert blog_server.url(FEED_PATH) in text
    assert "subscription missing: no feed" in text
    assert "channel broken: 3 notification(s) failing" in text
    for channel in ("hook", "broken"):
        assert channel in text
    assert text.count("comment by") == 6  # 3 comments x 2 channels


def _chromium(tmp_path: Path, *args: str) -> str:
    """Headless Chromium on loopback only, each run with a profile of its own: no network
    traffic of its own (updates, sync, QUIC probes), no GPU, no sandbox (CI runs as root)."""
    assert CHROMIUM is not None
    profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}"]
    done = subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs "
                    "Debian's package; by hand: apt-get install chromium)")
def test_status_page_renders_in_headless_chromium(
        admin_daemon: tuple[Daemon, str], tmp_path: Path) -> None:
    _, base = admin_daemon
    dom = _chromium(tmp_path, "--dump-dom", base + "/")
    # The DOM after the browser ran the page: its own title, no element made of feed text.
    assert "<title>notifier status</title>" in dom
    assert "owned" not in dom.split("</title>")[0]
    assert "<img" not in dom and "<script" not in dom
    assert "&lt;img src=x onerror=" in dom
    assert "subscription missing: no feed" in dom
    shot = tmp_path / "status.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,900", base + "/")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_healthz_is_503_when_the_database_stops_answering_or_a_loop_dies(
        tmp_path: Path, blog_server: BlogServer, webhook_receiver: WebhookReceiver) -> None:
    blog_server.add_file(FEED_PATH, hostile_feed(2), "application/atom+xml; charset=UTF-8")
    port = free_port()
    config = load_config(write_config(tmp_path, blog_server, webhook_receiver, port))
    base = f"http://127.0.0.1:{port}"

    async def scenario() -> list[tuple[int, dict[str, object]]]:
        seen = []
        stop, reload = asyncio.Event(), asyncio.Event()
        async with open_engine(config) as engine:
            daemon = RunningDaemon(config, engine)
            task = asyncio.create_task(daemon.run(stop, reload))
            async with httpx.AsyncClient(timeout=15) as client:
                for _ in range(300):
                    await asyncio.sleep(0.1)
                    if daemon.admin is not None and daemon.workers:
                        break

                async def health() -> None:
                    answer = await client.get(base + "/healthz")
                    seen.append((answer.status_code, json.loads(answer.text)))

                await health()
                # The state's file is replaced by something that is not a database.
                engine.store.close()
                state = tmp_path / "state.db"
                for extra in ("-wal", "-shm"):
                    Path(f"{state}{extra}").unlink(missing_ok=True)
                state.write_bytes(b"this is not a database\n" * 200)
                await health()
                # A fresh database: healthy again.
                engine.store.close()
                state.unlink()
                await asyncio.to_thread(engine.store.migrate)
                await health()
                poll = daemon.workers["poll"][1]
                poll.cancel()
                await asyncio.wait([poll], timeout=30)  # ended, however busy the machine
                await health()
            stop.set()
            await task
        return seen

    seen = asyncio.run(scenario())
    assert [code for code, _ in seen] == [200, 503, 200, 503]
    assert str(seen[1][1]["database"]).startswith("not answering")
    loops = seen[3][1]["loops"]
    assert isinstance(loops, dict) and loops["poll"] == "stopped"
    assert seen[3][1]["status"] == "failing"


def test_admin_listen_is_checked_and_a_taken_port_stops_the_start(
        tmp_path: Path, blog_server: BlogServer, webhook_receiver: WebhookReceiver) -> None:
    config = write_config(tmp_path, blog_server, webhook_receiver, 9464)
    config.write_text(config.read_text().replace('"127.0.0.1:9464"', '"127.0.0.1:99999"'))
    bad = subprocess.run([sys.executable, "-m", "notifier", "check", "-c", str(config)],
                         capture_output=True, text=True, timeout=60, check=False,
                         env=cli_env())
    assert bad.returncode == 2
    assert "notifier.yaml:3: admin.listen: expected host:port" in bad.stderr

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, blog_server, webhook_receiver, port)
        run = subprocess.run([sys.executable, "-m", "notifier", "run", "-c", str(config)],
                             capture_output=True, text=True, timeout=60, check=False,
                             env=cli_env())
    assert run.returncode == 2
    assert f"notifier: admin.listen 127.0.0.1:{port}: cannot listen" in run.stderr
    assert "Traceback" not in run.stderr


def test_status_page_of_a_large_state_lists_failing_feeds_first_and_says_it_is_cut(
        tmp_path: Path, blog_server: BlogServer, webhook_receiver: WebhookReceiver) -> None:
    config = load_config(write_config(tmp_path, blog_server, webhook_receiver, 9464))
    health = [FeedHealth(url=f"https://blog{i:04d}.example.org/feed/", last_polled=1.0,
                         last_status=None if i % 500 == 7 else 200,
                         last_failure=Failure(FailureKind.HTTP, "HTTP 500 Internal Server Error")
                         if i % 500 == 7 else None,
                         error_count=3 if i % 500 == 7 else 0, next_due=2.0, entries=10)
              for i in range(FEEDS_SHOWN + 700)]
    page = render_page(PageFacts({}, health, {}, []), config, started=0.0, now=60.0)
    rows = page.count("example.org/feed/</td>")
    assert rows == FEEDS_SHOWN
    assert f"Feeds ({FEEDS_SHOWN + 700})" in page and "notifier status</code> lists" in page
    first_rows = page.split("<h2 id=\"feeds\">")[1]
    assert first_rows.index("blog0007.") < first_rows.index("blog0000.")  # failing first
    assert "blog0507." in first_rows and "blog0999." not in first_rows


def test_healthz_is_503_while_a_delivery_hangs_and_200_when_it_ends(
        tmp_path: Path, blog_server: BlogServer, webhook_receiver: WebhookReceiver) -> None:
    blog_server.add_file(FEED_PATH, hostile_feed(2), "application/atom+xml; charset=UTF-8")
    # The webhook server holds its first answer until the test has seen the hang: that
    # delivery cycle hangs as long as it takes, on a machine however busy (the channel's own
    # timeout is raised so that it does not end the hang first).
    release = threading.Event()
    webhook_receiver.script([ScriptedResponse(204, hold=release)])
    port = free_port()
    path = write_config(tmp_path, blog_server, webhook_receiver, port)
    path.write_text(path.read_text().replace("format: json}", "format: json, timeout: 60s}", 1))
    config = load_config(path)
    base = f"http://127.0.0.1:{port}"

    async def scenario() -> list[tuple[int, dict[str, Any]]]:
        seen = []
        stop, reload = asyncio.Event(), asyncio.Event()
        async with open_engine(config) as engine:
            daemon = RunningDaemon(config, engine)
            daemon.stuck_after = 1.0  # instead of an hour
            task = asyncio.create_task(daemon.run(stop, reload))
            try:
                async with httpx.AsyncClient(timeout=15) as client:

                    async def health_until(wanted: Callable[[int, dict[str, Any]], bool],
                                           what: str) -> None:
                        deadline = time.monotonic() + 40
                        answer = None
                        while time.monotonic() < deadline:
                            await asyncio.sleep(0.1)
                            try:
                                answer = await client.get(base + "/healthz")
                            except httpx.TransportError:
                                continue  # not listening yet
                            if wanted(answer.status_code, answer.json()):
                                seen.append((answer.status_code, answer.json()))
                                return
                        last = None if answer is None else (answer.status_code, answer.text)
                        raise AssertionError(f"no {what} in 40 s; last answer: {last}")

                    # (A slow first poll cycle may be "stuck" for a moment too, on a busy
                    # machine: wait for the delivery's.)
                    await health_until(lambda _, body: "stuck" in str(
                        body["loops"].get("delivery to hook")), "stuck delivery on /healthz")
                    release.set()
                    await health_until(lambda code, _: code == 200, "200 after the hang")
            finally:
                release.set()
                stop.set()
                await task
        return seen

    (first, hung), (second, well) = asyncio.run(scenario())
    loops = hung["loops"]
    assert first == 503 and isinstance(loops, dict)
    assert str(loops["delivery to hook"]).startswith("stuck for")
    assert second == 200 and well["status"] == "ok"
    assert len(webhook_receiver.received) >= 1
