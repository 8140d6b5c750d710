"""HTTP/1.1 for feed GETs: a keep-alive connection pool, a request writer, a response reader.

    url, headers -> [idle connection of its origin, or a new one] -> before_send()
      -> "GET target HTTP/1.1" -> status line, headers (1xx skipped) -> Reply
      -> body as raw chunks (Content-Length, chunked or until close) -> back to the pool

Why not a general client: an unchanged feed is one conditional GET answered 304, and a
daemon with 10,000 feeds makes 10,000 of them a cycle. A bare aiohttp session costs about
100 us of CPU per such GET on a 2-core machine, the whole fetcher over this about 65 us
(benchmarks/conditional_get.py), and importing
aiohttp (its SSL contexts are built at import, a CA bundle read) was a sixth of `run --once`'s
start-up. Only what a feed GET needs is here: no cookies, no proxies, no request bodies,
no content decoding (the fetcher decodes under its own size cap), no redirects (the fetcher
checks each hop). Everything else about a response is read as RFC 9112 says, and anything
it does not allow is a `ProtocolError` rather than a guess: a server that frames its answer
two ways at once is one to refuse, not to believe.

Limits: a response head is at most `MAX_HEAD` bytes, a chunk-size line at most
`MAX_LINE`; the body's size is the caller's to bound (it stops reading; the connection is
then closed, not reused). Time is the caller's too (`asyncio.timeout` around the exchange),
except the connect, bounded here by `connect_timeout`.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, cast
from urllib.parse import quote, urlsplit

import aiohappyeyeballs

__all__ = ["PLAIN_ORIGIN", "ConnectFailed", "ConnectTimeout", "Pool", "PrivateAddressBlocked",
           "ProtocolError", "Reply", "TransportError", "content_length", "resolve", "sendable"]

MAX_HEAD = 64 * 1024
"""Bytes of a status line and headers together (aiohttp allows 8 KiB per line; a feed
server's head is under 2 KiB)."""
MAX_LINE = 8 * 1024
"""Bytes of a chunk-size line or a trailer line."""
MAX_INTERIM = 10
"""1xx answers skipped before the real one (a GET expects none; a server that sends them
without end is cut off here, not by the time limit)."""
MAX_TRAILERS = 100
"""Trailer lines after a chunked body (read and dropped)."""
KEEPALIVE = 15.0
"""Seconds an idle connection is kept for the next GET to its origin (aiohttp's default);
servers close theirs after 5 s (Apache) to 75 s (nginx), and a GET that meets a connection
the server has just closed is sent again on a fresh one."""
READ_SIZE = 64 * 1024
"""Largest chunk handed to the caller at once."""
PAUSE_AT = 256 * 1024
"""Buffered bytes at which reading from the socket pauses until the caller catches up."""
URL_CACHE = 32_768
DEFAULT_PORTS = {"http": 80, "https": 443}


class TransportError(Exception):
    """A GET that got no usable answer; the fetcher describes it (never raised past it)."""


class ProtocolError(TransportError):
    """The server broke HTTP/1.1, or closed the connection before its answer was whole."""


class ConnectTimeout(TransportError):
    """No connection within `connect_timeout`."""


class ConnectFailed(TransportError):
    """The connection could not be opened; the cause (refused, DNS, TLS) is `__cause__`."""


class PrivateAddressBlocked(OSError):
    """A host name resolved only to addresses that `block_private` refuses."""


AddressInfo = tuple[int, int, int, str, tuple[Any, ...]]
"""One answer of `getaddrinfo`: family, type, protocol, canonical name, address."""


async def resolve(host: str, port: int, block_private: bool = False) -> list[AddressInfo]:
    """The addresses to connect to, only the public ones with `block_private`.

    Filtering at resolution, not before the request, closes the gap in which a name is
    checked and then resolved again to something else (DNS rebinding): the connection is
    opened to exactly these addresses.
    """
    loop = asyncio.get_running_loop()
    found: list[AddressInfo] = list(await loop.getaddrinfo(host, port,
                                                           type=socket.SOCK_STREAM))
    if not block_private:
        return found
    public = [info for info in found
              if ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]).is_global]
    if not public:
        raise PrivateAddressBlocked(f"{host} resolves only to private or local addresses; "
                                    "http.block_private_networks is on")
    return public


@dataclass(frozen=True)
class _Target:
    """What a URL means on the wire; remembered per URL (the same feeds every cycle)."""

    origin: tuple[str, str, int]  # scheme, host as connected to, port
    host_header: str
    target: str  # path and query, percent-encoded


_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
"""A '%' that starts no escape ("/100%/feed"): sent raw it makes the target malformed,
which nginx and Apache answer with 400; encoded as "%25", as aiohttp (yarl) sent it."""
_QUERY_SAFE = _PATH_SAFE + "?"


def _idna(host: str) -> str:
    """The ASCII name of an international host, by IDNA 2008 as browsers and aiohttp (yarl)
    ask it: IDNA 2003, Python's "idna" codec, maps ß to "ss" and ς to σ, another domain.
    A name IDNA 2008 refuses (symbols, emoji) falls back to IDNA 2003, as yarl's does."""
    import idna  # only for international hosts: most runs never pay for its tables

    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError:
        return host.encode("idna").decode("ascii")


PLAIN_ORIGIN = r"(https?)://([A-Za-z0-9.-]+)(?::([0-9]{1,5}))?"
"""The start of a URL whose scheme, host and port need no closer look (groups: scheme,
host, port): lower-case http or https, a host of letters, digits, dots and dashes, a port
of digits (whose range the caller checks). Nearly every feed's URL starts so; this module's
request targets and `fetch`'s URL checks and politeness hosts read it by one match."""

_PLAIN_TARGET = re.compile(
    PLAIN_ORIGIN +
    r"(/[A-Za-z0-9/:@!$&'()*+,;=._~-]*)?(?:\?([A-Za-z0-9/:@!$&'()*+,;=._~?-]*))?\Z")
"""A URL that splitting and quoting would leave as it is: lower-case scheme, a host of
letters, digits, dots and dashes, and a path and query of characters a request line
carries unencoded (no '%', no fragment)."""


@functools.lru_cache(maxsize=URL_CACHE)
def _target(url: str) -> _Target:
    """Raises ValueError for a URL that cannot be asked (the fetcher has checked its scheme
    and host already; this is the last word on what goes into the request line).

    A plain URL (`_PLAIN_TARGET`, nearly every feed's) is read by one match: splitting and
    quoting it was most of the CPU of a daemon's first poll of a feed."""
    plain = _PLAIN_TARGET.match(url)
    if plain is not None and (plain[3] is None or int(plain[3]) <= 65535):
        scheme, host, path, query = plain[1], plain[2].lower(), plain[4], plain[5]
        port = int(plain[3] or 0) or DEFAULT_PORTS[scheme]  # ":0" as urlsplit reads it
        header = host if port == DEFAULT_PORTS[scheme] else f"{host}:{port}"
        target = f"{path or '/'}?{query}" if query else path or "/"
        return _Target((scheme, host, port), header, target)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in DEFAULT_PORTS or not host:
        raise ValueError("invalid URL")
    port = parts.port or DEFAULT_PORTS[scheme]
    if not host.isascii():
        host = _idna(host)
    shown = f"[{host}]" if ":" in host else host
    header = shown if port == DEFAULT_PORTS[scheme] else f"{shown}:{port}"
    # Characters a request line cannot carry are percent-encoded (UTF-8), as browsers do;
    # escapes already there are kept as they are.
    target = quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_QUERY_SAFE)
    target = _LONE_PERCENT.sub("%25", target)
    if not target.isprintable() or " " in target:
        raise ValueError("invalid URL")
    return _Target((scheme, host, port), header, target)


_UNSAFE_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
"""Control characters (tab allowed): a header value carrying CR or LF would add headers of
its own to the request (a validator a hostile server sent earlier, stored and sent back)."""
_UNSAFE_BYTES = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def sendable(value: str) -> bool:
    """Whether `value` can go into a request header as it is."""
    return _UNSAFE_VALUE.search(value) is None


_HEADER_TEXT = bytes([0x09, *range(0x20, 0x7F), *range(0x80, 0x100)])
"""What a request head may hold besides its line ends: no control character but tab."""


def _request_bytes(target: _Target, headers: Mapping[str, str]) -> bytes:
    lines = [f"GET {target.target} HTTP/1.1", f"Host: {target.host_header}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append("\r\n")
    head = "\r\n".join(lines)
    try:
        data = head.encode("latin-1")
    except UnicodeEncodeError:
        data = "\r\n".join(map(_line_bytes, lines)).encode("latin-1")
    # The whole head checked at once, not each name and value by a pattern (a third of a
    # request's CPU): with every allowed byte taken out, only the line ends put there may
    # be left. Otherwise the header to blame is looked for.
    if data.translate(None, _HEADER_TEXT) != b"\r\n" * len(lines) or ":" in "".join(headers):
        for name, value in headers.items():
            if _UNSAFE_VALUE.search(value) or _UNSAFE_VALUE.search(name) or ":" in name:
                raise ValueError(f"header {name!r} holds a control character")
    return data


def _line_bytes(line: str) -> str:
    """A line with characters beyond Latin-1 as its UTF-8 bytes (one Latin-1 character
    each). Values read here are Latin-1 and go back byte for byte; such a line was read as
    UTF-8 (aiohttp stored validators so), and its UTF-8 bytes are what the server sent."""
    try:
        line.encode("latin-1")
    except UnicodeEncodeError:
        return line.encode("utf-8").decode("latin-1")
    return line


_STATUS_LINE = re.compile(rb"HTTP/([0-9])\.([0-9]) ([0-9]{3})(?:[ \t][^\r\n]*)?\Z")
"""A status line; a version other than 1.x is read as 1.0 (aiohttp takes "HTTP/2.0" too)."""
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_HEAD_END = re.compile(rb"\n\r?\n")
"""The end of a head, but for the CR that may come before it: a pattern that starts with
a literal is searched for as fast as `bytes.find`, one with `\r?` first is tried at every
byte of the head."""
_PLAIN_HEAD = re.compile(
    rb"HTTP/1\.([01]) ([0-9]{3})(?: [\x20-\x7e\x80-\xff]*)?"
    rb"((?:\r\n[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*)*)\Z")
"""A head as servers send it nearly always: HTTP/1.x, CRLF line ends, no control
characters, no folded lines, no space before a colon. Read by `_FIELD` in one call."""
_FIELD = re.compile(r"\r\n([^:]+):[ \t]*((?:[^\r]*[^\r \t])?)")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}\Z")
_LENGTH = re.compile(r"0*([0-9]{1,18})\Z")
"""ASCII digits only (str.isdigit() takes Latin-1's superscripts, which int() refuses), and
not more than int() reads (it refuses 4300 digits): an exabyte is past any size cap."""


def content_length(value: str) -> int | None:
    """The length a Content-Length value names; None when it names none."""
    matched = _LENGTH.match(value.strip())
    return int(matched[1]) if matched is not None else None


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection and the bytes read from it and not yet consumed."""

    def __init__(self, origin: tuple[str, str, int]) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.closed = False
        self.error: BaseException | None = None
        self.idle_since = 0.0
        self.pooled = False  # has been idle in the pool: its server may have closed it
        self.parked = False  # idle in the pool now
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False

    # --- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's, only alike
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.parked:  # answers nothing asked: kept, it would be read as the next answer
            self.abandon()
            return
        self.buffer += data
        if len(self.buffer) > PAUSE_AT and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.error = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- reading -----------------------------------------------------------------------

    async def more(self) -> None:
        """Wait for more bytes; raise ProtocolError at the end of the stream."""
        try:
            await self._more_soon()
        finally:
            self._waiter = None

    def _more_soon(self) -> asyncio.Future[None]:
        """What `more` waits for: awaited by `head` itself, not through `more`, since every
        request waits there once (a coroutine less for its task to pass through)."""
        if self.closed:
            raise ProtocolError("connection closed before the answer was complete"
                                ) from self.error
        self._resume()
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        return waiter

    def take(self, size: int) -> bytes:
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    async def line(self) -> bytes:
        """One line (CRLF or LF ended), without its ending."""
        start = 0
        while True:
            end = self.buffer.find(b"\n", start)
            if end >= 0:
                data = self.take(end + 1)
                return data[:-2] if data.endswith(b"\r\n") else data[:-1]
            if len(self.buffer) > MAX_LINE:
                raise ProtocolError(f"a line longer than {MAX_LINE} bytes")
            start = len(self.buffer)
            await self.more()

    async def head(self) -> bytes:
        """The status line and headers, up to the empty line."""
        start = 0
        while True:
            found = _HEAD_END.search(self.buffer, start - 3 if start > 3 else 0)
            if found is not None:
                begin, end = found.start(), found.end()
                if begin and self.buffer[begin - 1] == 13:  # "\r\n\r\n"
                    begin -= 1
                data = self.take(end)
                return data[:begin - end]
            if len(self.buffer) > MAX_HEAD:
                raise ProtocolError(f"response headers larger than {MAX_HEAD // 1024} KiB")
            start = len(self.buffer)
            try:
                await self._more_soon()
            finally:
                self._waiter = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abandon(self) -> None:
        """Closed without a goodbye. A graceful TLS close waits up to 30 s for the server's
        close_notify, which a server that stopped answering never sends: every fetch given
        up on would hold its socket that long. RFC 9112 9.8 lets a client not wait."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def park(self, now: float) -> None:
        """Into the pool. Reading resumes if a large answer paused it: paused, the
        connection would not see its server close it, and stay open until asked again."""
        self.idle_since = now
        self.pooled = self.parked = True
        self._resume()

    def _resume(self) -> None:
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    def alive(self, now: float) -> bool:
        return (not self.closed and not self.buffer and self.transport is not None
                and not self.transport.is_closing() and now - self.idle_since < KEEPALIVE)


class _StaleConnection(Exception):
    """A reused connection closed by the server before any byte of the answer came back."""


def _parse_head(head: bytes) -> tuple[int, int, list[tuple[str, str]]]:
    """(minor version, status, headers) of a response head."""
    plain = _PLAIN_HEAD.match(head)
    if plain is not None:
        return int(plain[1]), int(plain[2]), _FIELD.findall(plain[3].decode("latin-1"))
    lines = head.split(b"\n")
    status_line = lines[0].rstrip(b"\r")
    matched = _STATUS_LINE.match(status_line)
    if matched is None:
        raise ProtocolError("the answer does not start with an HTTP/1.x status line")
    headers: list[tuple[str, str]] = []
    for raw in lines[1:]:
        line = raw.rstrip(b"\r")
        if line[:1] in (b" ", b"\t"):  # obsolete line folding: RFC 9112 says replace by SP
            if not headers:
                raise ProtocolError("a folded header line with no header before it")
            folded, before = headers[-1]
            more = _UNSAFE_BYTES.sub(b" ", line.strip()).decode("latin-1")
            headers[-1] = (folded, f"{before} {more}")
            continue
        name, sep, value = line.partition(b":")
        name = name.rstrip(b" \t")  # "Content-Length : 2": RFC 9112 says a proxy strips it
        if not sep or _TOKEN.match(name) is None:
            raise ProtocolError("a malformed header line")
        # A CR or NUL inside a value is replaced by a space (RFC 9110, 5.5): kept, it would
        # be stored as a validator and then could not be sent back.
        value = _UNSAFE_BYTES.sub(b" ", value.strip(b" \t"))
        headers.append((name.decode("ascii"), value.decode("latin-1")))
    minor = int(matched[2]) if matched[1] == b"1" else 0
    return minor, int(matched[3]), headers


class Reply:
    """A response whose head has been read; its body is read through `chunks()`."""

    def __init__(self, conn: _Connection, minor: int, status: int,
                 headers: list[tuple[str, str]]) -> None:
        self.status = status
        self.headers = headers
        self._conn = conn
        self.complete = False
        self.reusable = False
        # The headers by lower-case name, a repeated one's values joined by ", " (RFC 9110
        # allows it): what the fetcher reads, and what the framing is read from here, in
        # one walk over the headers, not one here and one in the fetcher.
        fields: dict[str, str] = {}
        for name, value in headers:
            key = name.lower()
            fields[key] = f"{fields[key]}, {value}" if key in fields else value
        self.fields = fields
        framing = fields.get("connection")
        keep = minor == 1 and (framing is None or "close" not in {
            t.strip().lower() for t in framing.split(",")})
        framing = fields.get("content-length")
        lengths = {v.strip() for v in framing.split(",")} if framing is not None else set()
        framing = fields.get("transfer-encoding")
        codings = [t.strip().lower() for t in framing.split(",")
                   if t.strip() and t.strip().lower() != "identity"] if framing else []
        self._length: int | None = None
        if status in (204, 304):
            self._mode = "none"
        elif codings:  # Transfer-Encoding overrides Content-Length (RFC 9112, 6.3)
            if codings != ["chunked"]:  # gzip as a transfer coding: not asked, not undone
                raise ProtocolError(f"transfer coding {', '.join(codings)} not supported")
            self._mode = "chunked"
        elif lengths:
            self._length = content_length(lengths.pop()) if len(lengths) == 1 else None
            if self._length is None:
                raise ProtocolError("conflicting or malformed Content-Length")
            self._mode = "length" if self._length else "none"
        else:
            self._mode = "close"
            keep = False
        self._keep = keep
        if self._mode == "none":
            self._finish()

    def _finish(self) -> None:
        self.complete = True
        self.reusable = self._keep

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it came (content coding intact), in pieces of at most READ_SIZE."""
        if self.complete:
            return
        conn = self._conn
        if self._mode == "length":
            async for data in _exactly(conn, self._length or 0):
                yield data
        elif self._mode == "chunked":
            async for data in self._chunked_body():
                yield data
        else:  # until the server closes
            while True:
                if conn.buffer:
                    yield conn.take(READ_SIZE)
                    continue
                if conn.closed:
                    break
                try:
                    await conn.more()
                except ProtocolError:
                    break
            if conn.error is not None:  # reset, not closed: the body may be cut short
                raise ProtocolError("connection lost before the answer was complete"
                                    ) from conn.error
        self._finish()

    async def _chunked_body(self) -> AsyncIterator[bytes]:
        conn = self._conn
        while True:
            size_line = (await conn.line()).split(b";", 1)[0].strip(b" \t")
            if _CHUNK_SIZE.match(size_line) is None:
                raise ProtocolError("a malformed chunk size")
            size = int(size_line, 16)
            if size == 0:
                for _ in range(MAX_TRAILERS + 1):  # trailers, up to the empty line
                    if not await conn.line():
                        return
                raise ProtocolError(f"more than {MAX_TRAILERS} trailer lines")
            async for data in _exactly(conn, size):
                yield data
            if await conn.line():
                raise ProtocolError("a chunk longer than its size")


async def _exactly(conn: _Connection, size: int) -> AsyncIterator[bytes]:
    """The next `size` bytes of the connection, in pieces of at most READ_SIZE (a body of
    known length, or one chunk); ProtocolError if it ends first."""
    left = size
    while left:
        if not conn.buffer:
            await conn.more()
        data = conn.take(min(left, READ_SIZE))
        left -= len(data)
        yield data


class _Exchange:
    """`async with pool.get(...) as reply`: the connection goes back to the pool on exit
    only if the answer was read whole and the server allows it; otherwise it is closed."""

    def __init__(self, pool: Pool, url: str, headers: Mapping[str, str],
                 before_send: Callable[[], None] | None) -> None:
        self._pool = pool
        self._url = url
        self._headers = headers
        self._before_send = before_send
        self._conn: _Connection | None = None
        self._reply: Reply | None = None

    async def __aenter__(self) -> Reply:
        target = _target(self._url)
        request = _request_bytes(target, self._headers)
        pool = self._pool
        for attempt in range(2):
            # An idle connection is taken without a coroutine of its own (nearly always)
            conn = (pool.idle(target.origin) if attempt == 0 else None
                    ) or await pool.connect(target.origin)
            self._conn = conn
            if self._before_send is not None:
                try:
                    self._before_send()
                except BaseException:
                    self._conn = None
                    pool.release(conn)  # unused: good for the next request
                    raise
            try:
                self._reply = await pool.exchange(conn, request, conn.pooled)
                return self._reply
            except _StaleConnection:
                conn.close()
                self._conn = None
                continue
            except BaseException:  # no __aexit__ follows a failed __aenter__
                conn.abandon()
                self._conn = None
                raise
        raise ProtocolError("the server closed the connection without answering")

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        conn, reply = self._conn, self._reply
        self._conn = None
        if conn is None:
            return
        if exc is not None or reply is None or not reply.complete:
            conn.abandon()  # given up on in the middle of an answer
        elif reply.reusable:
            self._pool.release(conn)
        else:
            conn.close()


class Pool:
    """Idle keep-alive connections by origin, at most `max_idle` of them in all.

    How many requests run at once is the fetcher's to bound (its global and per-host
    slots); this only keeps the connections they leave behind, the least recently used
    closed first.
    """

    def __init__(self, *, connect_timeout: float, max_idle: int = 100,
                 block_private: bool = False) -> None:
        self.connect_timeout = connect_timeout
        self.max_idle = max_idle
        self.block_private = block_private
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._lru: collections.OrderedDict[_Connection, None] = collections.OrderedDict()
        self._tls: ssl.SSLContext | None = None
        self._closed = False

    def get(self, url: str, headers: Mapping[str, str],
            before_send: Callable[[], None] | None = None) -> _Exchange:
        """A GET of `url`; `before_send` runs once a connection is ready, just before the
        request is written (it may raise to call the request off: nothing is sent)."""
        return _Exchange(self, url, headers, before_send)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Closes the idle connections now, those in use as their exchanges end."""
        self._closed = True
        for conn in list(self._lru):
            conn.close()
        self._lru.clear()
        self._idle.clear()

    def idle(self, origin: tuple[str, str, int]) -> _Connection | None:
        """An idle connection to `origin` still open, taken out of the pool; None if none."""
        idle = self._idle.get(origin)
        if idle:
            now = time.monotonic()
            while idle:
                conn = idle.pop()  # the most recently used: the least likely to be closed
                self._lru.pop(conn, None)
                conn.parked = False
                if conn.alive(now):
                    return conn
                conn.close()
        return None

    def release(self, conn: _Connection) -> None:
        if conn.buffer:  # more than its answer: a server not to wait for
            conn.abandon()
            return
        if self._closed or conn.closed:
            conn.close()
            return
        conn.park(time.monotonic())
        self._idle.setdefault(conn.origin, []).append(conn)
        self._lru[conn] = None
        while len(self._lru) > self.max_idle:
            oldest, _ = self._lru.popitem(last=False)
            siblings = self._idle.get(oldest.origin)
            if siblings is not None:
                siblings.remove(oldest)
                if not siblings:
                    del self._idle[oldest.origin]
            oldest.close()

    def _tls_context(self) -> ssl.SSLContext:
        """Made at the first https feed: a run of http feeds never reads the CA bundle."""
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    async def connect(self, origin: tuple[str, str, int]) -> _Connection:
        """A new connection to `origin` (an idle one is `idle`'s)."""
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        tls = self._tls_context() if scheme == "https" else None
        name = host if tls is not None else None
        conn = _Connection(origin)
        try:
            async with asyncio.timeout(self.connect_timeout):
                addresses = await resolve(host, port, self.block_private)
                # IPv6 and IPv4 raced as RFC 8305 says: a host whose IPv6 is broken is
                # reached over IPv4 a quarter second later, not after the whole timeout.
                sock = await aiohappyeyeballs.start_connection(
                    addresses, happy_eyeballs_delay=0.25, interleave=1)
                try:
                    await loop.create_connection(lambda: conn, sock=sock, ssl=tls,
                                                 server_hostname=name)
                except BaseException:
                    sock.close()
                    raise
                return conn
        except TimeoutError:
            conn.close()
            raise ConnectTimeout(f"no connection within {self.connect_timeout:g} s") from None
        except OSError as exc:
            conn.close()
            raise ConnectFailed(str(exc)) from exc

    async def exchange(self, conn: _Connection, request: bytes, reused: bool) -> Reply:
        """Write the request, read the head (1xx answers skipped)."""
        transport = conn.transport
        if transport is None or transport.is_closing() or conn.closed:
            if reused:
                raise _StaleConnection
            raise ProtocolError("connection closed before the request was sent")
        transport.write(request)
        for _ in range(MAX_INTERIM + 1):
            try:
                head = await conn.head()
            except ProtocolError:
                if reused and not conn.buffer:
                    raise _StaleConnection from None
                raise
            reused = False
            minor, status, headers = _parse_head(head)
            if 100 <= status < 200:
                if status == 101:
                    raise ProtocolError("the server switched protocols on a GET")
                continue
            return Reply(conn, minor, status, headers)
        raise ProtocolError(f"more than {MAX_INTERIM} interim (1xx) answers")
