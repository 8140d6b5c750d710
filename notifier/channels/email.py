"""Send notifications by email over SMTP.

Rendering and sending are separate steps: `message_bytes` turns a notice into the complete
message as it goes on the wire (pure, no I/O; written by `mailbytes`, byte for byte what
the standard library's `EmailMessage` would give, at a fraction of the cost), and the SMTP
conversation runs in a worker thread with the stdlib's smtplib, one connection per delivery
round (every batch the outbox gives it until the round ends).

Choices that matter to the person reading the mail:
- The Message-ID is derived from the notification id, so a retry after a connection lost
  after the final "." (which may have delivered) is recognised as a duplicate.
- Every notice about one post carries the same In-Reply-To/References root, so mail clients
  thread a whole comment section together.
- `Auto-Submitted` and `X-Auto-Response-Suppress` keep vacation responders from answering.

Choices that matter for safety: STARTTLS is required when asked for, never opportunistic (a
server that does not offer it gets nothing, rather than the message in clear text);
certificates are always verified, against a private CA when `ca_file` is set; a password is
never sent over a connection without TLS to another host; the password never appears in a
log, an error or `repr()`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import ipaddress
import logging
import re
import select
import smtplib
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import ClassVar, Literal, Self

from pydantic import ConfigDict, Field, field_validator, model_validator

from notifier.channels.mailbytes import POLICY, alternative, header
from notifier.delivery.channel import (
    Channel,
    ChannelConfig,
    ChannelContext,
    DeliveryError,
    PermanentFailure,
    SendResult,
    TemporaryFailure,
)
from notifier.delivery.retry import SMTP_RETRY, RetryPolicy
from notifier.models import Notice
from notifier.schema import EMAIL, Duration, StrictModel, StrList, check_http_url

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}
BUILD_AHEAD = 16
"""Messages built in one go: building one between two others' SMTP exchanges cost about
twice the CPU of building it next to the one before (Jinja2, the HTML parser and nh3 find
nothing of theirs left in the processor's caches). Their Date is when they were built, so
a slow server must not make it much earlier than the sending: a few dozen at most."""
_MSG_ID_UNSAFE = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]")


def check_address(value: str) -> str:
    """An RFC 5322 address, optionally with a display name: `Notifier <n@example.org>`."""
    if any(ch in value for ch in "\r\n"):
        raise ValueError("an email address cannot contain a line break")
    address = parseaddr(value)[1]
    if not EMAIL.fullmatch(address):
        raise ValueError(f"{value!r} is not an email address such as reader@example.org "
                         "(or root@localhost)")
    return value


def address_of(value: str) -> str:
    """The bare address inside `Name <address>`."""
    return parseaddr(value)[1]


class SmtpSettings(StrictModel):
    host: str = Field(min_length=1)
    port: int | None = Field(None, ge=1, le=65535)
    """None takes the usual port of `security`: 587 starttls, 465 tls, 25 none."""
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: str | None = Field(None, repr=False)
    """Never logged, never in `repr()`, never in an error message."""
    timeout: Duration = 30.0
    ca_file: str | None = None
    """A private CA's certificates (PEM), relative to the configuration file."""

    @field_validator("username", "password", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `${SMTP_USERNAME:-}` with the variable unset means "no login", not "log in as ''".
        return None if value == "" else value

    @field_validator("host")
    @classmethod
    def _plain_host(cls, value: str) -> str:
        if any(ch.isspace() or ch in "/:@" for ch in value) and not _is_ip(value):
            raise ValueError("write the SMTP server's host name only, e.g. smtp.example.org "
                             "(the port goes in `port`)")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> Self:
        if (self.username is None) != (self.password is None):
            raise ValueError("set both username and password, or neither")
        if self.username is not None and self.security == "none" and not _is_loopback(self.host):
            raise ValueError("refusing to send a password without TLS: use security: starttls "
                             "or tls (security: none is only allowed with a password to "
                             "localhost)")
        return self

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else DEFAULT_PORTS[self.security]


class EmailConfig(ChannelConfig):
    # `from` is a Python keyword: the field is `from_`, written `from` in the file.
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    type: Literal["email"]
    from_: str = Field(alias="from")
    to: StrList = Field(min_length=1)
    smtp: SmtpSettings
    list_unsubscribe: str | None = None
    """`mailto:` address or `https:` URL where a reader stops these mails; an https URL is
    announced as one-click (RFC 8058), so the mail client may POST to it directly."""

    @field_validator("list_unsubscribe")
    @classmethod
    def _check_unsubscribe(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if any(ch.isspace() or ch in "<>,\0" for ch in value):
            raise ValueError("the unsubscribe address cannot contain spaces, line breaks, "
                             "commas or angle brackets")
        scheme, _, rest = value.partition(":")
        if scheme.lower() == "mailto":
            check_address(rest.partition("?")[0])
        elif scheme.lower() == "https":
            check_http_url(value)
        else:
            raise ValueError("expected mailto:address or an https:// URL")
        return value

    @field_validator("from_")
    @classmethod
    def _check_from(cls, value: str) -> str:
        return check_address(value)

    @field_validator("to")
    @classmethod
    def _check_to(cls, value: list[str]) -> list[str]:
        return [check_address(item) for item in value]

    @property
    def domain(self) -> str:
        """The sender's domain: the right-hand side of every Message-ID we make."""
        return address_of(self.from_).rpartition("@")[2].lower()


class _ConnectionLost(TemporaryFailure):
    """The SMTP connection cannot be used for the next message of the batch."""


class _NotOffered(_ConnectionLost):
    """The server closes the connection at MAIL FROM (421): the message was not offered,
    so on a connection that had carried mail before it goes again on a new one (a server
    that ends a connection after so many messages does this)."""


class EmailChannel(Channel):
    kind: ClassVar[str] = "email"
    config_type: ClassVar[type[ChannelConfig]] = EmailConfig
    template_slots: ClassVar[tuple[str, ...]] = ("subject", "text", "html")
    default_retry: ClassVar[RetryPolicy] = SMTP_RETRY
    config: EmailConfig

    def __init__(self, name: str, config: ChannelConfig, context: ChannelContext,
                 *, now: Callable[[], datetime] | None = None) -> None:
        if not isinstance(config, EmailConfig):
            raise TypeError(f"channel {name}: expected an email configuration")
        super().__init__(name, config, context)
        self._now = now or (lambda: datetime.now(UTC))
        self._envelope = (address_of(self.config.from_),
                          [address_of(to) for to in self.config.to])
        """The bare addresses of MAIL FROM and RCPT TO, the same for every message."""
        self._domain = self.config.domain
        """The right-hand side of every Message-ID: parsing `from` was a tenth of a message."""
        self._utf8 = not "".join([self._envelope[0], *self._envelope[1]]).isascii()
        """An address that is not ASCII needs SMTPUTF8, and headers written in UTF-8."""
        self._fixed: dict[tuple[str, str], bytes] = {}
        """Header lines that are the same in every message of this channel, folded once."""
        self._rounds = 0
        self._idle: smtplib.SMTP | None = None
        """Open between two batches of a delivery round, and only then."""

    def _header(self, name: str, value: str) -> bytes:
        """The folded line of a header that most messages of this channel share.

        Parsing a header (addresses above all) is a good part of the cost of a message."""
        key = (name, value)
        found = self._fixed.get(key)
        if found is None:
            if len(self._fixed) >= 1000:  # List-Id varies by subscription: stay bounded
                self._fixed.clear()
            found = self._fixed[key] = header(name, value, utf8=self._utf8)
        return found

    # --- message ------------------------------------------------------------------------

    def build_message(self, notice: Notice) -> EmailMessage:
        """The complete message for one notice (what `message_bytes` sends, parsed back:
        for `preview` and for reading); raises TemporaryFailure if a template fails."""
        parsed = message_from_bytes(self.message_bytes(notice), policy=POLICY)
        assert isinstance(parsed, EmailMessage)
        return parsed

    def message_bytes(self, notice: Notice) -> bytes:
        """The message for one notice as it goes on the wire (CRLF line ends, 7-bit).

        Written by `mailbytes` rather than built as an `EmailMessage`: the same bytes at a
        fraction of the cost. Raises TemporaryFailure if a template fails.
        """
        from notifier.render import RenderError  # with Jinja2, at the first message

        try:
            extra = self.template_vars()
            subject, text, html = (
                self.context.renderer.render(self.kind, slot, notice, self.config.templates,
                                             extra)
                for slot in ("subject", "text", "html"))
        except RenderError as exc:
            # A broken template is fixed by editing a file; until then, keep the message.
            raise TemporaryFailure(f"email {self.name}: {exc}") from None
        domain = self._domain
        fixed = self._header
        root = thread_id(notice, domain)
        lines = [
            fixed("From", self.config.from_),
            fixed("To", ", ".join(self.config.to)),
            header("Subject", subject, utf8=self._utf8),
            header("Date", format_datetime(self._now())),
            header("Message-ID", message_id(notice.notification_id, domain)),
            header("In-Reply-To", root),
            header("References", root),
            fixed("List-Id", f"<{slug(notice.subscription)}.notifier.{domain}>"),
            fixed("Auto-Submitted", "auto-generated"),
            fixed("X-Auto-Response-Suppress", "All"),
        ]
        unsubscribe = self.config.list_unsubscribe
        if unsubscribe is not None:
            lines.append(fixed("List-Unsubscribe", f"<{unsubscribe}>"))
            if unsubscribe.lower().startswith("https:"):
                lines.append(fixed("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
        return alternative(b"".join(lines), _ensure_newline(text), _ensure_newline(html))

    def template_vars(self) -> dict[str, str]:
        """`unsubscribe`: where the reader stops these mails (the List-Unsubscribe target),
        and `unsubscribe_address` for a mailto: one, so the body can say it in words."""
        target = self.config.list_unsubscribe or ""
        address = target[7:].partition("?")[0] if target.lower().startswith("mailto:") else ""
        return {"unsubscribe": target, "unsubscribe_address": address}

    # --- sending ------------------------------------------------------------------------

    async def send(self, notice: Notice) -> None:
        async for result in self.send_batch([notice]):
            if result.error is not None:
                raise result.error

    @contextlib.asynccontextmanager
    async def delivery_round(self) -> AsyncIterator[None]:
        """Keep the SMTP connection open from one batch to the next until the round ends.

        Rounds may nest (`run --once` is one round around the daemon's rounds): the
        connection is closed when the outermost one ends.
        """
        self._rounds += 1
        try:
            yield
        finally:
            self._rounds -= 1
            if self._rounds == 0 and self._idle is not None:
                smtp, self._idle = self._idle, None
                await asyncio.to_thread(_close, smtp)

    async def send_batch(self, notices: Sequence[Notice]) -> AsyncIterator[SendResult]:
        """One SMTP connection for the whole batch, and for the round's next batch; a new one
        only after it broke, or when the server closed it since its last message (then,
        and after a 421 at MAIL FROM on it, the message goes out on a new connection).

        When connecting fails, every remaining notice gets that failure (each is then
        retried on its own schedule) rather than one timeout per message. Messages are
        built `BUILD_AHEAD` at a time, the next ones while the last built is on the wire;
        each result is still told as soon as its server's answer is in, one message at a
        time on the connection.
        """
        smtp = self._take_idle()
        used = smtp is not None  # has carried mail: the server may have given up on it
        ready: collections.deque[bytes | DeliveryError] = collections.deque()
        broken: Exception | None = None  # a bug met building ahead: raised in its turn
        finished = False
        try:
            for index, notice in enumerate(notices):
                if not ready and broken is None:
                    ready, broken = self._build_ahead(notices[index:index + BUILD_AHEAD])
                if not ready:
                    assert broken is not None
                    raise broken
                msg = ready.popleft()
                if isinstance(msg, DeliveryError):
                    yield SendResult(notice.notification_id, msg)
                    continue
                for attempt in range(2):
                    if smtp is not None and used and not _quiet(smtp):
                        smtp.close()  # closed by the server since the last message
                        smtp = None
                    if smtp is None:
                        try:
                            smtp = await asyncio.to_thread(self._connect)
                        except DeliveryError as exc:
                            for rest in notices[index:]:
                                yield SendResult(rest.notification_id, exc)
                            finished = True
                            return
                        used = False
                    sending = asyncio.ensure_future(
                        asyncio.to_thread(self._deliver, smtp, msg))
                    try:
                        if (attempt == 0 and not ready and broken is None
                                and index + 1 < len(notices)):
                            ready, broken = self._build_ahead(
                                notices[index + 1:index + 1 + BUILD_AHEAD])
                    finally:
                        error = await _outcome(sending)
                    if not isinstance(error, _ConnectionLost):
                        break
                    await asyncio.to_thread(_close, smtp)
                    smtp = None
                    if not (isinstance(error, _NotOffered) and used):
                        break
                used = smtp is not None
                yield SendResult(notice.notification_id, error)
            finished = True
        finally:
            if smtp is not None:
                if finished and self._rounds and self._idle is None:
                    self._idle = smtp  # the round's next batch goes out on it
                else:
                    # Cut short (an error, a cancelled task): its state is unknown.
                    await asyncio.to_thread(_close, smtp)

    def _take_idle(self) -> smtplib.SMTP | None:
        """The connection the round's last batch left open, if the server has not closed it
        since (or said anything, such as a 421 before closing: a reply nobody asked for)."""
        smtp, self._idle = self._idle, None
        if smtp is None:
            return None
        if _quiet(smtp):
            return smtp
        smtp.close()
        return None

    def _build_ahead(self, notices: Sequence[Notice]
                     ) -> tuple[collections.deque[bytes | DeliveryError], Exception | None]:
        """The messages for `notices` (or the failure of each), and a bug met on the way:
        the messages before it are built, and the bug is raised in its turn, after their
        results are told (one may be sent already: untold, it would be sent again)."""
        built: collections.deque[bytes | DeliveryError] = collections.deque()
        for notice in notices:
            try:
                built.append(self.message_bytes(notice))
            except DeliveryError as exc:
                built.append(exc)
            except Exception as exc:
                return built, exc
        return built, None

    def _connect(self) -> smtplib.SMTP:
        """Open, secure and log in; runs in a worker thread."""
        settings = self.config.smtp
        where = f"{settings.host}:{settings.effective_port}"
        try:
            smtp: smtplib.SMTP
            if settings.security == "tls":
                smtp = smtplib.SMTP_SSL(settings.host, settings.effective_port,
                                        timeout=settings.timeout, context=self._tls_context())
            else:
                smtp = smtplib.SMTP(settings.host, settings.effective_port,
                                    timeout=settings.timeout)
        except DeliveryError:
            raise
        except Exception as exc:
            raise self._setup_failure(exc, f"cannot connect to {where}") from None
        try:
            smtp.ehlo()
            if settings.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise TemporaryFailure(
                        f"email {self.name}: {where}: server does not offer STARTTLS; "
                        "refusing to send in clear text: use security: tls if this port "
                        "speaks TLS from the first byte (465), or security: none for a "
                        "relay on this machine")
                smtp.starttls(context=self._tls_context())
                smtp.ehlo()
            if settings.username is not None and settings.password is not None:
                smtp.login(settings.username, settings.password)
        except DeliveryError:
            _close(smtp)
            raise
        except Exception as exc:
            _close(smtp)
            raise self._setup_failure(exc, f"{where}") from None
        return smtp

    def _tls_context(self) -> ssl.SSLContext:
        ca_file = self.config.smtp.ca_file
        if ca_file is None:
            return ssl.create_default_context()
        path = Path(self.context.renderer.base_dir) / ca_file
        try:
            return ssl.create_default_context(cafile=str(path))
        except (OSError, ssl.SSLError) as exc:
            raise TemporaryFailure(f"email {self.name}: cannot load ca_file {ca_file!r}: "
                                   f"{exc}") from None

    def _deliver(self, smtp: smtplib.SMTP, msg: bytes) -> None:
        """Send one message on an open connection; runs in a worker thread."""
        sender, recipients = self._envelope
        try:
            # What `smtplib.send_message` did with the message: SMTPUTF8 for an address
            # that is not ASCII, refused by a server that does not offer it.
            options: tuple[str, ...] = ()
            if self._utf8:
                if not smtp.has_extn("smtputf8"):
                    raise smtplib.SMTPNotSupportedError(
                        "One or more source or delivery addresses require internationalized "
                        "email support, but the server does not advertise the required "
                        "SMTPUTF8 capability")
                options = ("SMTPUTF8", "BODY=8BITMIME")
            refused = smtp.sendmail(sender, recipients, msg, options)
        except smtplib.SMTPRecipientsRefused as exc:
            raise self._all_refused(exc.recipients) from None
        except smtplib.SMTPResponseException as exc:
            failure = _by_code(exc.smtp_code, f"email {self.name}: {_reply(exc)}")
            if exc.smtp_code == 421:  # the server is closing the connection
                if isinstance(exc, smtplib.SMTPSenderRefused):
                    raise _NotOffered(str(failure)) from None  # refused at MAIL FROM
                raise _ConnectionLost(str(failure)) from None
            raise failure from None
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            # Perhaps after the final ".": the message may have arrived, and a resend
            # carries the same Message-ID.
            raise _ConnectionLost(f"email {self.name}: connection lost: "
                                  f"{_os_reason(exc)}") from None
        except smtplib.SMTPException as exc:
            raise _ConnectionLost(f"email {self.name}: {exc}") from None
        if refused:
            log.warning("email %s: the server refused %s; sent to the other recipients",
                        self.name, _describe_refused(refused))

    def _all_refused(self, refused: dict[str, tuple[int, bytes]]) -> DeliveryError:
        reason = f"email {self.name}: every recipient was refused: {_describe_refused(refused)}"
        # A 4xx at RCPT is usually greylisting or a full mailbox: worth another try.
        if any(400 <= code < 500 for code, _ in refused.values()):
            return TemporaryFailure(reason)
        # Every message goes to the same `to:`, so the next one would be refused too.
        return PermanentFailure(f"{reason}; fix the addresses in channels.{self.name}.to",
                                disable=True)

    def _setup_failure(self, exc: Exception, where: str) -> DeliveryError:
        """Failures before any message is offered are about the setup, never the message.

        A 5xx here (a greeting of 554) is temporary, except a refused login (535 and its
        kin): that will not change until the operator fixes the password, so the channel
        stops, like a webhook that answered 410, and `notifier retry --now` sends the
        notifications it kept once it is fixed.
        """
        prefix = f"email {self.name}: {where}"
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            if 500 <= exc.smtp_code < 600:
                return PermanentFailure(
                    f"{prefix}: login refused ({_reply(exc)}); fix channels.{self.name}.smtp."
                    "username and password (or the environment variables they come from)",
                    disable=True)
            return TemporaryFailure(f"{prefix}: login refused ({_reply(exc)}); check username "
                                    "and password")
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            return TemporaryFailure(f"{prefix}: {exc}")
        if isinstance(exc, smtplib.SMTPResponseException):
            return TemporaryFailure(f"{prefix}: {_reply(exc)}")
        if isinstance(exc, ssl.SSLCertVerificationError):
            return TemporaryFailure(
                f"{prefix}: TLS certificate not trusted: {exc.verify_message or exc}; if the "
                f"server's certificate comes from its own CA, set channels.{self.name}.smtp."
                "ca_file to that CA's certificate (PEM)")
        if isinstance(exc, ssl.SSLError):
            return TemporaryFailure(
                f"{prefix}: TLS failed ({exc.reason or exc}); if this port does not speak "
                "TLS from the first byte, use security: starttls (port 587), or security: "
                "none for a relay on this machine")
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            return TemporaryFailure(f"{prefix}: the server closed the connection")
        if isinstance(exc, OSError | smtplib.SMTPException):
            return TemporaryFailure(f"{prefix}: {_os_reason(exc)}")
        return TemporaryFailure(f"{prefix}: {type(exc).__name__}: {exc}")

    # --- description --------------------------------------------------------------------

    @classmethod
    def summarize(cls, config: ChannelConfig) -> str:
        if not isinstance(config, EmailConfig):
            return cls.kind
        smtp = config.smtp
        login = f", as {smtp.username}" if smtp.username else ""
        return (f"email to {', '.join(address_of(to) for to in config.to)} via "
                f"{smtp.host}:{smtp.effective_port} ({smtp.security}{login})")

    def describe(self) -> str:
        return self.summarize(self.config)


def message_id(notification_id: str, domain: str) -> str:
    """`<id@domain>`: the same for every attempt at one notification."""
    return f"<{_MSG_ID_UNSAFE.sub('-', notification_id) or 'notice'}@{domain}>"


def thread_id(notice: Notice, domain: str) -> str:
    """The Message-ID of an imaginary first message about the post: all notices reply to it.

    A digest spans posts, so digests thread with each other, one thread per channel.
    """
    if notice.digest:
        return f"<digests-{slug(notice.channel)}@{domain}>"
    entry = notice.entry
    post = entry.post_link or entry.post_key or (entry.link if entry.kind == "post" else "") \
        or entry.key
    digest = hashlib.sha256(post.encode("utf-8")).hexdigest()[:24]
    return f"<thread-{digest}@{domain}>"


async def _outcome(sending: asyncio.Future[None]) -> DeliveryError | None:
    """What became of one message on the wire: None when the server took it."""
    try:
        await sending
    except DeliveryError as exc:
        return exc
    return None


def slug(name: str) -> str:
    """`Stalin Thread` -> `stalin-thread`, for the List-Id, so filters can pick one feed."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "subscription"


def _ensure_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def _by_code(code: int, reason: str) -> DeliveryError:
    if 500 <= code < 600:
        return PermanentFailure(reason)
    return TemporaryFailure(reason)


def _reply(exc: smtplib.SMTPResponseException) -> str:
    text = exc.smtp_error
    message = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{exc.smtp_code} {' '.join(message.split())}"


def _describe_refused(refused: dict[str, tuple[int, bytes]]) -> str:
    parts = []
    for address, (code, text) in refused.items():
        message = " ".join(text.decode("utf-8", "replace").split())
        parts.append(f"{address} ({code} {message})")
    return "; ".join(parts)


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _quiet(smtp: smtplib.SMTP) -> bool:
    """Whether an idle connection is still open: nothing to read (no EOF, no reply)."""
    sock = smtp.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
