"""A loopback TCP server that answers HTTP requests with scripted raw bytes.

`http.server` always writes a well-formed response; the fetcher's own HTTP client has to
survive the malformed, the truncated and the slow ones too, and keep-alive has to be seen
from the server's side (which connection carried which request). Each request read off a
connection takes the next `Reply` of the script, whatever connection it came on, unless
its path has a route (the same reply every time it is asked for: a broken server stays
broken when a client tries again). The server records every request's raw bytes and the
connection it arrived on.

Everything is bounded: one request's head is read up to `MAX_REQUEST_BYTES`, every socket
has a timeout, every pause returns as soon as the server stops, and `stop()` closes all
sockets and joins its threads with a timeout.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Self

MAX_REQUEST_BYTES = 256 * 1024
SOCKET_TIMEOUT = 5.0
MAX_PAUSE = 5.0
JOIN_TIMEOUT = 5.0


@dataclass(frozen=True)
class Reply:
    """What the server does with one request.

    `raw` is written as is (possibly nothing), in pieces of `drip[0]` bytes `drip[1]`
    seconds apart when `drip` is set. Then the server waits `stall` seconds, and closes the
    connection if `close` is set (with a TCP reset instead of a FIN if `reset` is set);
    otherwise it reads the connection's next request.
    """

    raw: bytes
    close: bool = False
    reset: bool = False
    stall: float = 0.0
    drip: tuple[int, float] | None = None


def hang_up() -> Reply:
    """Read the request and close the connection without a byte of answer."""
    return Reply(b"", close=True)


def response(status: str = "200 OK", body: bytes = b"",
             headers: Iterable[tuple[str, str]] = (), *, version: str = "HTTP/1.1",
             length: bool = True, close: bool = False, stall: float = 0.0) -> Reply:
    """A well-formed response: `headers` in order, then Content-Length unless `length` is
    false (the body then ends with the connection, which `close` should say)."""
    lines = [f"{version} {status}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    head = "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n"
    return Reply(head + body, close=close, stall=stall)


@dataclass(frozen=True)
class RawRequest:
    """One request's head as it arrived: bytes up to and including the blank line."""

    connection: int  # 1 for the first connection the server accepted
    raw: bytes

    @property
    def lines(self) -> list[bytes]:
        """The head's lines without their CRLF; the final blank line left out."""
        return self.raw[:-4].split(b"\r\n")

    @property
    def request_line(self) -> bytes:
        return self.lines[0]

    @property
    def target(self) -> str:
        """The request line's middle part: "/feed?x=1" in "GET /feed?x=1 HTTP/1.1"."""
        parts = self.request_line.split(b" ")
        return parts[1].decode("latin-1") if len(parts) == 3 else ""

    @property
    def headers(self) -> list[tuple[str, str]]:
        """(name, value) pairs in order, names lower-cased, values stripped."""
        pairs = []
        for line in self.lines[1:]:
            name, _, value = line.decode("latin-1").partition(":")
            pairs.append((name.strip().lower(), value.strip()))
        return pairs

    def header(self, name: str) -> str | None:
        """The one value of header `name`; None when absent, AssertionError when repeated."""
        values = [value for key, value in self.headers if key == name.lower()]
        assert len(values) <= 1, f"{name} sent {len(values)} times: {values}"
        return values[0] if values else None


class RawHTTPServer:
    """Scripted raw HTTP on 127.0.0.1, a port chosen by the OS, one thread per connection.

    Use as `with RawHTTPServer([reply, ...]) as server:`; `server.url("/feed")` addresses
    it. `routes` maps a request target ("/feed?x=1") to its reply. When the script runs
    out, a request is answered by closing its connection.
    """

    def __init__(self, replies: Iterable[Reply] = (),
                 routes: Mapping[str, Reply] | None = None) -> None:
        self._script: deque[Reply] = deque(replies)
        self._routes = dict(routes or {})
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._requests: list[RawRequest] = []
        self._connections = 0
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self.port = 0

    # the script and what was received

    def add(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    @property
    def requests(self) -> list[RawRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def connections(self) -> int:
        """How many connections the server accepted so far."""
        with self._lock:
            return self._connections

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.origin + path

    # lifetime

    def start(self) -> Self:
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.05)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._spawn(self._accept_loop, "raw-http-accept")
        return self

    def stop(self) -> None:
        """Stop accepting (the accept loop ends within its 0.05 s poll), then close every
        connection and wait for their threads; safe to call twice."""
        self._stopping.set()
        if self._threads:
            self._threads[0].join(JOIN_TIMEOUT)  # the accept loop: no connection after it
        with self._lock:
            sockets = list(self._sockets)
            threads = list(self._threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        deadline = time.monotonic() + JOIN_TIMEOUT
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # serving

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(SOCKET_TIMEOUT)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._connections += 1
                number = self._connections
                self._sockets.append(conn)
            self._spawn(self._serve, f"raw-http-{number}", conn, number)

    def _serve(self, conn: socket.socket, number: int) -> None:
        pending = b""
        with conn, contextlib.suppress(OSError):
            while not self._stopping.is_set():
                head, pending = self._read_head(conn, pending)
                if head is None:
                    return
                request = RawRequest(number, head)
                with self._lock:
                    self._requests.append(request)
                    reply = self._routes.get(request.target)
                    if reply is None:
                        reply = self._script.popleft() if self._script else hang_up()
                self._send(conn, reply)
                if reply.stall:
                    self._stopping.wait(min(reply.stall, MAX_PAUSE))
                if reply.reset:
                    # SO_LINGER on with a zero timeout: close() sends RST, not FIN.
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))
                    return
                if reply.close:
                    conn.shutdown(socket.SHUT_RDWR)
                    return

    def _read_head(self, conn: socket.socket, pending: bytes) -> tuple[bytes | None, bytes]:
        """The next request's head and what followed it; None at the end of the connection.
        A GET carries no body, so the head is the whole request."""
        buffer = bytearray(pending)
        while b"\r\n\r\n" not in buffer:
            if len(buffer) > MAX_REQUEST_BYTES or self._stopping.is_set():
                return None, b""
            data = conn.recv(65536)
            if not data:
                return None, b""
            buffer += data
        end = buffer.index(b"\r\n\r\n") + 4
        return bytes(buffer[:end]), bytes(buffer[end:])

    def _send(self, conn: socket.socket, reply: Reply) -> None:
        if reply.drip is None:
            conn.sendall(reply.raw)
            return
        size, pause = reply.drip
        for start in range(0, len(reply.raw), max(size, 1)):
            if self._stopping.is_set():
                return
            conn.sendall(reply.raw[start:start + max(size, 1)])
            self._stopping.wait(min(pause, MAX_PAUSE))
