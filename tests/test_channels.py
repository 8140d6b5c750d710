"""Channels against real servers on loopback: what arrives, and how refusals are reported."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from pydantic import ValidationError

from notifier.channels import (
    CHANNEL_KINDS,
    UnknownChannelKind,
    build_channel,
    channel_config_type,
)
from notifier.channels.apprise import AppriseChannel
from notifier.channels.console import SEPARATOR, ConsoleChannel
from notifier.channels.email import BUILD_AHEAD, EmailChannel, EmailConfig
from notifier.channels.matrix import MatrixChannel
from notifier.channels.ntfy import NtfyChannel
from notifier.channels.telegram import TelegramChannel
from notifier.channels.webhook import WebhookChannel, discord_content, fit, sign, slack_text
from notifier.delivery.channel import (
    Channel,
    ChannelContext,
    DeliveryError,
    PermanentFailure,
    SendResult,
    TemporaryFailure,
)
from notifier.models import Entry, Notice
from notifier.render import Renderer
from tests.support.smtp_server import SmtpServer, make_certificate
from tests.support.webhook_receiver import WebhookReceiver

T = TypeVar("T")
POST = "http://blog.test/2013/10/20/why-defend-stalin/"
OTHER_POST = "http://blog.test/2013/11/02/on-reading-history/"
MARKUP = ('<p>Quote: </p>\n<blockquote><p>the people make the heroes</p></blockquote>\n'
          '<p> and <strong>bold</strong>, <a href="http://example.test/">a link</a>, &#038; an '
          "ampersand, <script>alert(1)</script> end.</p>\n")
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

PARENT = Entry(key=f"{POST}#comment-2", kind="comment", author="East Side Boy",
               link=f"{POST}#comment-2", post_key=POST, post_link=POST,
               post_title="Why Defend Stalin?",
               content_html="<p>thanks for article, made me question my views.</p>")


def make_notice(number: int = 5, *, post: str = POST, html: str = MARKUP,
                parent: Entry | None = None, notification_id: str | None = None) -> Notice:
    entry = Entry(key=f"{post}#comment-{number}", kind="comment", author="Markup Tester",
                  link=f"{post}#comment-{number}", content_html=html, post_key=post,
                  post_link=post, post_title="Why Defend Stalin?",
                  published=datetime(2013, 10, 23, 12, 0, tzinfo=UTC),
                  parent_key=parent.key if parent else "")
    return Notice(notification_id=notification_id or f"n{number:031d}",
                  subscription="The Thread", channel="out", entry=entry,
                  feed_title="Comments on: Why Defend Stalin?", feed_url=post + "feed/atom/",
                  is_reply=parent is not None, parent=parent)


def run(make: Callable[[ChannelContext], Awaitable[T]], base_dir: Path = Path(".")) -> T:
    """Run one coroutine with a fresh context, as the daemon builds it."""
    async def main() -> T:
        async with httpx.AsyncClient(follow_redirects=True) as http:  # the channel opts out
            return await make(ChannelContext(renderer=Renderer(base_dir), http=http))
    return asyncio.run(main())


def channel(context: ChannelContext, body: dict[str, Any], name: str = "out") -> Channel:
    return build_channel(name, channel_config_type(str(body["type"])).model_validate(body),
                         context)


async def collect(ch: Channel, notices: Sequence[Notice]) -> list[SendResult]:
    return [result async for result in ch.send_batch(notices)]


async def failure_of(ch: Channel, item: Notice) -> DeliveryError:
    try:
        await ch.send(item)
    except DeliveryError as exc:
        return exc
    raise AssertionError("the send succeeded")


# --- registry -------------------------------------------------------------------------------


def test_registry_knows_every_kind() -> None:
    expected = {"console": ConsoleChannel, "email": EmailChannel, "webhook": WebhookChannel,
                "matrix": MatrixChannel, "telegram": TelegramChannel, "ntfy": NtfyChannel,
                "apprise": AppriseChannel}
    assert expected == CHANNEL_KINDS
    assert channel_config_type("email") is EmailConfig
    with pytest.raises(KeyError) as caught:
        channel_config_type("pager")
    assert isinstance(caught.value, UnknownChannelKind)
    assert str(caught.value) == ("unknown channel type 'pager'; known types: console, email, "
                                 "webhook, matrix, telegram, ntfy, apprise")


def test_build_channel_refuses_a_config_of_another_kind() -> None:
    config = channel_config_type("console").model_validate({"type": "console"})

    async def build(context: ChannelContext) -> None:
        with pytest.raises(TypeError):
            EmailChannel("x", config, context)
        assert isinstance(build_channel("x", config, context), ConsoleChannel)

    run(build)


# --- console --------------------------------------------------------------------------------


def test_console_prints_text_and_separator(capsys: pytest.CaptureFixture[str]) -> None:
    async def send(context: ChannelContext) -> None:
        await channel(context, {"type": "console"}).send(make_notice())
        await channel(context, {"type": "console", "stream": "stderr"}).send(make_notice(6))

    run(send)
    out, err = capsys.readouterr()
    assert out.startswith("New comment by Markup Tester on \"Why Defend Stalin?\"\n")
    assert out.endswith(f"\n{SEPARATOR}\n") and "alert(1)" not in out
    assert f"{POST}#comment-6" in err


# --- email ----------------------------------------------------------------------------------


def email_body(port: int | None, **smtp: Any) -> dict[str, Any]:
    return {"type": "email", "from": "Thread notifier <notifier@example.org>",
            "to": ["reader@example.org"],
            "smtp": {"host": "127.0.0.1", "port": port, "security": "none", **smtp}}


@pytest.fixture(params=["plain", "starttls-login"])
def mail_server(request: pytest.FixtureRequest,
                tmp_path: Path) -> Iterator[tuple[SmtpServer, dict[str, Any]]]:
    """A bare server, and a submission server as real setups have one: STARTTLS and a
    login both required. Yields the server and the `smtp:` settings that reach it."""
    if request.param == "plain":
        with SmtpServer() as server:
            yield server, {}
        return
    certificate = request.getfixturevalue("certificate")
    with SmtpServer(tls="starttls", certificate=certificate,
                    users={"notifier": "s3cret!"}) as server:
        yield server, {"security": "starttls", "ca_file": str(certificate[0]),
                       "username": "notifier", "password": "s3cret!"}


def test_email_message_is_complete_and_safe(
        mail_server: tuple[SmtpServer, dict[str, Any]]) -> None:
    smtp_server, settings = mail_server
    first, second = make_notice(5, parent=PARENT), make_notice(6)

    async def send(context: ChannelContext) -> None:
        ch = channel(context, email_body(smtp_server.port, **settings))
        await ch.send(first)
        await ch.send(second)
        await ch.send(make_notice(7, post=OTHER_POST))

    run(send)
    mails = smtp_server.wait_for(3)
    # Each send is a batch of its own: one connection, one login over TLS.
    assert smtp_server.logins == ([("PLAIN", "notifier")] * 3 if settings else [])
    mail = mails[0]
    assert mail.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in mail.iter_parts()] == ["text/plain", "text/html"]
    assert mail["From"] == "Thread notifier <notifier@example.org>"
    assert mail["To"] == "reader@example.org"
    assert mail.mail_from == "notifier@example.org"
    assert mail.rcpt_tos == ("reader@example.org",)
    assert mail["Subject"] == 'Reply by Markup Tester to East Side Boy on "Why Defend Stalin?"'
    assert mail["Date"]
    assert mail["Message-ID"] == f"<{first.notification_id}@example.org>"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["X-Auto-Response-Suppress"] == "All"
    assert mail["List-Id"] == "<the-thread.notifier.example.org>"
    # Both notices about the post thread together; a notice about another post does not.
    root = mail["In-Reply-To"]
    assert root.startswith("<thread-") and root.endswith("@example.org>")
    assert mail["References"] == root
    assert mails[1]["In-Reply-To"] == root and mails[1]["References"] == root
    assert mails[2]["In-Reply-To"] != root
    html_part = mail.get_body(("html",))
    text_part = mail.get_body(("plain",))
    assert html_part is not None and text_part is not None
    html, text = html_part.get_content(), text_part.get_content()
    assert "<script" not in html.lower() and "alert(1)" not in html
    assert "alert(1)" not in text
    assert "<strong>bold</strong>" in html and "&amp; an ampersand" in html
    assert "> thanks for article" in text and f"{POST}#comment-5" in text
    assert b"alert(1)" not in mail.raw
    # A quote inside the comment has the same side bar as the quoted parent.
    bars = re.findall(r"<blockquote( style=\"[^\"]*\")?>", html)
    assert len(bars) == 2 and bars[0] == bars[1] and "border-left" in bars[0]
    # The footer leads to the post, not to the raw feed; no unsubscribe line without one.
    assert f'about <a href="{POST}" style="color:#71717a;">Why Defend Stalin?</a>' in html
    assert "feed/atom" not in html and "feed/atom" not in text
    assert f'about "Why Defend Stalin?" ({POST})' in text
    assert "To stop these messages" not in text + html


def test_email_message_id_is_stable_across_retries(smtp_server: SmtpServer) -> None:
    item = make_notice()

    async def send(context: ChannelContext) -> None:
        ch = channel(context, email_body(smtp_server.port))
        await ch.send(item)
        await ch.send(item)

    run(send)
    first, again = smtp_server.wait_for(2)
    assert first["Message-ID"] == again["Message-ID"] == f"<{item.notification_id}@example.org>"


@pytest.mark.parametrize(("code", "stage", "expected"), [
    (451, "DATA", TemporaryFailure),
    (550, "DATA", PermanentFailure),
    (450, "RCPT", TemporaryFailure),  # greylisting
    (550, "RCPT", PermanentFailure),
])
def test_email_refusals(smtp_server: SmtpServer, code: int, stage: Any,
                        expected: type[DeliveryError]) -> None:
    smtp_server.fail_next(code, "No thanks", stage=stage)

    async def send(context: ChannelContext) -> DeliveryError:
        return await failure_of(channel(context, email_body(smtp_server.port)), make_notice())

    error = run(send)
    assert type(error) is expected
    assert str(code) in str(error) and "No thanks" in str(error)
    assert smtp_server.messages == []


def test_email_some_recipients_refused_is_delivered_with_a_warning(
        smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture) -> None:
    smtp_server.fail_next(550, "No such user", stage="RCPT")
    body = email_body(smtp_server.port)
    body["to"] = ["gone@example.org", "reader@example.org"]

    async def send(context: ChannelContext) -> None:
        await channel(context, body).send(make_notice())

    with caplog.at_level(logging.WARNING):
        run(send)
    assert smtp_server.wait_for(1)[0].rcpt_tos == ("reader@example.org",)
    assert "gone@example.org (550 No such user)" in caplog.text


def test_email_starttls_not_offered_sends_nothing(smtp_server: SmtpServer) -> None:
    async def send(context: ChannelContext) -> DeliveryError:
        ch = channel(context, email_body(smtp_server.port, security="starttls"))
        return await failure_of(ch, make_notice())

    error = run(send)
    assert isinstance(error, TemporaryFailure)
    assert "server does not offer STARTTLS; refusing to send in clear text" in str(error)
    assert smtp_server.messages == [] and smtp_server.rejections == []


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: the private CA a small setup would use."""
    made = make_certificate(tmp_path)
    if made is None:
        pytest.skip("openssl is needed to make a test certificate")
    return made


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_email_over_tls_with_a_private_ca(tmp_path: Path, certificate: tuple[Path, Path],
                                          security: str) -> None:
    tls: Any = "implicit" if security == "tls" else "starttls"
    with SmtpServer(tls=tls, certificate=certificate) as server:
        async def send(context: ChannelContext) -> DeliveryError | None:
            trusted = channel(context, email_body(server.port, security=security,
                                                  ca_file="ca.pem"))
            await trusted.send(make_notice(5))
            untrusted = channel(context, email_body(server.port, security=security))
            try:
                await untrusted.send(make_notice(6))
            except DeliveryError as exc:
                return exc
            return None

        error = run(send, tmp_path)
        (mail,) = server.wait_for(1)
        assert mail["Message-ID"] == f"<{make_notice(5).notification_id}@example.org>"
        assert isinstance(error, TemporaryFailure)
        assert "TLS certificate not trusted" in str(error)
        assert "set channels.out.smtp.ca_file to that CA's certificate" in str(error)
        assert len(server.messages) == 1


@pytest.mark.parametrize(("security", "mechanism"), [("starttls", "PLAIN"), ("tls", "LOGIN")])
def test_email_logs_in_over_tls(tmp_path: Path, certificate: tuple[Path, Path],
                                security: str, mechanism: str) -> None:
    tls: Any = "implicit" if security == "tls" else "starttls"
    with SmtpServer(tls=tls, certificate=certificate, users={"notifier": "s3cret!"},
                    mechanisms=(mechanism,)) as server:
        async def send(context: ChannelContext) -> DeliveryError:
            good = channel(context, email_body(server.port, security=security,
                                               ca_file="ca.pem", username="notifier",
                                               password="s3cret!"))
            await good.send(make_notice(5))
            wrong = channel(context, email_body(server.port, security=security,
                                                ca_file="ca.pem", username="notifier",
                                                password="hunter2"))
            return await failure_of(wrong, make_notice(6))

        error = run(send, tmp_path)
        assert len(server.wait_for(1)) == 1 and len(server.messages) == 1
        assert server.logins == [(mechanism, "notifier")]
        # A refused login is the operator's to fix: the channel stops (its notifications are
        # kept for `retry --now`), the error says what to fix and never shows the password.
        assert isinstance(error, PermanentFailure) and error.disable
        assert "login refused (535" in str(error) and "username and password" in str(error)
        assert "hunter2" not in str(error)


def test_email_starttls_required_but_not_offered_sends_no_password() -> None:
    """A server that takes a login without offering STARTTLS (a downgrade by someone in
    between) gets neither the password nor the message."""
    with SmtpServer(users={"notifier": "s3cret!"}) as server:
        async def send(context: ChannelContext) -> DeliveryError:
            ch = channel(context, email_body(server.port, security="starttls",
                                             host="localhost", username="notifier",
                                             password="s3cret!"))
            return await failure_of(ch, make_notice())

        error = run(send)
        assert isinstance(error, TemporaryFailure) and "does not offer STARTTLS" in str(error)
        assert server.messages == [] and server.logins == []


def test_email_451_then_accepted_on_the_retry(smtp_server: SmtpServer) -> None:
    smtp_server.fail_next(451, "Greylisted, come back later")
    item = make_notice()

    async def send(context: ChannelContext) -> DeliveryError:
        ch = channel(context, email_body(smtp_server.port))
        first = await failure_of(ch, item)
        await ch.send(item)
        return first

    first = run(send)
    assert isinstance(first, TemporaryFailure) and "451 Greylisted" in str(first)
    (mail,) = smtp_server.wait_for(1)
    assert mail["Message-ID"] == f"<{item.notification_id}@example.org>"
    assert len(smtp_server.rejections) == 1


def test_email_feed_text_cannot_add_a_header(smtp_server: SmtpServer) -> None:
    """CR/LF in an author name or a post title must not become a Bcc (or any header)."""
    sneaky = replace(make_notice(), entry=replace(
        make_notice().entry, author="Eve\r\nBcc: victim@example.org",
        post_title="Title\nX-Injected: yes\r\n\r\nbody"))

    async def send(context: ChannelContext) -> None:
        await channel(context, email_body(smtp_server.port)).send(sneaky)

    run(send)
    (mail,) = smtp_server.wait_for(1)
    assert mail["Bcc"] is None and mail["X-Injected"] is None
    assert mail.rcpt_tos == ("reader@example.org",)
    assert "\n" not in mail["Subject"] and "Bcc: victim@example.org" in mail["Subject"]
    head = mail.raw.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in head and b"\r\nX-Injected:" not in head


@pytest.mark.parametrize(("address", "one_click"), [
    ("https://blog.example.org/notifier/unsubscribe?token=" + "a" * 80, True),
    ("mailto:unsubscribe@example.org?subject=stop", False),
])
def test_email_list_unsubscribe(smtp_server: SmtpServer, address: str,
                                one_click: bool) -> None:
    async def send(context: ChannelContext) -> None:
        body = {**email_body(smtp_server.port), "list_unsubscribe": address}
        await channel(context, body).send(make_notice())

    run(send)
    (mail,) = smtp_server.wait_for(1)
    # One line as written, never folded into encoded words a mail client cannot read.
    assert f"\r\nList-Unsubscribe: <{address}>\r\n".encode() in mail.raw
    expected = "List-Unsubscribe=One-Click" if one_click else None
    assert mail["List-Unsubscribe-Post"] == expected
    # The body says it in words too, for readers whose mail program shows no button.
    text_part, html_part = mail.get_body(("plain",)), mail.get_body(("html",))
    assert text_part is not None and html_part is not None
    text, html = text_part.get_content(), html_part.get_content()
    how = f"open {address}" if one_click else "write to unsubscribe@example.org"
    assert f"To stop these messages, {how}, or use your mail program's Unsubscribe" in text
    assert f'<a href="{escape(address)}"' in html and "To stop these messages" in html


def test_email_list_unsubscribe_is_checked() -> None:
    for bad in ["http://blog.example.org/unsub", "mailto:not-an-address",
                "https://x.example.org/u\r\nBcc: v@example.org", "javascript:alert(1)",
                "https://x.example.org/a>, <https://evil.test/"]:
        with pytest.raises(ValidationError):
            EmailConfig.model_validate({**email_body(25), "list_unsubscribe": bad})
    assert "List-Unsubscribe" not in channel_less_message()


def channel_less_message() -> str:
    """The headers of a message from a channel without `list_unsubscribe`."""
    config = EmailConfig.model_validate(email_body(25))

    async def build(context: ChannelContext) -> str:
        ch = EmailChannel("out", config, context)
        return str(ch.build_message(make_notice()))

    return run(build).split("\n\n", 1)[0]


def test_email_batch_uses_one_connection_and_survives_a_refusal(
        smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    connects: list[int] = []
    original = EmailChannel._connect

    def counting(self: EmailChannel) -> Any:
        connects.append(1)
        return original(self)

    monkeypatch.setattr(EmailChannel, "_connect", counting)
    items = [make_notice(n) for n in (5, 6, 7)]

    async def send(context: ChannelContext) -> list[SendResult]:
        smtp_server.fail_next(550, "Spam", stage="DATA")  # the first message only
        return await collect(channel(context, email_body(smtp_server.port)), items)

    results = run(send)
    assert [r.notification_id for r in results] == [n.notification_id for n in items]
    assert isinstance(results[0].error, PermanentFailure)
    assert results[1].error is None and results[2].error is None
    assert len(smtp_server.wait_for(2)) == 2
    assert connects == [1]


def test_email_round_sends_every_batch_over_one_connection(
        mail_server: tuple[SmtpServer, dict[str, Any]]) -> None:
    """A delivery round (one drain of the outbox, or all of `run --once`) gives the channel
    batch after batch: one connection and one login carry them all. Outside a round each
    batch has its own, closed when it is done (`notifier test`)."""
    smtp_server, settings = mail_server
    batches = [[make_notice(n), make_notice(n + 1)] for n in (10, 20, 30)]

    async def send(context: ChannelContext) -> list[SendResult]:
        ch = channel(context, email_body(smtp_server.port, **settings))
        results = []
        async with ch.delivery_round():
            for batch in batches:
                results += await collect(ch, batch)
        for batch in batches[:2]:  # no round: a connection per batch
            results += await collect(ch, batch)
        return results

    results = run(send)
    assert [r.error for r in results] == [None] * 10
    mails = smtp_server.wait_for(10)
    assert [m["Message-ID"] for m in mails] == [
        f"<{n.notification_id}@example.org>"
        for n in [*batches[0], *batches[1], *batches[2], *batches[0], *batches[1]]]
    peers = [m.peer for m in mails]
    assert len(set(peers[:6])) == 1
    assert len(set(peers[6:])) == 2 and not set(peers[:6]) & set(peers[6:])
    assert len(smtp_server.logins) == (3 if settings else 0)


def test_email_round_reconnects_when_the_server_closed_the_connection_between_batches(
        mail_server: tuple[SmtpServer, dict[str, Any]]) -> None:
    """A server closes an idle connection after its timeout: the round's next batch goes
    out on a new one, and no message of it fails or waits for a retry."""
    smtp_server, settings = mail_server
    first, second = [make_notice(5), make_notice(6)], [make_notice(7), make_notice(8)]
    dropped: list[int] = []

    async def send(context: ChannelContext) -> list[SendResult]:
        ch = channel(context, email_body(smtp_server.port, **settings))
        async with ch.delivery_round():
            results = await collect(ch, first)
            dropped.append(await asyncio.to_thread(smtp_server.drop_connections))
            return results + await collect(ch, second)

    results = run(send)
    assert dropped == [1]
    assert [(r.notification_id, r.error) for r in results] == [
        (n.notification_id, None) for n in first + second]
    mails = smtp_server.wait_for(4)
    assert [m["Message-ID"] for m in mails] == [
        f"<{n.notification_id}@example.org>" for n in first + second]
    assert mails[0].peer == mails[1].peer != mails[2].peer == mails[3].peer
    assert len(smtp_server.logins) == (2 if settings else 0)


def test_email_a_421_at_mail_from_on_a_used_connection_goes_again_on_a_new_one(
        smtp_server: SmtpServer) -> None:
    """A server that ends a connection after so many messages answers the next MAIL FROM
    with 421: nothing was offered, so the message goes out on a new connection at once.
    A 421 on the new connection too is a temporary failure, as on any connection."""
    items = [make_notice(n) for n in (5, 6, 7, 8)]

    async def send(context: ChannelContext) -> list[SendResult]:
        ch = channel(context, email_body(smtp_server.port))
        async with ch.delivery_round():
            results = await collect(ch, items[:1])
            smtp_server.fail_next(421, "Too many messages on this connection", stage="MAIL")
            results += await collect(ch, items[1:3])
            smtp_server.fail_next(421, "Service not available", times=2, stage="MAIL")
            return results + await collect(ch, items[3:])

    results = run(send)
    assert [r.error for r in results[:3]] == [None] * 3
    assert isinstance(results[3].error, TemporaryFailure)
    assert "421 Service not available" in str(results[3].error)
    mails = smtp_server.wait_for(3)
    assert [m["Message-ID"] for m in mails] == [
        f"<{n.notification_id}@example.org>" for n in items[:3]]
    assert mails[0].peer != mails[1].peer == mails[2].peer
    assert [(r.stage, r.code) for r in smtp_server.rejections] == [("MAIL", 421)] * 3


def test_email_a_bug_building_the_next_message_still_tells_the_sent_one(
        smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next message is built while one is on the wire: a bug met there must not stop
    the batch before the message already sent is reported (else it is sent again)."""
    items = [make_notice(n) for n in (5, 6, 7)]
    original = EmailChannel.message_bytes

    def buggy(self: EmailChannel, notice: Notice) -> Any:
        if notice.notification_id == items[1].notification_id:
            raise RuntimeError("a bug in building")
        return original(self, notice)

    monkeypatch.setattr(EmailChannel, "message_bytes", buggy)
    told: list[SendResult] = []

    async def send(context: ChannelContext) -> None:
        async for result in channel(context, email_body(smtp_server.port)).send_batch(items):
            told.append(result)

    with pytest.raises(RuntimeError, match="a bug in building"):
        run(send)
    assert [(r.notification_id, r.error) for r in told] == [(items[0].notification_id, None)]
    assert len(smtp_server.wait_for(1)) == 1


def test_email_a_long_batch_tells_every_result_in_order(
        smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages are built several at a time: across those groups, each notice still gets
    its own result, in order, a broken template fails only its own message, and a bug
    stops the batch only after every message before it is told."""
    items = [make_notice(n) for n in range(3 * BUILD_AHEAD)]
    broken_template = {items[3].notification_id, items[BUILD_AHEAD].notification_id}
    bug = items[2 * BUILD_AHEAD + 2].notification_id
    original = EmailChannel.message_bytes

    def failing(self: EmailChannel, notice: Notice) -> Any:
        if notice.notification_id in broken_template:
            raise TemporaryFailure("template text.j2, line 1: 'x' is undefined")
        if notice.notification_id == bug:
            raise RuntimeError("a bug in building")
        return original(self, notice)

    monkeypatch.setattr(EmailChannel, "message_bytes", failing)
    told: list[SendResult] = []

    async def send(context: ChannelContext) -> None:
        async for result in channel(context, email_body(smtp_server.port)).send_batch(items):
            told.append(result)

    with pytest.raises(RuntimeError, match="a bug in building"):
        run(send)
    before_bug = items[:2 * BUILD_AHEAD + 2]
    assert [r.notification_id for r in told] == [n.notification_id for n in before_bug]
    assert {r.notification_id for r in told if r.error is not None} == broken_template
    sent = [n for n in before_bug if n.notification_id not in broken_template]
    mails = smtp_server.wait_for(len(sent))
    assert [m["Message-ID"] for m in mails] == [
        f"<{n.notification_id}@example.org>" for n in sent]


def test_email_unreachable_server_fails_the_whole_batch_temporarily() -> None:
    with SmtpServer() as server:
        port = server.port  # closed again: nothing listens there now

    async def send(context: ChannelContext) -> list[SendResult]:
        ch = channel(context, email_body(port, username="me", password="hunter2",
                                         host="localhost"))
        return await collect(ch, [make_notice(5), make_notice(6)])

    results = run(send)
    assert len(results) == 2
    for result in results:
        assert isinstance(result.error, TemporaryFailure)
        assert "hunter2" not in str(result.error)
        assert f"localhost:{port}" in str(result.error)


def test_email_config_checks() -> None:
    config = EmailConfig.model_validate(email_body(None, security="tls"))
    assert config.smtp.effective_port == 465
    assert EmailConfig.model_validate(email_body(None, security="starttls")
                                      ).smtp.effective_port == 587
    assert EmailConfig.model_validate(email_body(None)).smtp.effective_port == 25
    with_password = email_body(25, host="smtp.example.org", security="starttls",
                               username="me", password="hunter2")
    assert "hunter2" not in repr(EmailConfig.model_validate(with_password))
    assert EmailChannel.summarize(EmailConfig.model_validate(with_password)) == \
        "email to reader@example.org via smtp.example.org:25 (starttls, as me)"
    bad: list[dict[str, Any]] = [
        {**email_body(25), "from": "notifier"},
        {**email_body(25), "to": []},
        {**email_body(25), "to": ["a@example.org", "not an address"]},
        {**email_body(25), "from": "x@example.org\r\nBcc: victim@example.org"},
        email_body(25, username="me"),
        email_body(25, host="smtp.example.org", username="me", password="p"),  # in clear
        email_body(25, security="ssl"),
        {**email_body(25), "cc": ["x@example.org"]},
    ]
    for body in bad:
        with pytest.raises(ValidationError):
            EmailConfig.model_validate(body)
    # A single recipient may be written without a list.
    assert EmailConfig.model_validate({**email_body(25), "to": "r@example.org"}).to == \
        ["r@example.org"]


# --- webhook: pure parts --------------------------------------------------------------------


def test_signature_matches_the_standard_webhooks_vector() -> None:
    assert sign(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}') \
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """A receiver's check, written from the specification, not from `sign`."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(candidate.removeprefix("v1,"), expected)
               for candidate in headers["webhook-signature"].split())


def test_fit_keeps_the_link() -> None:
    link = "https://blog.test/p/#comment-9"
    text = "headline\n" + "word " * 1000 + "\n" + link
    out = fit(text, 200, link)
    assert len(out) == 200 and out.endswith("…\n" + link) and out.startswith("headline")
    assert fit("short", 200, link) == "short"
    assert fit("x" * 300, 100) == "x" * 99 + "…"
    # Never half an entity.
    assert fit("a" * 96 + "&amp;bbbbbb", 100) == "a" * 96 + "…"


def test_slack_and_discord_text() -> None:
    assert slack_text("<!channel> a & b <http://x|y>", "") == \
        "&lt;!channel&gt; a &amp; b &lt;http://x|y&gt;"
    content = discord_content("hi @everyone and @here", "")
    assert "@everyone" not in content and "@here" not in content
    assert "@\u200beveryone" in content
    # Discord counts UTF-16 units: astral emoji count twice.
    assert len(discord_content("😀" * 1500, "").encode("utf-16-le")) // 2 <= 2000


# --- webhook: against the receiver ----------------------------------------------------------


def hook(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "webhook", "url": url, **extra}


def test_json_payload_shape_and_signature(webhook_receiver: WebhookReceiver) -> None:
    item = make_notice(3, parent=PARENT)

    async def send(context: ChannelContext) -> None:
        await channel(context, hook(webhook_receiver.url, secret=SECRET,
                                    headers={"X-Team": "blue"})).send(item)

    run(send)
    (request,) = webhook_receiver.wait_for(1)
    assert request.method == "POST" and request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == item.notification_id
    assert request.headers["x-team"] == "blue"
    assert verify(SECRET, request.headers, request.body)
    assert not verify("whsec_" + base64.b64encode(b"another key, 24 bytes!!!").decode(),
                      request.headers, request.body)
    assert request.json == {
        "type": "comment.created",
        "id": item.notification_id,
        "subscription": "The Thread",
        "channel": "out",
        "entry": {
            "key": f"{POST}#comment-3", "kind": "comment", "title": "",
            "author": "Markup Tester", "author_url": "", "link": f"{POST}#comment-3",
            "published": "2013-10-23T12:00:00+00:00",
            "text": "Quote:\n\n> the people make the heroes\n\nand bold, a link "
                    "<http://example.test/>, & an ampersand, end.",
            "html": '<p>Quote: </p>\n<blockquote><p>the people make the heroes</p></blockquote>'
                    '\n<p> and <strong>bold</strong>, <a href="http://example.test/" '
                    'rel="nofollow noopener noreferrer">a link</a>, &amp; an ampersand,  '
                    "end.</p>\n",
            "post_title": "Why Defend Stalin?", "post_link": POST,
            "parent_key": PARENT.key, "is_reply": True,
        },
        "parent": {"author": "East Side Boy",
                   "excerpt": "thanks for article, made me question my views.",
                   "link": f"{POST}#comment-2"},
        "feed": {"title": "Comments on: Why Defend Stalin?", "url": POST + "feed/atom/"},
    }


def test_json_without_parent_and_without_secret(webhook_receiver: WebhookReceiver) -> None:
    async def send(context: ChannelContext) -> None:
        await channel(context, hook(webhook_receiver.url)).send(make_notice())

    run(send)
    (request,) = webhook_receiver.wait_for(1)
    assert "webhook-signature" not in request.headers
    assert "webhook-timestamp" in request.headers
    assert isinstance(request.json, dict) and request.json["parent"] is None


def test_slack_escapes_mentions(webhook_receiver: WebhookReceiver) -> None:
    async def send(context: ChannelContext) -> None:
        ch = channel(context, hook(webhook_receiver.url, format="slack"))
        await ch.send(make_notice(html="<p>&lt;!channel&gt; look &amp; see</p>"))

    run(send)
    (request,) = webhook_receiver.wait_for(1)
    assert isinstance(request.json, dict)
    text = request.json["text"]
    assert "<!channel>" not in text and "&lt;!channel&gt; look &amp; see" in text
    assert text.endswith(f"{POST}#comment-5")


def test_discord_waits_limits_and_mutes(webhook_receiver: WebhookReceiver) -> None:
    long_comment = "<p>@everyone " + "blah " * 1000 + "</p>"

    async def send(context: ChannelContext) -> None:
        ch = channel(context, hook(webhook_receiver.url + "?thread_id=42", format="discord"))
        await ch.send(make_notice(html=long_comment))

    run(send)
    (request,) = webhook_receiver.wait_for(1)
    assert request.path == "/hook?thread_id=42&wait=true"
    assert isinstance(request.json, dict)
    assert request.json["allowed_mentions"] == {"parse": []}
    (embed,) = request.json["embeds"]
    description = embed["description"]
    assert len(description) <= 4096 and "@everyone" not in description
    assert "@\u200beveryone" in description
    assert description.endswith(f"…\n\n[Read and reply]({POST}#comment-5)")


@pytest.mark.parametrize(("answer", "expected", "retry_after", "disable"), [
    ((500, {}, b""), TemporaryFailure, None, False),
    ((503, {"Retry-After": "120"}, b""), TemporaryFailure, 120.0, False),
    ((429, {"Retry-After": "7"}, b""), TemporaryFailure, 7.0, False),
    ((429, {"Content-Type": "application/json"}, b'{"retry_after": 1.5, "global": false}'),
     TemporaryFailure, 1.5, False),
    ((408, {}, b""), TemporaryFailure, None, False),
    ((410, {}, b""), PermanentFailure, None, True),
    ((400, {}, b"invalid_payload"), PermanentFailure, None, False),
    ((404, {}, b""), PermanentFailure, None, False),  # json: a 404 may be a passing outage
])
def test_webhook_answers(webhook_receiver: WebhookReceiver, answer: Any,
                         expected: type[DeliveryError], retry_after: float | None,
                         disable: bool) -> None:
    webhook_receiver.script([answer])

    async def send(context: ChannelContext) -> DeliveryError:
        return await failure_of(channel(context, hook(webhook_receiver.url), name="team"),
                                make_notice())

    error = run(send)
    assert type(error) is expected
    assert str(error).startswith(f"webhook team: HTTP {answer[0]}")
    if isinstance(error, TemporaryFailure):
        assert error.retry_after == retry_after
    if isinstance(error, PermanentFailure):
        assert error.disable is disable


def test_retry_after_as_an_http_date(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.script([(503, {"Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT"}, b"")])

    async def send(context: ChannelContext) -> DeliveryError:
        ch = channel(context, hook(webhook_receiver.url))
        assert isinstance(ch, WebhookChannel)
        ch.clock = lambda: datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC).timestamp()
        return await failure_of(ch, make_notice())

    error = run(send)
    assert isinstance(error, TemporaryFailure) and error.retry_after == 30.0


def test_chat_404_disables(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.script([(404, {}, b'{"message": "Unknown Webhook", "code": 10015}')])

    async def send(context: ChannelContext) -> list[SendResult]:
        ch = channel(context, hook(webhook_receiver.url, format="discord"))
        return await collect(ch, [make_notice(5), make_notice(6)])

    results = run(send)
    # The batch stops at the disabling failure: the rest stays queued.
    assert len(results) == 1
    error = results[0].error
    assert isinstance(error, PermanentFailure) and error.disable
    assert len(webhook_receiver.received) == 1


def test_redirect_is_not_followed(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.script([(302, {"Location": webhook_receiver.url + "/elsewhere"}, b"")])

    async def send(context: ChannelContext) -> DeliveryError:
        return await failure_of(channel(context, hook(webhook_receiver.url)), make_notice())

    error = run(send)
    assert isinstance(error, PermanentFailure) and "redirect not followed" in str(error)
    assert len(webhook_receiver.received) == 1


def test_timeout_is_temporary_and_no_error_shows_the_url(
        webhook_receiver: WebhookReceiver) -> None:
    token_url = webhook_receiver.origin + "/api/webhooks/123/SECRETTOKENabcdef"
    webhook_receiver.script([(204, {}, b"", 2.0), (401, {}, token_url.encode())])

    async def send(context: ChannelContext) -> list[DeliveryError]:
        ch = channel(context, hook(token_url, timeout="0.2s"), name="team")
        return [await failure_of(ch, make_notice()), await failure_of(ch, make_notice())]

    timeout, unauthorised = run(send)
    assert isinstance(timeout, TemporaryFailure) and str(timeout) == "webhook team: timed out"
    assert isinstance(unauthorised, PermanentFailure)
    for error in (timeout, unauthorised):
        assert "SECRETTOKEN" not in str(error) and "/api/webhooks" not in str(error)


def test_connection_refused_is_temporary() -> None:
    with WebhookReceiver() as receiver:
        url = receiver.url  # closed again

    async def send(context: ChannelContext) -> DeliveryError:
        return await failure_of(channel(context, hook(url), name="team"), make_notice())

    error = run(send)
    assert isinstance(error, TemporaryFailure) and str(error).startswith("webhook team: ")
    assert "/hook" not in str(error)


def test_webhook_config_checks() -> None:
    config_type = channel_config_type("webhook")
    url = "https://hooks.slack.test/services/T0/B0/SECRETTOKEN"
    config = config_type.model_validate(hook(url, format="slack"))
    assert "SECRETTOKEN" not in repr(config)
    assert WebhookChannel.summarize(config) == "webhook (slack) to https://hooks.slack.test/…"
    for body in [
        hook("ftp://x.test/"),
        hook(url, format="msteams"),
        hook(url, format="slack", secret=SECRET),  # chat platforms do not verify
        hook(url, secret="whsec_not base64!"),
        hook(url, secret="whsec_c2hvcnQ="),  # too short
        hook(url, headers={"webhook-id": "x"}),
        hook(url, headers={"X-A": "b\r\nInjected: 1"}),
    ]:
        with pytest.raises(ValidationError) as caught:
            config_type.model_validate(body)
        assert "not base64!" not in str(caught.value.errors()[0]["msg"])


def test_template_error_is_a_temporary_failure(tmp_path: Path,
                                               webhook_receiver: WebhookReceiver) -> None:
    (tmp_path / "bad.j2").write_text("{{ nope }}", encoding="utf-8")

    async def send(context: ChannelContext) -> DeliveryError:
        ch = channel(context, hook(webhook_receiver.url, format="slack",
                                   templates={"text": "bad.j2"}))
        return await failure_of(ch, replace(make_notice(), channel="team"))

    error = run(send, tmp_path)
    assert isinstance(error, TemporaryFailure) and "bad.j2, line 1" in str(error)
    assert webhook_receiver.received == []


def test_webhook_error_echoing_its_headers_never_shows_their_values(
        webhook_receiver: WebhookReceiver) -> None:
    """A receiver (a debugging proxy, a gateway) may echo the request in its refusal; an
    `Authorization` set under `headers:` must not reach the log and `status` that way."""
    bearer = "Bearer eyJhbGciOiJIUzI1NiJ9.c2VjcmV0"
    webhook_receiver.script([(401, {}, f"bad credentials: {bearer}; env=prod".encode())])

    async def send(context: ChannelContext) -> DeliveryError:
        body = hook(webhook_receiver.url, headers={"Authorization": bearer, "X-Env": "prod"})
        return await failure_of(channel(context, body, name="team"), make_notice())

    error = str(run(send))
    assert error.startswith("webhook team: HTTP 401") and "bad credentials" in error
    assert "eyJhbGciOiJIUzI1NiJ9" not in error
    assert "env=prod" in error  # a short value is no secret, and cutting it out would
    # garble the rest of the message
