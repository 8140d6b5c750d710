"""notifier's own HTTP/1.1 for feeds (`notifier/http1.py`) where the other fetch tests do not
reach: TLS (a trusted and an untrusted certificate), IPv6 loopback, a connection kept for
many GETs, and the pool's bound on idle connections. Real servers on loopback only.

The wire-level cases (framing, keep-alive, malformed answers) are in test_fetch_wire.py and
the fetcher's own behaviour (redirects, limits, validators) in test_fetch.py.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from notifier.failures import FailureKind
from notifier.fetch import Fetcher, FetchSettings
from notifier.http1 import Pool
from notifier.models import FetchResult
from tests.support.smtp_server import make_certificate
from tests.support.threaded import OwnedServer, ThreadedHTTPService

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
