"""The fetch stage against a real loopback server: every failure comes back as data."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx
import pytest
import yaml

import notifier
from notifier import fetch as fetch_module
from notifier.config import load_config
from notifier.daemon import fetch_settings
from notifier.failures import Failure, FailureKind
from notifier.fetch import (
    FEED_ACCEPT,
    Fetcher,
    FetchSettings,
    TargetBlocked,
    Withdrawn,
    describe_transport_error,
)
from notifier.httpheaders import parse_link_header
from notifier.models import FetchResult
from notifier.poll import Poller, StoreThread
from notifier.poll.parsepool import ParsePool
from notifier.poll.plan import Plan, Planner
from notifier.poll.retrieve import Polled
from notifier.store import FeedState, Store
from tests.support.blog_server import POST_PATH, BlogServer
from tests.support.threaded import OwnedServer, ThreadedHTTPService
from tests.test_hostile_feeds import atom

T = TypeVar("T")
ETAG = '"4d6c8133629a3dfdf5121b6b75fafbdd"'
LAST_MODIFIED = "Sat, 02 Nov 2013 10:00:00 GMT"


def run_with(settings: FetchSettings, job: Callable[[Fetcher], Awaitable[T]]) -> T:
    async def main() -> T:
        async with Fetcher(settings) as fetcher:
            return await job(fetcher)

    return asyncio.run(main())


def get(url: str, settings: FetchSettings | None = None, **kwargs: Any) -> FetchResult:
    async def job(fetcher: Fetcher) -> FetchResult:
        return await fetcher.fetch(url, **kwargs)

    return run_with(settings or FetchSettings(), job)


# pure helpers


def test_default_user_agent_names_notifier_and_version() -> None:
    assert f"notifier/{notifier.__version__}" in FetchSettings().user_agent


# against the blog server


def test_200_keeps_validators_and_lower_case_headers(blog_server: BlogServer) -> None:
    result = get(blog_server.url("/comments/feed/"))
    assert result.ok and result.status == 200
    assert result.error is None
    assert result.etag == ETAG
    assert result.last_modified == LAST_MODIFIED
    assert result.body is not None and b"<rss" in result.body
    assert result.final_url == result.url == blog_server.url("/comments/feed/")
    assert result.permanent_url is None
    assert all(key == key.lower() for key in result.headers)
    assert result.headers["content-type"].startswith("application/rss+xml")
    assert 0 < result.elapsed < 5


def test_request_headers_name_notifier_and_prefer_feeds(blog_server: BlogServer) -> None:
    get(blog_server.url("/feed/"))
    sent = blog_server.requests[-1].headers
    assert sent["user-agent"].startswith(f"notifier/{notifier.__version__} ")
    assert sent["accept"] == FEED_ACCEPT
    assert sent["accept-encoding"] == "gzip, deflate"
    assert "if-none-match" not in sent and "if-modified-since" not in sent


def test_a_fetch_called_off_before_its_request_goes_out_sends_nothing(
        blog_server: BlogServer) -> None:
    # A poll asks whether its claim still holds when its slot is free, and again once its
    # connection is open (opening one yields to the loop, where a stopped process wakes):
    # a no at either point sends nothing, and the open connection serves the next fetch.
    url = blog_server.url("/comments/feed/")

    async def job(fetcher: Fetcher) -> tuple[list[str], FetchResult]:
        called_off = []
        for answers in ([False], [True, False]):
            said = iter(answers)
            with pytest.raises(Withdrawn, match="called off"):
                await fetcher.fetch(url, proceed=said.__next__)
            called_off.append(f"{len(answers)}: {len(blog_server.requests)} requests")
        return called_off, await fetcher.fetch(url, proceed=lambda: True)

    called_off, after = run_with(FetchSettings(), job)
    assert called_off == ["1: 0 requests", "2: 0 requests"]
    assert after.ok and len(blog_server.requests) == 1


def test_second_fetch_is_conditional_and_gets_304(blog_server: BlogServer) -> None:
    async def job(fetcher: Fetcher) -> tuple[FetchResult, FetchResult]:
        first = await fetcher.fetch(blog_server.url("/comments/feed/atom/"))
        second = await fetcher.fetch(first.url, etag=first.etag, last_modified=first.last_modified)
        return first, second

    first, second = run_with(FetchSettings(), job)
    assert first.status == 200
    sent = blog_server.requests[-1].headers
    assert sent["if-none-match"] == ETAG
    assert sent["if-modified-since"] == LAST_MODIFIED
    assert second.status == 304 and second.not_modified and not second.ok
    assert second.body is None and second.error is None
    assert (second.etag, second.last_modified) == (ETAG, LAST_MODIFIED)


def test_304_without_validators_keeps_the_ones_sent(blog_server: BlogServer) -> None:
    blog_server.override("/comments/feed/", status=304)
    result = get(blog_server.url("/comments/feed/"), etag='"old"', last_modified="yesterday")
    assert result.status == 304
    assert (result.etag, result.last_modified) == ('"old"', "yesterday")


def test_304_with_new_validators_takes_them(blog_server: BlogServer) -> None:
    blog_server.override("/comments/feed/", status=304, headers={"ETag": '"new"'})
    result = get(blog_server.url("/comments/feed/"), etag='"old"', last_modified="yesterday")
    assert (result.etag, result.last_modified) == ('"new"', "yesterday")


def test_gzip_body_is_decoded(blog_server: BlogServer) -> None:
    result = get(blog_server.url("/comments/feed/"))
    assert result.headers.get("content-encoding") == "gzip"
    assert result.body is not None
    assert result.body.startswith(b"<?xml") and result.body.rstrip().endswith(b"</rss>")
    assert blog_server.origin.encode() in result.body


def test_repeated_link_headers_are_joined(blog_server: BlogServer) -> None:
    result = get(blog_server.url(POST_PATH + "feed/"))
    links = parse_link_header(result.headers["link"])
    assert [params["rel"] for _, params in links] == [
        "https://api.w.org/",
        "alternate",
        "shortlink",
    ]


def test_permanent_redirect_chain_sets_permanent_url(blog_server: BlogServer) -> None:
    blog_server.override("/old", status=301, headers={"Location": "/older"})
    blog_server.override("/older", status=308, headers={"Location": "http://blog.test/feed/"})
    result = get(blog_server.url("/old"))
    assert result.ok
    assert result.url == blog_server.url("/old")
    assert result.final_url == result.permanent_url == blog_server.url("/feed/")


def test_temporary_redirect_leaves_permanent_url_unset(blog_server: BlogServer) -> None:
    blog_server.override("/old", status=301, headers={"Location": "/tmp"})
    blog_server.override("/tmp", status=302, headers={"Location": "/feed/"})
    result = get(blog_server.url("/old"))
    assert result.ok
    assert result.final_url == blog_server.url("/feed/")
    assert result.permanent_url is None


def test_redirect_loop_stops(blog_server: BlogServer) -> None:
    blog_server.override("/loop", status=301, headers={"Location": "/loop"}, repeat=None)
    result = get(blog_server.url("/loop"), FetchSettings(max_redirects=3))
    assert result.error == "too many redirects"
    assert result.failure == Failure(FailureKind.REFUSED, "too many redirects")
    assert result.status is None and result.body is None
    assert blog_server.count("/loop") == 4


def test_redirect_to_other_scheme_is_refused(blog_server: BlogServer) -> None:
    blog_server.override("/feed/", status=302, headers={"Location": "file:///etc/passwd"})
    result = get(blog_server.url("/feed/"))
    assert result.error == "unsupported URL scheme 'file'"


def test_every_hop_goes_through_check_target(
    blog_server: BlogServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    def check(url: str, block_private: bool = False) -> None:
        seen.append(url)
        if url.endswith("/comments/feed/"):
            raise TargetBlocked("blocked for the test")

    monkeypatch.setattr(fetch_module, "_check_target", check)
    blog_server.override("/feed/", status=301, headers={"Location": "/comments/feed/"})
    result = get(blog_server.url("/feed/"))
    assert seen == [blog_server.url("/feed/"), blog_server.url("/comments/feed/")]
    assert result.error == "blocked for the test"
    assert blog_server.count("/comments/feed/") == 0


def test_body_over_the_cap_is_an_error(blog_server: BlogServer) -> None:
    blog_server.add_file("/big.json", b"x" * 5000, "application/json")
    result = get(blog_server.url("/big.json"), FetchSettings(max_bytes=4096))
    assert result.error == "body larger than 4 KiB"
    assert result.failure is not None and result.failure.kind is FailureKind.REFUSED
    assert result.body is None and result.status is None


def test_gzip_bomb_is_cut_off_by_decoded_size(blog_server: BlogServer) -> None:
    blog_server.add_file("/bomb.xml", b"\0" * (8 << 20), "text/xml")  # gzipped: ~8 KiB
    result = get(blog_server.url("/bomb.xml"), FetchSettings(max_bytes=1 << 20))
    assert result.error == "body larger than 1 MiB"
    assert result.body is None


def test_body_exactly_at_the_cap_is_fine(blog_server: BlogServer) -> None:
    blog_server.add_file("/edge.xml", b"<rss/>" + b" " * 994, "text/xml")
    result = get(blog_server.url("/edge.xml"), FetchSettings(max_bytes=1000))
    assert result.ok and result.body is not None and len(result.body) == 1000


def test_raw_deflate_is_decoded(blog_server: BlogServer) -> None:
    import zlib

    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw = compressor.compress(b"<rss/>") + compressor.flush()
    blog_server.override(
        "/feed/", headers={"Content-Encoding": "deflate", "Content-Type": "text/xml"}, body=raw
    )
    assert get(blog_server.url("/feed/")).body == b"<rss/>"


def test_broken_gzip_is_an_error(blog_server: BlogServer) -> None:
    blog_server.override(
        "/feed/", headers={"Content-Encoding": "gzip"}, body=gzip.compress(b"x")[:10] + b"\xff" * 20
    )
    result = get(blog_server.url("/feed/"))
    assert result.error == "could not decode the compressed body"


def test_dripping_server_is_cut_off_by_the_total_timeout(blog_server: BlogServer) -> None:
    blog_server.override("/feed/", drip=(100, 0.2))
    started = time.monotonic()
    result = get(blog_server.url("/feed/"), FetchSettings(timeout=1.0))
    took = time.monotonic() - started
    assert result.error == "timed out after 1 s"
    assert result.failure is not None and result.failure.kind is FailureKind.TIMEOUT
    assert result.status is None and result.body is None
    assert took < 10  # cut off: the whole drip takes 20 s (and a busy machine is slow)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (404, "HTTP 404 Not Found"),
        (500, "HTTP 500 Internal Server Error"),
        (410, "HTTP 410 Gone"),
        (599, "HTTP 599"),
    ],
)
def test_http_errors_are_data(blog_server: BlogServer, status: int, error: str) -> None:
    blog_server.override("/feed/", status=status, body=b"<html>oops</html>")
    result = get(blog_server.url("/feed/"))
    assert result.status == status
    assert result.error == error
    assert result.body is None and not result.ok
    assert result.etag is None


def test_unknown_path_is_404(blog_server: BlogServer) -> None:
    assert get(blog_server.url("/nope/")).failure == Failure(FailureKind.HTTP,
                                                             "HTTP 404 Not Found")


def test_429_retry_after_seconds(blog_server: BlogServer) -> None:
    blog_server.override("/feed/", status=429, headers={"Retry-After": "120"})
    result = get(blog_server.url("/feed/"))
    assert result.error == "HTTP 429 Too Many Requests"
    assert result.retry_after == 120.0


def test_503_retry_after_date(blog_server: BlogServer) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    blog_server.override("/feed/", status=503, headers={"Retry-After": later})
    result = get(blog_server.url("/feed/"))
    assert result.error == "HTTP 503 Service Unavailable"
    assert result.retry_after is not None and 3590 <= result.retry_after <= 3600


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_connection_refused_is_data() -> None:
    result = get(f"http://127.0.0.1:{_closed_port()}/feed/")
    assert result.error == "connection refused"
    assert result.failure is not None and result.failure.kind is FailureKind.NETWORK
    assert result.status is None and result.body is None


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("ftp://example.org/feed", "unsupported URL scheme 'ftp'"),
        ("not a url", "unsupported URL scheme '(none)'"),
        ("http://[::1/feed", "invalid URL"),
        ("http:///feed", "invalid URL (no host)"),
        ("http://example.org:65536/feed", "invalid URL"),
        ("http://example.org:99999", "invalid URL"),
        ("http://example.org:/feed", None),  # an empty port is the default port
        ("http://:80/feed", "invalid URL (no host)"),
        ("HTTP://Example.ORG/feed", None),
        ("https://example.org:65535?q=1", None),
        ("http://exa mple.org/feed", None),  # urlsplit takes it; the request fails later
        ("mailto:someone@example.org", "unsupported URL scheme 'mailto'"),
        ("http://[::1]:8080/feed", None),
    ],
)
def test_bad_urls_are_data(url: str, error: str | None) -> None:
    """Each hop's URL check, for the plain URLs that skip splitting and the others alike."""
    assert fetch_module._url_problem(url) == error
    if error is not None:
        assert get(url).error == error


def test_per_host_limit_holds_back_the_third_request(blog_server: BlogServer) -> None:
    # Each answer drips 6 bytes over 0.5 s; with per_host=2, six fetches need three rounds.
    blog_server.override("/slow", drip=(6, 0.1), repeat=6)
    in_flight: list[int] = []  # requests the server has seen minus fetches finished

    async def job(fetcher: Fetcher) -> list[FetchResult]:
        finished: list[FetchResult] = []

        async def fetch() -> None:
            finished.append(await fetcher.fetch(blog_server.url("/slow")))

        async def watch() -> None:
            # A fetch is counted finished before its slot can start the next one, so more
            # than two in flight at any look would be a third request let through early.
            deadline = time.monotonic() + 60
            while len(finished) < 6 and time.monotonic() < deadline:
                in_flight.append(blog_server.count("/slow") - len(finished))
                await asyncio.sleep(0.01)

        await asyncio.gather(*(fetch() for _ in range(6)), watch())
        return finished

    started = time.monotonic()
    results = run_with(FetchSettings(per_host=2), job)
    took = time.monotonic() - started
    assert all(r.ok for r in results) and len(results) == 6
    assert max(in_flight) == 2, in_flight
    assert took >= 1.4  # three rounds of 0.5 s


def test_injected_client_is_used_and_left_open(blog_server: BlogServer) -> None:

    async def main() -> tuple[FetchResult, bool]:
        async with httpx.AsyncClient(follow_redirects=True) as client:
            async with Fetcher(client=client) as fetcher:
                blog_server.override("/old", status=301, headers={"Location": "/feed/"})
                result = await fetcher.fetch(blog_server.url("/old"))
            return result, client.is_closed

    result, closed = asyncio.run(main())
    assert result.permanent_url == blog_server.url("/feed/")  # redirects still manual
    assert not closed


def test_global_limit_spans_hosts(blog_server: BlogServer) -> None:
    # 127.0.0.1 and localhost are two hosts to the per-host limit but share the global one.
    blog_server.override("/slow", drip=(4, 0.1), repeat=2)
    urls = [blog_server.url("/slow"), f"http://localhost:{blog_server.port}/slow"]

    async def job(fetcher: Fetcher) -> list[FetchResult]:
        results = await asyncio.gather(*(fetcher.fetch(url) for url in urls))
        assert fetcher._hosts == {}  # per-host semaphores are dropped once unused
        return results

    started = time.monotonic()
    results = run_with(FetchSettings(max_connections=1), job)
    took = time.monotonic() - started
    assert [r.error for r in results] == [None, None]
    assert took >= 0.6  # one after the other: two answers of 0.3 s each


def test_a_broken_answer_is_logged_without_the_feeds_secrets(
        blog_server: BlogServer, caplog: pytest.LogCaptureFixture) -> None:
    """aiohttp's error for a malformed answer carries the request: its URL (a token in the
    query) and its headers (the Basic credentials of `user:password@`). `-v` must show
    neither."""
    blog_server.override("/broken", headers={"Content-Length": "nonsense"}, body=b"x")
    url = blog_server.url("/broken?token=SECRET123").replace("://", "://reader:hunter22@")
    with caplog.at_level(logging.DEBUG, logger="notifier"):
        result = get(url)
    assert result.error == "the server broke the HTTP protocol or closed the connection early"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "/broken?token=" in logged and "Content-Length" in logged  # still says what broke
    assert "SECRET123" not in logged and "hunter22" not in logged
    basic = base64.b64encode(b"reader:hunter22").decode()
    assert basic not in logged


def test_transport_errors_are_described_without_urls() -> None:
    settings = FetchSettings()
    url = "https://feeds.example.org/x?token=secret"
    dns = httpx.ConnectError("[Errno -2] Name or service not known")
    dns.__cause__ = socket.gaierror(-2, "Name or service not known")
    assert describe_transport_error(dns, url, settings) == (
        "DNS lookup failed for host feeds.example.org"
    )
    refused = httpx.ConnectError("All connection attempts failed")
    refused.__cause__ = OSError("All connection attempts failed")
    refused.__cause__.__context__ = ExceptionGroup("x", [ConnectionRefusedError(111, "no")])
    assert describe_transport_error(refused, url, settings) == "connection refused"
    assert describe_transport_error(httpx.ConnectTimeout("t"), url, settings) == (
        "could not connect within 10 s"
    )
    assert describe_transport_error(httpx.ReadTimeout("t"), url, settings) == (
        "timed out after 20 s"
    )
    closed = httpx.RemoteProtocolError("Server disconnected without sending a response.")
    assert "token" not in describe_transport_error(closed, url, settings)


def test_private_networks_can_be_blocked(blog_server: BlogServer) -> None:
    blocked = FetchSettings(block_private=True)
    literal = get(blog_server.url("/feed/"), blocked)
    assert literal.status is None and literal.body is None
    assert literal.error == "127.0.0.1 is a private or local address; " \
        "http.block_private_networks is on"
    named = get(f"http://localhost:{blog_server.port}/feed/", blocked)
    assert named.error is not None and "local address" in named.error
    assert blog_server.count("/feed/") == 0
    assert get(blog_server.url("/feed/")).ok  # off by default


def test_private_resolver_drops_internal_addresses() -> None:
    from notifier.http1 import PrivateAddressBlocked, resolve

    with pytest.raises(PrivateAddressBlocked, match="localhost resolves only to private"):
        asyncio.run(resolve("localhost", 80, block_private=True))
    assert asyncio.run(resolve("localhost", 80))  # without the block, as they are


def test_a_name_that_resolves_to_a_private_address_is_refused(blog_server: BlogServer) -> None:
    """The check by name (`localhost`) is not the only one: any name is resolved, and the
    connection goes only to the public addresses found, so a private one is never asked."""
    name = socket.gethostname()
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(name, None)}
    except OSError:
        pytest.skip("this machine's name does not resolve")
    if any(ipaddress.ip_address(a.split("%")[0]).is_global for a in addresses):
        pytest.skip("this machine's name resolves to a public address")
    result = get(f"http://{name}:{blog_server.port}/feed/", FetchSettings(block_private=True))
    assert result.status is None
    assert result.error == (f"{name.lower()} resolves only to private or local addresses; "
                            "http.block_private_networks is on")
    assert result.error_kind is FailureKind.REFUSED
    assert blog_server.count("/feed/") == 0


class _SlowFeeds(ThreadedHTTPService):
    """One host whose every feed answers after `delay` seconds: a blog far away."""

    thread_name = "slow-feeds"
    delay = 0.3

    class handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

        def do_GET(self) -> None:
            owner = cast(_SlowFeeds, cast(OwnedServer, self.server).owner)
            with owner.lock:
                owner.paths.append(self.path)
            owner._stopping.wait(owner.delay)
            body = atom(2)
            self.send_response(200)
            self.send_header("Content-Type", "application/atom+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(OSError):  # a fetch given up on
                self.wfile.write(body)

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.paths: list[str] = []


def _retrieve_behind_one_slow_host(tmp_path: Path, server: _SlowFeeds, count: int,
                                   http: dict[str, int], budget: float) -> list[Polled]:
    """Feeds 1..`count` of `server` retrieved at once by a poller with `http` settings and
    a poll budget of `budget` seconds."""
    config_path = tmp_path / "notifier.yaml"
    config_path.write_text(yaml.safe_dump({
        "state": "sqlite:///state.db", "channels": {"out": {"type": "console"}},
        "http": http,
        "subscriptions": [{"name": "q", "url": f"{server.origin}/feed/0/",
                           "notify": ["out"]}]}), encoding="utf-8")
    config = load_config(config_path, {})
    feeds = [FeedState(id=n, url=f"{server.origin}/feed/{n}/", title="", api_root=None,
                       etag=None, last_modified=None, body_hash=None, interval=600.0,
                       next_due=0.0, last_polled=None, last_status=None,
                       last_failure=None, error_count=0) for n in range(1, count + 1)]

    async def drive() -> list[Polled]:
        pool = ParsePool(workers=1)
        store = Store(config.state_url())
        db = StoreThread()
        try:
            async with Fetcher(fetch_settings(config)) as fetcher:
                poller = Poller(config, store, fetcher, db, parser=pool)
                poller.feed_budget = budget
                polled = await asyncio.gather(*(
                    poller._retrieve(feed, rescan=False, conditional=False, expect=None,
                                     proceed=lambda: True) for feed in feeds))
                await poller.close()
                return list(polled)
        finally:
            pool.shutdown()
            db.close()
            store.close()

    return asyncio.run(drive())


def test_feeds_queued_behind_a_slow_host_are_not_failed_for_time(tmp_path: Path) -> None:
    """Raising `http.concurrency` claims more feeds at once, and the feeds of one blog queue
    for its `per_host` slots. That wait is politeness, not the feed's slowness: the feed's
    time budget must not run out there (it did: the last of a large claim on one slow host
    failed "fetch and parse took more than 40 s" on every cycle, and were asked again)."""
    with _SlowFeeds() as server:
        # Each answer takes 0.3 s and one goes at a time: the last of twelve waits 3.3 s
        # for its slot, well over its budget.
        polled = _retrieve_behind_one_slow_host(
            tmp_path, server, 12, {"concurrency": 20, "per_host": 1}, budget=2.0)
        assert [p.failure for p in polled] == [None] * len(polled)
        assert all(p.parsed is not None and len(p.parsed.entries) == 2 for p in polled)
        assert sorted(server.paths) == sorted(f"/feed/{n}/" for n in range(1, 13))


def test_a_poll_budget_counts_from_the_slot_on(tmp_path: Path) -> None:
    """The budget starts when the request gets its slot (the wait before is not counted,
    see above): a server slower than the budget still fails every poll for time, the first
    as well as those that queued behind it."""
    with _SlowFeeds() as server:
        polled = _retrieve_behind_one_slow_host(  # each answer takes 0.3 s
            tmp_path, server, 3, {"per_host": 1}, budget=0.15)
        assert [p.failure.kind if p.failure else None for p in polled] == \
            [FailureKind.TIMEOUT] * len(polled)
        assert all("took more than 0.15 s" in str(p.failure) for p in polled)
        assert sorted(server.paths) == sorted(f"/feed/{n}/" for n in range(1, 4))


def test_discoveries_queued_behind_a_slow_host_are_not_failed_for_time(
        tmp_path: Path) -> None:
    """A first run discovers every subscription at once, and those of one blog queue for its
    `per_host` slots. As for a poll, that wait is politeness: it must not count against the
    discovery's budget (it did: the later subscriptions of a large blog failed "discovery
    took more than 2 s" on the first run, and waited for their back-off)."""
    with _SlowFeeds() as server:
        config_path = tmp_path / "notifier.yaml"
        config_path.write_text(yaml.safe_dump({
            "state": "sqlite:///state.db", "channels": {"out": {"type": "console"}},
            # A budget of 2 s; the last of twelve answers of 0.3 s waits 3.3 s for its slot.
            "http": {"per_host": 1, "timeout": "1s"},
            "subscriptions": [{"name": f"s{n}", "url": f"{server.origin}/feed/{n}/",
                               "notify": ["out"]} for n in range(1, 13)]}), encoding="utf-8")
        config = load_config(config_path, {})

        async def drive() -> Plan:
            store = Store(config.state_url())
            store.migrate()
            db = StoreThread()
            try:
                async with Fetcher(fetch_settings(config)) as fetcher:
                    planner = Planner(config, store, fetcher, db, time.time, "node-a")
                    try:
                        return await asyncio.wait_for(planner.plan(force=True), 60)
                    finally:
                        await planner.close()
            finally:
                db.close()
                store.close()

        plan = asyncio.run(drive())
    assert [f.reason.message for f in plan.failures] == []
    assert len(plan.feed_subs) == 12

