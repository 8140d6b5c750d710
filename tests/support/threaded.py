"""What the loopback test servers share: a daemon thread, a free port, a bounded wait."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self, TypeVar

T = TypeVar("T")


class OwnedServer(ThreadingHTTPServer):
    """A threading HTTP server whose handlers can reach the object that owns it."""

    daemon_threads = True
    owner: Any


class ThreadedHTTPService:
    """An `http.server` on 127.0.0.1, port chosen by the OS, served from a daemon thread.

    Subclasses set `handler` and `thread_name`, and may override `_bound()` to derive
    addresses from `origin`. `_stopping` is set first on stop so that a handler sleeping on
    purpose (a drip, a delay) returns at once.
    """

    handler: type[BaseHTTPRequestHandler]
    thread_name = "test-server"

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.origin = ""
        self._stopping = threading.Event()
        self._httpd: OwnedServer | None = None
        self._thread: threading.Thread | None = None

    def _bound(self) -> None:
        """Called once the port is known."""

    def start(self) -> Self:
        """Bind a free port and serve in a daemon thread."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = OwnedServer((self.host, 0), self.handler)
        httpd.owner = self
        self.port = httpd.server_address[1]
        self.origin = f"http://{self.host}:{self.port}"
        self._bound()
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
            name=f"{self.thread_name}-{self.port}")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port; safe to call twice."""
        self._stopping.set()
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def wait_for_items(lock: threading.Condition, items: list[T], count: int, timeout: float,
                   noun: str) -> list[T]:
    """Block until `items` (guarded by `lock`) holds `count`, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    with lock:
        while len(items) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"expected {count} {noun}(s) within {timeout}s, got {len(items)}")
            lock.wait(remaining)
        return list(items)
