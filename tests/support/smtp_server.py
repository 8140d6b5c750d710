"""A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives.

The notifier's mail channel talks to it over a socket, so the SMTP dialogue, retries on 4xx
replies and the MIME it builds are tested as they would be against a real relay. It can speak
TLS from the first byte (port 465 style) or offer STARTTLS, with a throwaway certificate from
`make_certificate`, and ask for a login (AUTH PLAIN and LOGIN), as a submission server does.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.support.threaded import wait_for_items

Stage = Literal["MAIL", "RCPT", "DATA"]
Tls = Literal["none", "starttls", "implicit"]


class ReceivedMail(EmailMessage):
    """A delivered message that also carries its envelope, which may differ from To/From.

    It is an EmailMessage, so tests read `mail["Subject"]` or `mail.get_body()` directly.
    """

    mail_from: str = ""
    rcpt_tos: tuple[str, ...] = ()
    raw: bytes = b""  # as on the wire, CRLF line ends; the parsed message uses "\n"
    peer: tuple[str, int] = ("", 0)
    """The client's address and port: messages from one port came over one connection."""


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


class _Controller(Controller):
    def factory(self) -> SMTP:
        """aiosmtpd warns about AUTH without STARTTLS on every connection; the implicit-TLS
        and downgrade tests do that on purpose."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
            server: SMTP = super().factory()  # type: ignore[no-untyped-call]
            return server


def make_certificate(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path] | None:
    """A self-signed certificate and key for `host`, or None without the openssl command.

    Self-signed is what a small private setup uses; the client trusts it through `ca_file`.
    """
    if shutil.which("openssl") is None:
        return None
    cert, key = directory / "ca.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={host}",
                    "-addext", f"subjectAltName=IP:{host}"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class _Handler:
    """aiosmtpd hooks; they run on the controller's event-loop thread."""

    def __init__(self, owner: SmtpServer) -> None:
        self._owner = owner

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        self._owner._connected(server)
        failure = self._owner._take_failure("MAIL", address, ())
        if failure is not None:
            return failure
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

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
        peer = session.peer if isinstance(session.peer, tuple) else ("", 0)
        self._owner._deliver(envelope.mail_from or "", recipients, content,
                             (str(peer[0]), int(peer[1])))
        return "250 Message accepted for delivery"


class SmtpServer:
    """SMTP on 127.0.0.1 with scripted refusals, optional TLS and optional login.

    `tls="starttls"` offers STARTTLS and refuses mail before it; `tls="implicit"` speaks
    TLS from the first byte. `users` (name -> password) makes a login required before MAIL,
    and, with STARTTLS, refuses AUTH until the connection is encrypted; `mechanisms` are
    the AUTH mechanisms offered.
    """

    def __init__(self, host: str = "127.0.0.1", server_hostname: str = "smtp.test", *,
                 tls: Tls = "none", certificate: tuple[Path, Path] | None = None,
                 users: Mapping[str, str] | None = None,
                 mechanisms: tuple[str, ...] = ("PLAIN", "LOGIN")) -> None:
        if tls != "none" and certificate is None:
            raise ValueError("TLS needs a certificate (see make_certificate)")
        self.host = host
        self.tls = tls
        self.users = dict(users or {})
        self.mechanisms = mechanisms
        self._tls_context: ssl.SSLContext | None = None
        if certificate is not None:
            self._tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._tls_context.load_cert_chain(*certificate)
        self._logins: list[tuple[str, str]] = []
        # A fixed name keeps aiosmtpd from a reverse DNS lookup (getfqdn) at start.
        self.server_hostname = server_hostname
        self.port = 0
        self._lock = threading.Condition()
        self._messages: list[ReceivedMail] = []
        self._rejections: list[Rejection] = []
        self._failures: dict[Stage, list[_Failure]] = {"MAIL": [], "RCPT": [], "DATA": []}
        self._controller: Controller | None = None
        self._sessions: set[SMTP] = set()

    def _controller_kwargs(self) -> dict[str, Any]:
        """Controller and SMTP options for the TLS and login asked for."""
        kwargs: dict[str, Any] = {"server_hostname": self.server_hostname,
                                  "ready_timeout": 5.0}
        if self.tls == "implicit":
            kwargs["ssl_context"] = self._tls_context
        elif self.tls == "starttls":
            kwargs.update(tls_context=self._tls_context, require_starttls=True)
        if self.users:
            # aiosmtpd only counts STARTTLS as encryption; an implicit-TLS connection is
            # encrypted from the start, so there the check must be off.
            kwargs.update(authenticator=self._authenticate, auth_required=True,
                          auth_require_tls=self.tls == "starttls",
                          auth_exclude_mechanism=[m for m in ("PLAIN", "LOGIN")
                                                  if m not in self.mechanisms])
        return kwargs

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        ok = user in self.users and self.users[user] == password
        if ok:
            with self._lock:
                self._logins.append((mechanism, user))
        return AuthResult(success=ok, handled=False)

    @property
    def logins(self) -> list[tuple[str, str]]:
        """(mechanism, user) of every successful login."""
        with self._lock:
            return list(self._logins)

    def start(self) -> Self:
        """Start on a free port; retries a few times if another process grabs it first."""
        if self._controller is not None:
            return self
        last_error: OSError | None = None
        for _attempt in range(3):
            port = free_port(self.host)
            controller = _Controller(
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
        """Answer the next `times` DATA (or MAIL, RCPT) commands with `code text` instead
        of 250."""
        if not 400 <= code <= 599 or times < 1:
            raise ValueError("code must be 4xx/5xx and times positive")
        with self._lock:
            self._failures[stage].append(_Failure(code, text, times))

    def drop_connections(self, timeout: float = 5.0) -> int:
        """Close every client connection that has sent MAIL, as a server does at its idle
        timeout; returns once they are closed (how many there were)."""
        controller = self._controller
        if controller is None:
            return 0

        async def drop() -> int:
            with self._lock:
                sessions = [s for s in self._sessions if s.transport is not None]
                self._sessions.clear()
            for session in sessions:
                if session.transport is not None:
                    session.transport.close()
            for _ in range(int(timeout / 0.01)):
                if all(s.transport is None for s in sessions):
                    break
                await asyncio.sleep(0.01)
            return len(sessions)

        return asyncio.run_coroutine_threadsafe(drop(), controller.loop).result(timeout + 1)

    def _connected(self, server: SMTP) -> None:
        with self._lock:
            self._sessions.add(server)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMail]:
        """Block until `count` messages arrived, or raise TimeoutError after `timeout` s."""
        return wait_for_items(self._lock, self._messages, count, timeout, "message")

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

    def _deliver(self, mail_from: str, rcpt_tos: tuple[str, ...], raw: bytes,
                 peer: tuple[str, int]) -> None:
        # Parse with Unix line ends, as a local mailbox would, so bodies compare with "\n".
        unix = raw.replace(b"\r\n", b"\n")
        parsed = BytesParser(_class=ReceivedMail, policy=policy.default).parsebytes(unix)
        if not isinstance(parsed, ReceivedMail):  # typeshed types the result by the policy
            raise TypeError(f"parser returned {type(parsed).__name__}")
        parsed.mail_from, parsed.rcpt_tos, parsed.raw = mail_from, rcpt_tos, raw
        parsed.peer = peer
        with self._lock:
            self._messages.append(parsed)
            self._lock.notify_all()
