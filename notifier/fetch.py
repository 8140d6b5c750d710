"""The fetch stage: one polite, bounded HTTP GET per feed, with failures returned as data.

url -> [per-host slot] -> [global slot] -> GET (conditional) -> redirects, each hop checked
-> status -> streamed body, decoded under a size cap -> FetchResult

Hostile or broken servers are the normal case at the scale of thousands of feeds, so every
fetch is bounded three ways: total wall time (a server dripping one byte at a time never
trips a per-read timeout), decoded size (gzip is decoded here with a bounded zlib object,
because a library's decoder inflates a whole network read at once), and redirect count.
Nothing network-related raises: one feed cannot stop a batch.

Feeds are fetched over `notifier.http1`, the project's own HTTP/1.1 connection pool: at
thousands of feeds per cycle the request and response layers of a general client cost more
CPU than the feeds themselves (CPU per 304 on a 2-core machine, benchmarks/conditional_get.py:
a bare aiohttp session about 0.1 ms, this whole fetcher over http1 about 0.065 ms). An
injected httpx client (tests, another transport) goes through the same checks and limits.

URLs can carry tokens (private feeds, webhook-like links), so nothing here logs a query
string; httpx's own INFO request log is a library's, shown with `-vv` only and with its URLs
cut to their host (`notifier.logsetup`).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import functools
import ipaddress
import logging
import re
import socket
import ssl
import sys
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from notifier import __version__, redact
from notifier.budget import Budget, deadline, pause_budget
from notifier.errors import NotifierError
from notifier.failures import FailureKind
from notifier.http1 import (
    PLAIN_ORIGIN,
    ConnectTimeout,
    Pool,
    PrivateAddressBlocked,
    ProtocolError,
    TransportError,
    content_length,
    sendable,
)
from notifier.httpheaders import parse_retry_after
from notifier.models import FetchResult

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

DEFAULT_USER_AGENT = f"notifier/{__version__} (self-hosted feed and comment notifier)"
FEED_ACCEPT = (
    "application/atom+xml, application/rss+xml, application/xml;q=0.9, text/xml;q=0.8, "
    "text/html;q=0.7, */*;q=0.5"
)
# Only codings decoded here under the size cap; clients add br/zstd when their packages
# happen to be installed, and those would be decoded without a bound.
ACCEPT_ENCODING = "gzip, deflate"
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
PERMANENT_REDIRECT_CODES = frozenset({301, 308})
RETRY_AFTER_CODES = frozenset({429, 503})
# Reading a small redirect or error body lets the connection go back to the pool; anything
# bigger is not worth the wait, so the connection is dropped instead.
DRAIN_LIMIT = 64 * 1024
READ_CHUNK = 64 * 1024
URL_CACHE = 32_768
"""URLs whose checks are remembered: the same feeds come back every cycle, and splitting
their URLs again was a tenth of the CPU of an unchanged poll."""


class Withdrawn(NotifierError):
    """A request its caller called off while it waited for a slot or a connection: it was
    not sent.

    A node that was paused (SIGSTOP, a long GC) while its fetches queued wakes up after
    another node took the feed over; sending then would ask the server twice."""


class Gate(Protocol):
    """What a request waits for once its slot is free (`Fetcher.fetch`'s `gate`): the
    caller's back-pressure, e.g. the parse pool when the bodies it has not parsed yet are
    too many (`ParsePool.room`). Waiting there holds the slot, so all fetching pauses."""

    def crowded(self) -> bool: ...

    async def room(self) -> None: ...


class TargetBlocked(NotifierError):
    """Raised by `_check_target` when a URL must not be fetched (its text is the reason)."""


@dataclass(frozen=True)
class FetchSettings:
    """Limits for one fetcher; the defaults follow Miniflux (20 s, 15 MiB decoded)."""

    user_agent: str = DEFAULT_USER_AGENT
    timeout: float = 20.0  # whole fetch, all hops and the body; queueing for a slot excluded
    connect_timeout: float = 10.0
    max_bytes: int = 15 * 1024 * 1024  # decoded
    max_connections: int = 100
    per_host: int = 2
    max_redirects: int = 5
    block_private: bool = False
    """Refuse loopback, private, link-local and other non-public addresses (SSRF)."""


def _check_target(url: str, block_private: bool = False) -> None:
    """Run before every hop: refuse a literal non-public address when asked to.

    It sees each redirect target, not only the first URL, because a public feed can redirect
    to an internal address. Host names are checked where they are resolved
    (`http1.resolve`), so a name that resolves to an internal address, or starts to
    between two requests, is refused too. Raise `TargetBlocked` to refuse; the fetch then
    fails as data.
    """
    if not block_private:
        return
    host = (urlsplit(url).hostname or "").strip("[]")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if host == "localhost" or host.endswith(".localhost"):
            raise TargetBlocked(f"{host} is a local address; http.block_private_networks "
                                "is on") from None
        return
    if not address.is_global:
        raise TargetBlocked(f"{host} is a private or local address; "
                            "http.block_private_networks is on")


def split_credentials(url: str) -> tuple[str, str | None]:
    """The URL without `user:password@`, and the Basic `Authorization` value it implied.

    Sent as a header by us, not left in the URL: the transport refuses a URL with userinfo
    beside an explicit Authorization header, and logs show URLs. A redirect keeps the
    credentials only when its Location is relative (the same origin), as browsers do.
    """
    if "@" not in url:  # nearly every feed: no need to split it (once per request)
        return url, None
    try:
        parts = urlsplit(url)
    except ValueError:
        return url, None
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
    return urlunsplit(parts._replace(netloc=hostport)), f"Basic {token}"


def _format_size(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"


@functools.lru_cache(maxsize=URL_CACHE)
def host_key(url: str) -> str:
    """Politeness is per server name; ports of one host share its limit."""
    plain = _PLAIN_URL.match(url)  # nearly every feed: no need to split it
    if plain is not None:
        return plain[2].lower()
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def _exception_chain(exc: BaseException) -> list[BaseException]:
    """The exception, its causes and the members of any exception group, breadth first."""
    seen: set[int] = set()
    queue: list[BaseException] = [exc]
    found: list[BaseException] = []
    while queue and len(found) < 50:
        current = queue.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        found.append(current)
        if isinstance(current, BaseExceptionGroup):
            queue.extend(current.exceptions)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                queue.append(linked)
    return found


def transport_failure_kind(exc: BaseException) -> FailureKind:
    """The kind of a transport error, read like `describe_transport_error` reads its reason:
    an operating-system cause (refused, reset, DNS, TLS) first, then the exception's class."""
    chain = _exception_chain(exc)
    if any(isinstance(cause, PrivateAddressBlocked) for cause in chain):
        return FailureKind.REFUSED
    if any(isinstance(cause, OSError) and not isinstance(cause, TimeoutError)
           for cause in chain[1:]):
        return FailureKind.NETWORK
    if isinstance(exc, ConnectTimeout) or _is_httpx_timeout(exc):
        return FailureKind.TIMEOUT
    if isinstance(exc, ValueError):
        return FailureKind.REFUSED
    return FailureKind.NETWORK


def describe_transport_error(exc: BaseException, url: str, settings: FetchSettings) -> str:
    """A short reason for a person reading a feed's status, never a stack trace or a URL."""
    host = host_key(url) or "?"
    chain = _exception_chain(exc)
    for cause in chain:
        if isinstance(cause, PrivateAddressBlocked):
            return str(cause)
        if isinstance(cause, socket.gaierror):
            return f"DNS lookup failed for host {host}"
    for cause in chain:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate of {host} not trusted: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake with {host} failed"
        if isinstance(cause, ConnectionResetError):
            return "connection reset by the server"
    if isinstance(exc, TransportError):
        return _describe_transport(exc, chain, host, settings)
    if isinstance(exc, ValueError):
        return "invalid request (a URL or header that cannot be sent)"
    if isinstance(exc, _DecodeFailed):
        return "could not decode the compressed body"
    return _describe_httpx_error(exc, host, settings) or \
        f"network error ({type(exc).__name__})"


def _httpx_loaded() -> bool:
    """Only an injected httpx client (or a channel) raises httpx's errors, and it imported
    httpx; a run that fetches through `http1` alone does not pay for importing it."""
    return "httpx" in sys.modules


def _is_httpx_timeout(exc: BaseException) -> bool:
    if not _httpx_loaded():
        return False
    import httpx
    return isinstance(exc, httpx.TimeoutException)


def _describe_httpx_error(exc: BaseException, host: str, settings: FetchSettings) -> str | None:
    if not _httpx_loaded():
        return None
    import httpx
    if isinstance(exc, httpx.ConnectTimeout):
        return f"could not connect within {settings.connect_timeout:g} s"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out after {settings.timeout:g} s"
    if isinstance(exc, httpx.UnsupportedProtocol):
        return "unsupported URL scheme"
    if isinstance(exc, httpx.ConnectError):
        return f"could not connect to {host}"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the server broke the HTTP protocol or closed the connection early"
    if isinstance(exc, httpx.DecodingError):
        return "could not decode the compressed body"
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return "connection lost"
    return None


def _describe_transport(exc: TransportError, chain: list[BaseException], host: str,
                        settings: FetchSettings) -> str:
    if isinstance(exc, ConnectTimeout):
        return f"could not connect within {settings.connect_timeout:g} s"
    if isinstance(exc, ProtocolError):
        # The network failing under an answer (a route gone, the kernel's own timeout) is
        # not the server breaking HTTP; aiohttp said "connection lost" too.
        if any(isinstance(cause, OSError) for cause in chain[1:]):
            return "connection lost"
        return "the server broke the HTTP protocol or closed the connection early"
    return f"could not connect to {host}"


class _BodyTooLarge(Exception):
    pass


class _DecodeFailed(Exception):
    """A gzip or deflate body that does not inflate."""


class _BoundedDecoder:
    """Inflates gzip/deflate without ever producing more than `limit` + 1 bytes.

    zlib's `max_length` keeps a small bomb (a few KiB expanding a thousandfold per read)
    from allocating the whole expansion before the size check runs.
    """

    def __init__(self, encoding: str, limit: int) -> None:
        self._encoding = encoding
        self._limit = limit
        self._produced = 0
        self._first = True
        self._zlib = self._new()

    def _new(self, raw_deflate: bool = False) -> zlib._Decompress:
        if self._encoding == "gzip":
            return zlib.decompressobj(zlib.MAX_WBITS | 16)
        return zlib.decompressobj(-zlib.MAX_WBITS if raw_deflate else zlib.MAX_WBITS)

    def decode(self, data: bytes) -> bytes:
        if self._zlib.eof:
            return b""  # trailing garbage after the stream, as browsers ignore it
        try:
            return self._inflate(data)
        except zlib.error:
            if self._encoding == "deflate" and self._first:
                # Some servers send raw deflate without the zlib header (RFC 9110 says not to).
                self._zlib = self._new(raw_deflate=True)
                self._first = False
                return self._inflate(data)
            raise
        finally:
            self._first = False

    def _inflate(self, data: bytes) -> bytes:
        parts: list[bytes] = []
        pending = data
        while pending and not self._zlib.eof:
            room = self._limit - self._produced + 1
            out = self._zlib.decompress(pending, room)
            self._produced += len(out)
            if self._produced > self._limit:
                raise _BodyTooLarge
            parts.append(out)
            pending = self._zlib.unconsumed_tail
        return b"".join(parts)


async def _read_body(headers: Mapping[str, str], chunks: AsyncIterator[bytes],
                     max_bytes: int) -> bytes:
    """The decoded body, raising `_BodyTooLarge` as soon as it passes `max_bytes`.

    `chunks` are the bytes as they came off the wire (content coding not undone)."""
    encoding = headers.get("content-encoding", "identity").strip().lower()
    decoder: _BoundedDecoder | None = None
    if encoding in ("", "identity"):
        declared = content_length(headers.get("content-length", ""))
        if declared is not None and declared > max_bytes:
            raise _BodyTooLarge
    elif encoding in ("gzip", "x-gzip", "deflate"):
        decoder = _BoundedDecoder("deflate" if encoding == "deflate" else "gzip", max_bytes)
    # A coding we did not ask for is passed on as it came; the size cap still holds.
    body = bytearray()
    async for chunk in chunks:
        try:
            data = decoder.decode(chunk) if decoder is not None else chunk
        except zlib.error as exc:
            raise _DecodeFailed(str(exc)) from exc
        body += data
        if len(body) > max_bytes:
            raise _BodyTooLarge
    return bytes(body)


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read a small unwanted body so the connection can be reused; give up on a big one."""
    read = 0
    async for chunk in chunks:
        read += len(chunk)
        if read > DRAIN_LIMIT:
            return


def _flatten_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Repeated headers joined with ", " under lower-case names, as RFC 9110 allows."""
    flat: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        flat[key] = f"{flat[key]}, {value}" if key in flat else value
    return flat


_PLAIN_URL = re.compile(PLAIN_ORIGIN + r"(?=[/?#]|\Z)")
"""A URL that starts plainly (`http1.PLAIN_ORIGIN`), whatever follows its host and port."""


@functools.lru_cache(maxsize=URL_CACHE)
def _url_problem(url: str) -> str | None:
    """Why a URL cannot be fetched at all, checked before each hop; None when fine.

    Nearly every feed URL is plain (`_PLAIN_URL`): said fine without splitting it, which
    was most of a first poll's checks (every poll of `run --once`, a daemon's first cycle).
    """
    plain = _PLAIN_URL.match(url)
    if plain is not None and (plain[3] is None or int(plain[3]) <= 65535):
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "invalid URL"
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return f"unsupported URL scheme {scheme or '(none)'!r}"
    if not parts.hostname:
        return "invalid URL (no host)"
    return None


def _resolve_location(base: str, location: str) -> str:
    """The next hop's URL; a malformed Location is left for `_url_problem` to reject."""
    try:
        target = urljoin(base, location.strip())
        return urlsplit(target)._replace(fragment="").geturl()
    except ValueError:
        return location


def _http_error(status: int) -> str:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    return f"HTTP {status} {reason}" if reason else f"HTTP {status}"


class _Slots:
    """A number of free slots and the requests waiting for one, first come first served.

    Not `asyncio.Semaphore`: a release hands its slot to the first waiter itself, so a
    waiter never wakes to find it taken, and nothing walks past waiters already woken (the
    semaphore's release looks at each of them, and each woken one removes itself from its
    queue): at 10,000 feeds and 50 slots, most requests of a claim wait here once."""

    __slots__ = ("free", "waiters")

    def __init__(self, size: int) -> None:
        self.free = size
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def take(self) -> bool:
        """A slot taken now, if one is free (none is while anyone waits: see `release`)."""
        if self.free > 0:
            self.free -= 1
            return True
        return False

    async def wait(self, loop: asyncio.AbstractEventLoop) -> None:
        """Until a release hands this request its slot."""
        waiter: asyncio.Future[None] = loop.create_future()
        self.waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            # Handed the slot just as it was called off: the slot goes on to the next.
            if waiter.done() and not waiter.cancelled():
                self.release()
            raise  # a cancelled waiter stays queued, passed over by `release`

    def release(self) -> None:
        waiters = self.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1


@dataclass
class _HostSlot:
    """One host's connection limit, shared by the fetches to it while any is in flight
    (`users`), then dropped."""

    slots: _Slots
    users: int = 0


@dataclass
class _Hop:
    """Mutable state of one fetch as it walks through redirects."""

    url: str
    all_permanent: bool = True
    redirects: int = 0
    spent: float = 0.0  # network seconds used so far, against the total timeout
    history: list[str] = field(default_factory=list)


class Fetcher:
    """Fetches URLs with global and per-host concurrency limits; one per daemon.

    Use as `async with Fetcher(settings) as fetcher:`. An injected httpx `client` is used
    as is (tests, or another transport) and is not closed here; without one, requests go
    through one `http1.Pool`, opened on first use (it must be made inside the loop).
    """

    def __init__(
        self, settings: FetchSettings | None = None, client: httpx.AsyncClient | None = None
    ) -> None:
        self.settings = settings or FetchSettings()
        self._client = client
        self._transport_errors: tuple[type[Exception], ...] = (
            TransportError, _DecodeFailed, ValueError)
        if client is not None:
            import httpx
            self._transport_errors += (httpx.HTTPError, httpx.InvalidURL)
        self._pool: Pool | None = None
        self._global = _Slots(self.settings.max_connections)
        self._no_host_slots = self.settings.per_host >= self.settings.max_connections
        self._hosts: dict[str, _HostSlot] = {}
        self._headers: dict[str, Mapping[str, str]] = {}

    def _plain_headers(self, accept: str) -> Mapping[str, str]:
        """A request's headers without validators, built once per `accept` (never changed
        in place: a request that adds to them copies them)."""
        headers = self._headers[accept] = {
            "User-Agent": self.settings.user_agent,
            "Accept": accept,
            "Accept-Encoding": ACCEPT_ENCODING,
        }
        return headers

    def _open_pool(self) -> Pool:
        """Opened at the first request; idle connections are kept for twice as many requests
        as may run at once: as many, and the hosts among the requests in flight change
        faster than their connections, so that a cycle over 10,000 feeds on 16 hosts opened
        a new connection for one request in 40 (one per request at any bound, on a new
        host, as before). Each hop runs under a `budget.deadline` of what is left of
        `settings.timeout`, so there is no per-read timer to set and cancel."""
        settings = self.settings
        self._pool = Pool(connect_timeout=settings.connect_timeout,
                          max_idle=2 * settings.max_connections,
                          block_private=settings.block_private)
        return self._pool

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str = FEED_ACCEPT,
        proceed: Callable[[], bool] | None = None,
        budget: asyncio.Timeout | None = None,
        gate: Gate | None = None,
    ) -> FetchResult:
        """GET `url`, following up to `max_redirects` redirects; never raises for I/O.

        `elapsed` counts network time only, not the wait for a free slot, so a long queue
        behind a slow host does not look like a slow feed, and queueing never times out:
        `budget`, the caller's deadline for the whole poll, stands still while it queues.
        Once the slot is free, while `gate` is crowded the request waits for its room (the
        budget still standing still): checked there, not before queueing, since thousands
        of requests queue at once. `proceed` is asked once the slot is free and again once
        the connection is open, just before each request goes out; if it says no, nothing
        is sent and `Withdrawn` is raised.
        """
        headers = self._headers.get(accept) or self._plain_headers(accept)
        # A validator stored before its control characters were cleaned on arrival cannot
        # be sent: asked without it, the feed answers in full and brings a clean one.
        if etag and not sendable(etag):
            etag = None
        if last_modified and not sendable(last_modified):
            last_modified = None
        if etag or last_modified:
            headers = dict(headers)
            if etag:
                headers["If-None-Match"] = etag
            if last_modified:
                headers["If-Modified-Since"] = last_modified
        hop = _Hop(url)  # not url=: a keyword makes the call build a dict (once per fetch)
        # The hops walked here, not in a coroutine of their own: a poll's task passes
        # through each level of its awaits every time it wakes.
        while True:
            try:
                _check_target(hop.url, self.settings.block_private)
            except TargetBlocked as exc:
                return self._failure(url, hop, str(exc) or "target not allowed",
                                     FailureKind.REFUSED)
            problem = _url_problem(hop.url)
            if problem:
                return self._failure(url, hop, problem, FailureKind.REFUSED)
            slot = _Slot(self, host_key(hop.url))
            if not slot.take():
                await slot.wait(budget)
            try:
                if isinstance(budget, Budget):
                    budget.start(asyncio.get_running_loop())
                if gate is not None and gate.crowded():
                    resume = pause_budget(budget, asyncio.get_running_loop())
                    try:
                        await gate.room()
                    finally:
                        resume()
                if proceed is not None and not proceed():
                    raise Withdrawn(f"request to {redact.url(hop.url)} called off")
                outcome = await self._one_hop(url, hop, headers, etag, last_modified,
                                              proceed)
            finally:
                slot.release()
            if isinstance(outcome, FetchResult):
                return outcome
            hop.redirects += 1
            if hop.redirects > self.settings.max_redirects:
                return self._failure(url, hop, "too many redirects", FailureKind.REFUSED)
            hop.url = outcome

    async def _one_hop(
        self,
        url: str,
        hop: _Hop,
        headers: Mapping[str, str],
        etag: str | None,
        last_modified: str | None,
        proceed: Callable[[], bool] | None = None,
    ) -> FetchResult | str:
        """One request; returns the result, or the next URL when redirected (the request
        made here too, not in a coroutine of its own, as the hops in `fetch`)."""
        remaining = self.settings.timeout - hop.spent
        started = time.monotonic()
        try:
            async with deadline(0.0 if remaining < 0.0 else remaining):
                target, authorization = split_credentials(hop.url)
                if authorization is not None:
                    headers = {**headers, "Authorization": authorization}
                if self._client is not None:
                    async with self._client.stream(
                        "GET", target, headers=headers, follow_redirects=False
                    ) as response:
                        return await self._answer(
                            url, hop, etag, last_modified, started, response.status_code,
                            _flatten_headers(response.headers.multi_items()),
                            response.aiter_raw)
                pool = self._pool or self._open_pool()

                def before_send() -> None:
                    # Asked again once the connection is open: opening one yields to the
                    # loop, and a process stopped there would otherwise send the request
                    # when it wakes.
                    if proceed is not None and not proceed():
                        raise Withdrawn(f"request to {redact.url(hop.url)} called off")

                async with pool.get(target, headers, before_send) as reply:
                    return await self._answer(url, hop, etag, last_modified, started,
                                              reply.status, reply.fields, reply.chunks)
        except _BodyTooLarge:
            hop.spent += time.monotonic() - started
            size = _format_size(self.settings.max_bytes)
            return self._failure(url, hop, f"body larger than {size}", FailureKind.REFUSED)
        except self._transport_errors as exc:
            hop.spent += time.monotonic() - started
            reason = describe_transport_error(exc, hop.url, self.settings)
            # Never the exception's repr: a client's can carry the request, its URL's token
            # and its Authorization header included. Its text, on one line, URLs redacted.
            log.debug("fetch %s failed: %s (%s: %s)", redact.url(hop.url), reason,
                      type(exc).__name__, redact.urls_in(" ".join(str(exc).split())))
            return self._failure(url, hop, reason, transport_failure_kind(exc))
        except TimeoutError:
            hop.spent += time.monotonic() - started
            return self._failure(url, hop, f"timed out after {self.settings.timeout:g} s",
                                 FailureKind.TIMEOUT)

    async def _answer(
        self,
        url: str,
        hop: _Hop,
        etag: str | None,
        last_modified: str | None,
        started: float,
        status: int,
        flat: dict[str, str],
        chunks: Callable[[], AsyncIterator[bytes]],
    ) -> FetchResult | str:
        """What a response means, whichever client brought it: the next hop or a result.
        `flat` holds its headers by lower-case name (`_flatten_headers`)."""
        location = flat.get("location")
        if status in REDIRECT_CODES and location:
            await _drain(chunks())
            hop.spent += time.monotonic() - started
            if status not in PERMANENT_REDIRECT_CODES:
                hop.all_permanent = False
            hop.history.append(hop.url)
            return _resolve_location(hop.url, location)
        retry_after = None
        if status in RETRY_AFTER_CODES and "retry-after" in flat:
            retry_after = parse_retry_after(flat["retry-after"], datetime.now(UTC))
        body: bytes | None = None
        error: str | None = None
        if status == 304:
            pass
        elif 200 <= status < 300:
            body = await _read_body(flat, chunks(), self.settings.max_bytes)
        else:
            await _drain(chunks())
            error = _http_error(status)
        hop.spent += time.monotonic() - started
        if status == 304:
            new_etag = flat.get("etag") or etag
            new_modified = flat.get("last-modified") or last_modified
        else:
            new_etag = flat.get("etag") if error is None else None
            new_modified = flat.get("last-modified") if error is None else None
        if log.isEnabledFor(logging.DEBUG):
            log.debug("fetched %s: %s in %.3f s", redact.url(hop.url), status, hop.spent)
        # By position, in the order of its fields: called with keywords, the class is handed
        # a dict of them to take apart again (0.7 us of each fetch's 1.5 us for this).
        return FetchResult(
            url,
            hop.url,  # final_url
            status,
            body,
            flat,  # headers
            new_etag,  # etag
            new_modified,  # last_modified
            hop.url if hop.history and hop.all_permanent else None,  # permanent_url
            error,
            retry_after,
            hop.spent,  # elapsed
        )

    def _failure(self, url: str, hop: _Hop, reason: str,
                 kind: FailureKind = FailureKind.NETWORK) -> FetchResult:
        log.debug("fetch %s: %s", redact.url(hop.url), reason)
        return FetchResult(url=url, final_url=hop.url, status=None, error=reason,
                           elapsed=hop.spent, error_kind=kind)


class _Slot:
    """Holds a per-host slot, then a global one, for one request: `take` when both are free
    (nearly always at once, no coroutine), else `wait`; `release` when the request is done.

    Host first: a task queued behind a busy host must not sit on a global slot that a task
    for an idle host could use. Host slots are dropped when unused, so polling thousands of
    hosts does not grow a dict forever. The poll's `budget` stands still while it waits.
    A per-host limit no smaller than the global one never holds a request back that the
    global one lets go: then there is no host slot to take (a second wait, in a queue of its
    own, for most of a large claim's requests to few hosts).
    """

    __slots__ = ("_fetcher", "_host", "_slot")

    def __init__(self, fetcher: Fetcher, host: str) -> None:
        self._fetcher = fetcher
        self._host = host
        self._slot: _HostSlot | None = None

    def take(self) -> bool:
        """Both slots taken now, without a wait; False (nothing taken) if one is busy."""
        fetcher = self._fetcher
        free = fetcher._global
        if fetcher._no_host_slots:
            return free.take()
        slot = fetcher._hosts.get(self._host)
        if free.free <= 0 or (slot is not None and slot.slots.free <= 0):
            return False
        if slot is None:
            slot = fetcher._hosts[self._host] = _HostSlot(_Slots(fetcher.settings.per_host))
        slot.slots.free -= 1
        free.free -= 1
        slot.users += 1
        self._slot = slot
        return True

    async def wait(self, budget: asyncio.Timeout | None) -> None:
        """Both slots, waited for in turn, `budget` standing still meanwhile."""
        fetcher = self._fetcher
        loop = asyncio.get_running_loop()
        resume = pause_budget(budget, loop)
        try:
            if not fetcher._no_host_slots:
                hosts = fetcher._hosts
                slot = hosts.get(self._host)
                if slot is None:
                    slot = hosts[self._host] = _HostSlot(_Slots(fetcher.settings.per_host))
                slot.users += 1
                self._slot = slot
                try:
                    if not slot.slots.take():
                        await slot.slots.wait(loop)
                except BaseException:
                    self._release_user()
                    raise
            try:
                if not fetcher._global.take():
                    await fetcher._global.wait(loop)
            except BaseException:
                if self._slot is not None:
                    self._slot.slots.release()
                    self._release_user()
                raise
        finally:
            resume()

    def release(self) -> None:
        self._fetcher._global.release()
        if self._slot is not None:
            self._slot.slots.release()
            self._release_user()

    def _release_user(self) -> None:
        slot = self._slot
        if slot is None:
            return
        slot.users -= 1
        hosts = self._fetcher._hosts
        if slot.users == 0 and hosts.get(self._host) is slot:
            del hosts[self._host]
        self._slot = None
