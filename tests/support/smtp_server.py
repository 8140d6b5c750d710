"""A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives.

The notifier's mail channel talks to it over a socket, so the SMTP dialogue, retries on 4xx
replies and the MIME it builds are tested as they would be against a real relay.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from types import TracebackType
from typing import Any, Literal, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

Stage = Literal["RCPT", "DATA"]


class ReceivedMail(EmailMessage):
    """A delivered message that also carries its envelope, which may differ from To/From.

    It is an EmailMessage, so tests read `mail["Subject"]` or `mail.get_body()` directly.
    """

    mail_from: str = ""
    rcpt_tos: tuple[str, ...] = ()
    raw: bytes = b""  # as on the wire, CRLF line ends; the parsed message uses "\n"


@dataclass(frozen=True)
class Rejection:
    """A reply the test asked the server to refuse with, to check the client's retries."""

    stage: Stage
    code: int
    text: str
    mail_from: str
    rcpt_tos: tuple[str, ...]


@dataclass
class _Failure:
    code: int
    text: str
    remaining: int


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the kernel for an unused port; aiosmtpd's Controller needs a number up front."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


class _Handler:
    """aiosmtpd hooks; they run on the controller's event-loop thread."""

    def __init__(self, owner: SmtpServer) -> None:
        self._owner = owner

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        failure = self._owner._take_failure("RCPT", envelope.mail_from or "", (address,))
        if failure is not None:
            return failure
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        recipients = tuple(envelope.rcpt_tos)
        failure = self._owner._take_failure("DATA", envelope.mail_from or "", recipients)
        if failure is not None:
            return failure
        content = envelope.original_content or b""
        self._owner._deliver(envelope.mail_from or "", recipients, content)
        return "250 Message accepted for delivery"


class SmtpServer:
    """SMTP on 127.0.0.1 with scripted refusals; TLS and AUTH would go in _controller_kwargs."""

    def __init__(self, host: str = "127.0.0.1", server_hostname: str = "smtp.test") -> None:
        self.host = host
        # A fixed name keeps aiosmtpd from a reverse DNS lookup (getfqdn) at start.
        self.server_hostname = server_hostname
        self.port = 0
        self._lock = threading.Condition()
        self._messages: list[ReceivedMail] = []
        self._rejections: list[Rejection] = []
        self._failures: dict[Stage, list[_Failure]] = {"RCPT": [], "DATA": []}
        self._controller: Controller | None = None

    def _controller_kwargs(self) -> dict[str, Any]:
        """Extra Controller/SMTP options; the place for tls_context, authenticator later."""
        return {"server_hostname": self.server_hostname, "ready_timeout": 5.0}

    def start(self) -> Self:
        """Start on a free port; retries a few times if another process grabs it first."""
        if self._controller is not None:
            return self
        last_error: OSError | None = None
        for _attempt in range(3):
            port = free_port(self.host)
            controller = Controller(
                _Handler(self), hostname=self.host, port=port, **self._controller_kwargs()
            )
            try:
                controller.start()
            except OSError as error:
                last_error = error
                continue
            self._controller, self.port = controller, port
            return self
        raise RuntimeError(f"could not start the SMTP server: {last_error}")

    def stop(self) -> None:
        """Stop the event loop thread; safe to call twice."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._messages)

    @property
    def rejections(self) -> list[Rejection]:
        with self._lock:
            return list(self._rejections)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            self._rejections.clear()

    def fail_next(
        self, code: int = 451, text: str = "Try later", times: int = 1, stage: Stage = "DATA"
    ) -> None:
        """Answer the next `times` DATA (or RCPT) commands with `code text` instead of 250."""
        if not 400 <= code <= 599 or times < 1:
            raise ValueError("code must be 4xx/5xx and times positive")
        with self._lock:
            self._failures[stage].append(_Failure(code, text, times))

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMail]:
        """Block until `count` messages arrived, or raise TimeoutError after `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"expected {count} message(s) within {timeout}s, got {len(self._messages)}"
                    )
                self._lock.wait(remaining)
            return list(self._messages)

    def _take_failure(self, stage: Stage, mail_from: str, rcpt_tos: tuple[str, ...]) -> str | None:
        with self._lock:
            queue = self._failures[stage]
            if not queue:
                return None
            failure = queue[0]
            failure.remaining -= 1
            if failure.remaining <= 0:
                queue.pop(0)
            self._rejections.append(
                Rejection(stage, failure.code, failure.text, mail_from, rcpt_tos)
            )
            return f"{failure.code} {failure.text}"

    def _deliver(self, mail_from: str, rcpt_tos: tuple[str, ...], raw: bytes) -> None:
        # Parse with Unix line ends, as a local mailbox would, so bodies compare with "\n".
        unix = raw.replace(b"\r\n", b"\n")
        parsed = BytesParser(_class=ReceivedMail, policy=policy.default).parsebytes(unix)
        if not isinstance(parsed, ReceivedMail):  # typeshed types the result by the policy
            raise TypeError(f"parser returned {type(parsed).__name__}")
        parsed.mail_from, parsed.rcpt_tos, parsed.raw = mail_from, rcpt_tos, raw
        with self._lock:
            self._messages.append(parsed)
            self._lock.notify_all()
