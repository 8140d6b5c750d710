"""notifier's own HTTP/1.1 for feeds (`notifier/http1.py`) where the other fetch tests do not
reach: TLS (a trusted and an untrusted certificate), IPv6 loopback, a connection kept for
many GETs, and the pool's bound on idle connections. Real servers on loopback only.

The wire-level cases (framing, keep-alive, malformed answers) are in test_fetch_wire.py and
the fetcher's own behaviour (redirects, limits, validators) in test_fetch.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from notifier.failures import FailureKind
from notifier.fetch import (
    Fetcher,
    FetchSettings,
    Withdrawn,
    describe_transport_error,
    transport_failure_kind,
)
from notifier.http1 import PAUSE_AT, Pool, ProtocolError
from notifier.models import FetchResult
from tests.support.raw_http import RawHTTPServer, Reply, hang_up, response
from tests.support.smtp_server import make_certificate
from tests.support.threaded import OwnedServer, ThreadedHTTPService

OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
OK_HEAD_PART = b"HTTP/1.1 200 OK\r\nContent-Len"
FEED = b"<?xml version='1.0'?><rss version='2.0'><channel><title>t</title></channel></rss>"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: OwnedServer

    def do_GET(self) -> None:
        owner: FeedHost = self.server.owner
        with owner.lock:
            owner.requests.append((self.client_address[1], self.path,
                                   self.headers.get("Host", "")))
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(FEED)))
        self.end_headers()
        self.wfile.write(FEED)

    def log_message(self, format: str, *args: object) -> None:
        pass


class FeedHost(ThreadedHTTPService):
    """One small feed at every path, over TLS when given a certificate; records each
    request's client port (one per connection), path and Host header."""

    handler = _Handler
    thread_name = "http1-test"

    def __init__(self, certificate: tuple[Path, Path] | None = None,
                 host: str = "127.0.0.1") -> None:
        super().__init__()
        self.host = host
        self.lock = threading.Lock()
        self.requests: list[tuple[int, str, str]] = []
        self._certificate = certificate

    def _bound(self) -> None:
        scheme = "https" if self._certificate else "http"
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.origin = f"{scheme}://{shown}:{self.port}"

    def start(self) -> FeedHost:
        if ":" in self.host:
            OwnedServer.address_family = socket.AF_INET6
        try:
            super().start()
        finally:
            OwnedServer.address_family = socket.AF_INET
        if self._certificate is not None and self._httpd is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self._certificate)
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        return self

    def connections(self) -> int:
        with self.lock:
            return len({port for port, _, _ in self.requests})


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    made = make_certificate(tmp_path)
    if made is None:
        pytest.skip("no openssl command to make a certificate")
    return made


@pytest.fixture
def tls_host(certificate: tuple[Path, Path]) -> Iterator[FeedHost]:
    with FeedHost(certificate) as host:
        yield host


def fetch_all(urls: list[str], settings: FetchSettings | None = None) -> list[FetchResult]:
    async def main() -> list[FetchResult]:
        async with Fetcher(settings or FetchSettings(per_host=1)) as fetcher:
            return [await fetcher.fetch(url) for url in urls]

    return asyncio.run(main())


def test_an_https_feed_with_a_trusted_certificate_is_fetched_over_one_connection(
        tls_host: FeedHost, certificate: tuple[Path, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The system's trust store, as OpenSSL reads it, pointed at this test's own CA.
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    results = fetch_all([f"{tls_host.origin}/feed/{n}" for n in range(3)])
    assert [r.status for r in results] == [200, 200, 200]
    assert results[0].body == FEED
    assert tls_host.connections() == 1  # one handshake, then keep-alive


def test_an_untrusted_certificate_is_a_failure_that_says_so(tls_host: FeedHost) -> None:
    [result] = fetch_all([f"{tls_host.origin}/feed/"])
    assert result.status is None and result.body is None
    assert result.error is not None
    assert result.error.startswith("TLS certificate of 127.0.0.1 not trusted"), result.error
    assert result.error_kind is FailureKind.NETWORK
    assert tls_host.requests == []  # nothing was asked over a connection not trusted


def test_a_plain_http_client_against_a_tls_port_fails_as_data(tls_host: FeedHost) -> None:
    [result] = fetch_all([tls_host.origin.replace("https://", "http://") + "/feed/"],
                         FetchSettings(per_host=1, timeout=3.0))
    assert result.status is None and result.error is not None
    assert result.error_kind in (FailureKind.NETWORK, FailureKind.TIMEOUT)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_an_ipv6_literal_is_asked_with_its_brackets_in_host() -> None:
    with FeedHost(host="::1") as host:
        [result] = fetch_all([f"{host.origin}/feed/?a=1"])
        assert result.status == 200 and result.body == FEED
        assert host.requests[0][1:] == ("/feed/?a=1", f"[::1]:{host.port}")


def test_idle_connections_beyond_the_bound_are_closed_oldest_first() -> None:
    hosts = [FeedHost().start() for _ in range(3)]
    try:
        async def main() -> list[int]:
            pool = Pool(connect_timeout=5.0, max_idle=2)
            try:
                for host in hosts:  # one connection each, all left idle
                    async with pool.get(f"{host.origin}/feed/", {}) as reply:
                        assert [c async for c in reply.chunks()] == [FEED]
                for host in reversed(hosts):  # again: the first's was closed to keep two
                    async with pool.get(f"{host.origin}/feed/", {}) as reply:
                        assert reply.status == 200
                        assert [c async for c in reply.chunks()] == [FEED]
            finally:
                pool.close()
            return [host.connections() for host in hosts]

        assert asyncio.run(main()) == [2, 1, 1]
    finally:
        for host in hosts:
            host.stop()


def _open_fds() -> int:
    """Open sockets of this process (uvloop opens a file of its own on first use)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor, closed by now
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


async def _open_fds_settled(expected: int) -> int:
    """Open file descriptors once closing ones are gone (a transport closes on the loop's
    next turns, the raw server's side once it reads the end): waits up to 3 s for
    `expected`."""
    for _ in range(60):
        if _open_fds() == expected:
            break
        await asyncio.sleep(0.05)
    return _open_fds()


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"),
                                reason="counts file descriptors in /proc")


@needs_proc
def test_a_connection_in_use_when_the_fetcher_closes_is_closed_when_its_answer_ends() -> None:
    """A daemon that stops (or reloads) closes its fetcher while fetches are under way;
    a connection that was in use then must not go back to the closed pool, where nothing
    would ever close it: months of reloads would leak a socket per fetch in flight."""
    feed = response(body=b"<rss/>").raw
    slow = Reply(feed, drip=(len(feed) // 2 + 1, 0.3))  # half now, the rest in 0.3 s

    async def main() -> tuple[int, int, FetchResult]:
        with RawHTTPServer([slow]) as server:
            before = _open_fds()
            fetcher = Fetcher(FetchSettings(timeout=5.0))
            task = asyncio.create_task(fetcher.fetch(server.url("/feed")))
            await asyncio.sleep(0.15)  # connected, half of the answer read
            await fetcher.aclose()
            result = await task
            return before, await _open_fds_settled(before), result

    before, after, result = asyncio.run(main())
    assert (result.status, result.body) == (200, b"<rss/>")
    assert after == before


@needs_proc
def test_failing_fetches_of_every_kind_leave_no_socket_open() -> None:
    """Months of polling hostile servers: every way a fetch can end early (time limit in
    the head or the body, the caller giving up, a cut or reset answer, a body over the cap,
    a request called off, a stale connection retried, a refused port) must close what it
    opened. Counted with the servers still up, so that no server's close hides a leak."""
    ok = response(body=b"<rss/>")
    routes = {
        "/head-stall": Reply(OK_HEAD_PART, stall=0.5),
        "/body-stall": Reply(OK_HEAD + b"<rss>", stall=0.5),
        "/cut": Reply(OK_HEAD + b"<rss>", close=True),
        "/reset": Reply(OK_HEAD + b"<rss>", reset=True, stall=0.05),
        "/big": response(body=b"x" * 200_000),
        "/garbage": Reply(b"SSH-2.0-OpenSSH_9.2p1\r\n", close=True),
        "/moved": response("302 Found", b"m" * 200_000, [("Location", "/ok")]),
        "/304-with-body": Reply(b"HTTP/1.1 304 Not Modified\r\n\r\nsurplus"),
        "/ok": ok,
    }
    with socket.socket() as closed_port:
        closed_port.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{closed_port.getsockname()[1]}/feed"

    async def main() -> tuple[int, int, list[str | None]]:
        with RawHTTPServer([ok, hang_up(), ok] * 3, routes) as server:
            before = _open_fds()
            errors: list[str | None] = []
            settings = FetchSettings(timeout=0.3, max_bytes=100_000)
            async with Fetcher(settings) as fetcher:
                for _ in range(3):
                    for path in [*routes, "/then", "/stale"]:  # one on a dead connection
                        errors.append((await fetcher.fetch(server.url(path))).error)
                    with pytest.raises(TimeoutError):  # the caller gives up
                        await asyncio.wait_for(fetcher.fetch(server.url("/head-stall")), 0.1)
                    # yes for the slot, no once connected
                    proceed = iter([True, False]).__next__
                    with pytest.raises(Withdrawn):
                        await fetcher.fetch(server.url("/ok"), proceed=proceed)
                    errors.append((await fetcher.fetch(refused)).error)
            return before, await _open_fds_settled(before), errors

    before, after, errors = asyncio.run(main())
    broken = "the server broke the HTTP protocol or closed the connection early"
    assert errors == ["timed out after 0.3 s", "timed out after 0.3 s", broken,
                      "connection reset by the server", "body larger than 100000 bytes",
                      broken, None, None, None, None, None, "connection refused"] * 3
    assert after == before


@needs_proc
def test_a_server_closing_an_idle_connection_is_seen_after_an_answer_that_paused_reading(
        ) -> None:
    """An answer larger than the read buffer pauses reading until the caller catches up;
    read to its end from the buffer alone, its connection went back to the pool paused.
    Paused, it never saw its server close it: the socket stayed open (CLOSE_WAIT) until
    the next GET to that origin found it dead, or for ever for an origin asked no more."""
    big = response(body=b"x" * (PAUSE_AT + 50_000))
    closing = Reply(big.raw, close=True, stall=0.3)

    async def main() -> tuple[int, int, int]:
        with RawHTTPServer([closing]) as server:
            before = _open_fds()
            async with Pool(connect_timeout=5.0) as pool:
                async with pool.get(server.url("/feed"), {}) as reply:
                    await asyncio.sleep(0.2)  # the whole answer has arrived meanwhile
                    size = sum([len(c) async for c in reply.chunks()])
                return before, await _open_fds_settled(before), size

    before, after, size = asyncio.run(main())
    assert size == PAUSE_AT + 50_000
    assert after == before


@needs_proc
def test_an_idle_connection_whose_server_sends_anything_is_closed_at_once() -> None:
    """Bytes on an idle connection answer nothing asked (a 304 followed by a body, a
    flood): kept, they would be read as the next answer, and a flood would fill a buffer
    per idle connection. The connection is closed as they come, not at its next use."""
    head = b'HTTP/1.1 304 Not Modified\r\nETag: "e"\r\n\r\n'
    late = Reply(head + b"<rss>a body after all</rss>", drip=(len(head), 0.2))

    async def main() -> tuple[int, int, int]:
        with RawHTTPServer([late]) as server:
            before = _open_fds()
            async with Pool(connect_timeout=5.0) as pool:
                async with pool.get(server.url("/feed"), {}) as reply:
                    status = reply.status
                return before, await _open_fds_settled(before), status

    before, after, status = asyncio.run(main())
    assert status == 304
    assert after == before


@pytest.mark.parametrize(
    "cause",
    [BrokenPipeError(32, "Broken pipe"), TimeoutError(110, "Connection timed out"),
     OSError(113, "No route to host"), ConnectionAbortedError(103, "Software caused abort")],
    ids=["broken-pipe", "tcp-timeout", "no-route", "aborted"],
)
def test_a_connection_lost_to_the_network_is_not_blamed_on_the_server(
        cause: OSError) -> None:
    """The network failing under an answer (the kernel's own timeout, a route gone) is not
    a server breaking HTTP: aiohttp said "connection lost", and so does the status."""
    lost = ProtocolError("connection lost before the answer was complete")
    lost.__cause__ = cause
    settings = FetchSettings()
    assert describe_transport_error(lost, "https://blog.example/feed", settings) == \
        "connection lost"
    assert transport_failure_kind(lost) is FailureKind.NETWORK
    plain = ProtocolError("a malformed chunk size")
    assert describe_transport_error(plain, "https://blog.example/feed", settings) == \
        "the server broke the HTTP protocol or closed the connection early"


class _SilentTLSServer:
    """Over TLS, answers the first request with half an answer, then neither reads nor
    closes (until stopped): a hostile or stuck server."""

    def __init__(self, certificate: tuple[Path, Path]) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(*certificate)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(5.0)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> _SilentTLSServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10.0)
        self._listener.close()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            raw, _ = self._listener.accept()
            raw.settimeout(5.0)
            with self._context.wrap_socket(raw, server_side=True) as conn:
                head = b""
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    head += conn.recv(4096) or b"\r\n\r\n"
                conn.sendall(OK_HEAD + b"<rss>")
                self._stop.wait(10.0)


@needs_proc
def test_a_tls_connection_given_up_on_is_closed_at_once_not_after_a_goodbye(
        certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """A graceful TLS close waits up to 30 s for the server's close_notify; a server that
    stopped answering never sends it, so every fetch given up on (time limit, size cap)
    held its socket 30 s more: with many such feeds, hundreds of sockets at once. A
    connection given up on is dropped at once (RFC 9112 9.8 lets a client not wait)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))

    async def main() -> tuple[int, int, str | None]:
        with _SilentTLSServer(certificate) as server:
            before = _open_fds()
            async with Fetcher(FetchSettings(timeout=0.5)) as fetcher:
                result = await fetcher.fetch(f"https://127.0.0.1:{server.port}/feed")
                # the server's own socket stays open: only the client's must go
                return before + 1, await _open_fds_settled(before + 1), result.error

    expected, after, error = asyncio.run(main())
    assert error == "timed out after 0.5 s"
    assert after == expected


def test_a_tls_handshake_that_never_ends_is_a_connect_timeout() -> None:
    """A port that accepts and never answers the handshake: the connect limit ends it,
    described and classed as under aiohttp, long before the fetch's own limit."""
    with RawHTTPServer() as server:  # reads the ClientHello as a request head, waits
        [result] = fetch_all([server.url("/feed").replace("http://", "https://")],
                             FetchSettings(timeout=5.0, connect_timeout=0.3))
    assert (result.status, result.error) == (None, "could not connect within 0.3 s")
    assert result.error_kind is FailureKind.TIMEOUT
    assert result.elapsed < 2.0
