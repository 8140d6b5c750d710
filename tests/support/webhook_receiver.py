"""A local HTTP endpoint that records webhook calls and answers from a script.

Chat webhooks fail, rate-limit and hang; scripting the answers lets tests check the
notifier's retries against a real socket instead of a mocked client.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import cast

from tests.support.threaded import OwnedServer, ThreadedHTTPService, wait_for_items

MAX_BODY = 10 * 1024 * 1024
MAX_DELAY = 30.0


@dataclass(frozen=True)
class ScriptedResponse:
    """One scripted answer; `delay` holds the response back to provoke client timeouts.

    `hold` holds it back until the test sets the event (at most `MAX_DELAY`): a hang that
    lasts exactly as long as the test needs to observe it, however slow the machine.
    """

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    hold: threading.Event | None = None


ScriptItem = (
    ScriptedResponse
    | tuple[int, Mapping[str, str], bytes]
    | tuple[int, Mapping[str, str], bytes, float]
)


@dataclass(frozen=True)
class ReceivedWebhook:
    """A request as received, with the status it was answered, for retry assertions."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: object | None
    status: int
    at: float


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10.0

    def log_message(self, format: str, *args: object) -> None:
        """Keep pytest output clean; `received` replaces stderr logging."""

    def do_POST(self) -> None:
        self._handle()

    do_GET = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_POST

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while len(body) <= MAX_BODY:
            size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                for _ in range(100):  # trailers end with an empty line
                    if self.rfile.readline(8192) in (b"\r\n", b"\n", b""):
                        break
                return bytes(body)
            body += self.rfile.read(size)
            self.rfile.readline(1024)
        raise ValueError("body too large")

    def _handle(self) -> None:
        receiver = cast(WebhookReceiver, cast(OwnedServer, self.server).owner)
        try:
            body = self._read_body()
        except ValueError:
            self.send_error(413)
            return
        answer = receiver._next_answer()
        receiver._record(self.command, self.path, self.headers.items(), body, answer.status)
        if answer.delay and receiver._stopping.wait(answer.delay):
            self.close_connection = True
            return
        if answer.hold is not None and not receiver._held(answer.hold):
            self.close_connection = True
            return
        self.send_response_only(answer.status, _reason(answer.status) or None)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        no_body = answer.status in (204, 304) or answer.status < 200
        if not no_body and not any(k.lower() == "content-length" for k in answer.headers):
            self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        if not no_body and self.command != "HEAD":
            try:
                self.wfile.write(answer.body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True


class WebhookReceiver(ThreadedHTTPService):
    """Records every request on 127.0.0.1; answers 204 unless a script says otherwise."""

    handler = _Handler
    thread_name = "webhook-receiver"

    def __init__(self, path: str = "/hook") -> None:
        super().__init__()
        self.path = path
        self.url = ""
        self.default_response = ScriptedResponse(204)
        self._lock = threading.Condition()
        self._received: list[ReceivedWebhook] = []
        self._script: list[ScriptedResponse] = []

    def _held(self, hold: threading.Event) -> bool:
        """Wait for `hold`; False when the receiver stops or `MAX_DELAY` passes first."""
        deadline = time.monotonic() + MAX_DELAY
        while not hold.wait(0.05):
            if self._stopping.is_set() or time.monotonic() > deadline:
                return False
        return True

    def _bound(self) -> None:
        self.url = self.origin + self.path

    def script(self, responses: Iterable[ScriptItem]) -> None:
        """Replace the queue of answers; each request takes the next one, then the default."""
        queue = [_as_response(item) for item in responses]
        with self._lock:
            self._script = queue

    @property
    def received(self) -> list[ReceivedWebhook]:
        with self._lock:
            return list(self._received)

    def clear(self) -> None:
        with self._lock:
            self._received.clear()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedWebhook]:
        """Block until `count` requests arrived, or raise TimeoutError after `timeout` s."""
        return wait_for_items(self._lock, self._received, count, timeout, "request")

    def _next_answer(self) -> ScriptedResponse:
        with self._lock:
            return self._script.pop(0) if self._script else self.default_response

    def _record(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        status: int,
    ) -> None:
        lowered: dict[str, str] = {}
        for name, value in headers:
            key = name.lower()
            lowered[key] = f"{lowered[key]}, {value}" if key in lowered else value
        parsed: object | None = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        record = ReceivedWebhook(method, target, lowered, body, parsed, status, time.monotonic())
        with self._lock:
            self._received.append(record)
            self._lock.notify_all()


def _as_response(item: ScriptItem) -> ScriptedResponse:
    response = item if isinstance(item, ScriptedResponse) else ScriptedResponse(*item)
    if not 0 <= response.delay <= MAX_DELAY:
        raise ValueError(f"delay must be between 0 and {MAX_DELAY}s")
    return response


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
