"""Chat channels against a real HTTP receiver on loopback: Mattermost, Teams, Matrix,
Telegram and ntfy. What each platform receives, that no comment can make a request the
platform would refuse for its size, that no comment can ping a room, and how each
platform's "slow down" and "gone" answers are read."""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace
from email.header import decode_header, make_header
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from pydantic import ValidationError

from notifier.channels import CHANNEL_KINDS, channel_config_type
from notifier.channels.formats import MATTERMOST_LIMIT, SLACK_LIMIT, TEAMS_LIMIT
from notifier.channels.httpsend import json_len, utf16_len
from notifier.channels.markup import clean, link_html, shape
from notifier.channels.matrix import MATRIX_LIMIT
from notifier.channels.ntfy import NTFY_LIMIT, header_value
from notifier.channels.telegram import TELEGRAM_LIMIT, TELEGRAM_TAGS
from notifier.delivery.channel import (
    ChannelContext,
    DeliveryError,
    PermanentFailure,
    TemporaryFailure,
)
from notifier.models import Notice
from tests.support.webhook_receiver import ReceivedWebhook, WebhookReceiver
from tests.test_channels import PARENT, POST, channel, collect, failure_of, make_notice, run

TOKEN = "123456789:AAHfiqksKZ8WmR2zSjiQ7_v4TMAKdiHm9T0"
MATRIX_TOKEN = "syt_bm90aWZpZXI_SECRETsecretSECRET_1a2b3c"
ROOM = "!OGEhHVWSdvArJzumhm:matrix.test"
LINK = f"{POST}#comment-5"
OK_JSON = (200, {"Content-Type": "application/json"}, b'{"ok": true, "event_id": "$e"}')


def kind_body(kind: str, receiver: WebhookReceiver, **extra: Any) -> dict[str, Any]:
    """A channel of `kind` whose server is the receiver."""
    body: dict[str, Any]
    if kind == "matrix":
        body = {"type": "matrix", "homeserver": receiver.origin, "room": ROOM,
                "access_token": MATRIX_TOKEN}
    elif kind == "telegram":
        body = {"type": "telegram", "token": TOKEN, "chat_id": -1001234567890,
                "api_url": receiver.origin}
    elif kind == "ntfy":
        body = {"type": "ntfy", "url": receiver.origin + "/blog-replies"}
    else:
        body = {"type": "webhook", "url": receiver.url, "format": kind}
    return {**body, **extra}


def send_one(receiver: WebhookReceiver, kind: str, item: Notice, base_dir: Path = Path("."),
             **extra: Any) -> ReceivedWebhook:
    async def send(context: ChannelContext) -> None:
        await channel(context, kind_body(kind, receiver, **extra)).send(item)

    run(send, base_dir)
    (request,) = receiver.wait_for(1)
    return request


def as_dict(value: object) -> dict[str, Any]:
    assert isinstance(value, dict)
    return value


class _Telegram(HTMLParser):
    """Reads a Telegram HTML message as Telegram would: tags and visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.text = ""
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.hrefs += [v or "" for k, v in attrs if k == "href"]

    def handle_data(self, data: str) -> None:
        self.text += data


def telegram_reading(html: str) -> _Telegram:
    parser = _Telegram()
    parser.feed(html)
    parser.close()
    # Telegram knows only these named entities; any other refuses the whole message.
    assert not re.search(r"&(?!lt;|gt;|amp;|quot;|#\d+;|#x[0-9a-fA-F]+;)", html)
    return parser


# --- payloads ---------------------------------------------------------------------------------

MENTIONS = ("<p>&lt;!channel&gt; @channel @all @here @everyone @room @bob_smith "
            "&lt;at&gt;Team&lt;/at&gt; mail me at ann@example.org</p>")


def test_mattermost_is_slack_compatible_and_pings_nobody(
        webhook_receiver: WebhookReceiver) -> None:
    request = send_one(webhook_receiver, "mattermost", make_notice(html=MENTIONS))
    text = as_dict(request.json)["text"]
    assert set(as_dict(request.json)) == {"text"}
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    shown = commonmark_text(text)
    for word in ("@channel", "@all", "@here", "@everyone", "@bob_smith"):
        assert word not in shown and word.replace("@", "@\u200b") in shown
    assert "<!channel>" in shown  # what the commenter wrote, shown, never a ping
    assert "ann@example.org" in shown  # an address is not a mention
    assert text.endswith(f"[Read and reply]({LINK})")


def commonmark_text(markdown: str) -> str:
    """The visible text of Markdown as a CommonMark reader (Mattermost) shows it."""
    reading = _Telegram()
    reading.feed(MarkdownIt("commonmark").render(markdown))
    return reading.text


def test_teams_sends_an_adaptive_card(webhook_receiver: WebhookReceiver) -> None:
    request = send_one(webhook_receiver, "teams", make_notice(html=MENTIONS, parent=PARENT))
    data = as_dict(request.json)
    assert data["type"] == "message"
    (attachment,) = data["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    title = card["body"][0]["inlines"][0]
    assert title["text"] == 'Reply by Markup Tester to East Side Boy on "Why Defend Stalin?"'
    assert title["weight"] == "Bolder"
    text = " ".join(run["text"] for block in card["body"] for run in block.get("inlines", []))
    assert "<at>" not in text and "<\u200bat>Team<\u200b/at>" in text
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Read and reply",
                                "url": LINK}]


def test_matrix_puts_one_event_per_notification(webhook_receiver: WebhookReceiver) -> None:
    item = make_notice(html=MARKUP_WITH_SCRIPT, parent=PARENT)
    webhook_receiver.script([(500, {}, b""), OK_JSON])

    async def send(context: ChannelContext) -> DeliveryError:
        ch = channel(context, kind_body("matrix", webhook_receiver))
        error = await failure_of(ch, item)
        await ch.send(item)  # the retry
        return error

    error = run(send)
    assert isinstance(error, TemporaryFailure)
    first, retry = webhook_receiver.wait_for(2)
    # The same transaction id on the retry: the homeserver makes it the same event.
    assert first.method == retry.method == "PUT"
    assert first.path == retry.path == (
        "/_matrix/client/v3/rooms/%21OGEhHVWSdvArJzumhm%3Amatrix.test/send/m.room.message/"
        f"{item.notification_id}")
    assert first.headers["authorization"] == f"Bearer {MATRIX_TOKEN}"
    assert MATRIX_TOKEN not in first.path
    content = as_dict(retry.json)
    assert content["msgtype"] == "m.notice"
    assert content["format"] == "org.matrix.custom.html"
    assert content["m.mentions"] == {}
    body, html = content["body"], content["formatted_body"]
    assert body.startswith("Reply by Markup Tester to East Side Boy")
    assert "> thanks for article" in body and body.endswith(LINK)
    assert "<b>Reply by Markup Tester" in html and "<strong>bold</strong>" in html
    assert f'<a href="{LINK}">Read and reply</a>' in html
    for text in (body, html):
        assert "@room" not in text and "@\u200broom" in text
        assert "alert(1)" not in text
    assert "<script" not in html and "onclick" not in html and "<img" not in html


MARKUP_WITH_SCRIPT = ('<p>Hi @room, <strong>bold</strong> <a href="http://example.test/" '
                      'onclick="x()">link</a> <img src="http://t.test/p.gif"> '
                      "<script>alert(1)</script></p>")


def test_telegram_send_message_in_its_html(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.script([OK_JSON])
    request = send_one(webhook_receiver, "telegram",
                       make_notice(html=MENTIONS + MARKUP_WITH_SCRIPT, parent=PARENT),
                       message_thread_id=7)
    assert request.method == "POST" and request.path == f"/bot{TOKEN}/sendMessage"
    data = as_dict(request.json)
    assert data["chat_id"] == "-1001234567890" and data["parse_mode"] == "HTML"
    assert data["message_thread_id"] == 7
    assert data["link_preview_options"] == {"is_disabled": True}
    reading = telegram_reading(data["text"])
    assert reading.tags <= TELEGRAM_TAGS and {"b", "blockquote", "a"} <= reading.tags
    assert reading.text.startswith("Reply by Markup Tester to East Side Boy")
    assert "@bob_smith" not in reading.text and "@\u200bbob_smith" in reading.text
    assert "alert(1)" not in reading.text and "<!channel>" in reading.text
    assert reading.hrefs == [LINK]


def test_telegram_cleans_a_users_template(tmp_path: Path,
                                          webhook_receiver: WebhookReceiver) -> None:
    (tmp_path / "tg.j2").write_text(
        '<h1>{{ headline }}</h1><p>one<br>two&nbsp;three</p><ul><li>a</li><li>b</li></ul>'
        '<img src="http://x.test/i.png"><span class="x">{{ html }}</span>'
        '<a href="javascript:alert(1)">bad</a> <a href="{{ link }}">go</a>',
        encoding="utf-8")
    request = send_one(webhook_receiver, "telegram", make_notice(html="<p>A &amp; B</p>"),
                       tmp_path, templates={"message.html": "tg.j2"})
    text = as_dict(request.json)["text"]
    reading = telegram_reading(text)
    assert reading.tags <= {"a"}
    assert "one\ntwo\xa0three" in reading.text and "• a" in reading.text
    assert "A & B" in reading.text and reading.hrefs == [LINK]


def test_ntfy_headers_and_body(webhook_receiver: WebhookReceiver) -> None:
    item = make_notice(parent=PARENT, html="<p>Grüße aus Köln 🌍</p>")
    item = replace(item, entry=replace(item.entry, author="Zoë Ångström",
                                       post_title="Über Stalin?"))
    request = send_one(webhook_receiver, "ntfy", item, token="tk_abcdefghijklmnop",
                       tags=["speech_balloon", "blog"], priority="high")
    assert request.method == "POST" and request.path == "/blog-replies"
    headers = request.headers
    assert headers["authorization"] == "Bearer tk_abcdefghijklmnop"
    assert headers["tags"] == "speech_balloon,blog" and headers["priority"] == "high"
    assert headers["click"] == LINK
    assert headers["title"].isascii() and headers["title"].startswith("=?UTF-8?B?")
    assert str(make_header(decode_header(headers["title"]))) == \
        'Reply by Zoë Ångström to East Side Boy on "Über Stalin?"'
    assert headers["content-type"] == "text/plain; charset=utf-8"
    body = request.body.decode("utf-8")
    assert "Grüße aus Köln 🌍" in body and body.rstrip().endswith(LINK)
    assert "East Side Boy wrote: thanks for article" in body


def test_rfc2047_words_decode_one_by_one() -> None:
    value = header_value("Ünïcödé " * 40 + "😀" * 30)
    assert value.isascii() and "\n" not in value
    words = value.split(" ")
    assert all(len(word) <= 75 for word in words)
    for word in words:  # each decodes alone: no character is split between two words
        (raw, charset), = decode_header(word)
        assert isinstance(raw, bytes) and charset is not None
        raw.decode(charset)
    assert str(make_header(decode_header(value))) == " ".join(["Ünïcödé"] * 40) + " " + \
        "😀" * 30
    assert header_value("plain ASCII\r\nX-Evil: 1") == "plain ASCII X-Evil: 1"


# --- size limits --------------------------------------------------------------------------------

HUGE = "<p>" + 'Ünïcödé 😀 &amp; &lt;b&gt; "quoted" \\ back\tslash ' * 2500 + "</p>"
"""About 100 KB of comment, with everything that grows when escaped."""

FULL_TEXT = "{{ headline }}\n{{ text }}\n{{ link }}\n"
FULL_HTML = '<b>{{ headline }}</b>\n{{ html }}\n<a href="{{ link }}">{{ link }}</a>\n'


@pytest.mark.parametrize("template", ["packaged", "full"])
@pytest.mark.parametrize("kind", ["slack", "mattermost", "discord", "teams", "matrix",
                                  "telegram", "ntfy"])
def test_a_huge_comment_fits_and_keeps_its_link(tmp_path: Path,
                                                 webhook_receiver: WebhookReceiver,
                                                 kind: str, template: str) -> None:
    assert len(HUGE.encode()) > 100_000
    templates: dict[str, str] = {}
    if template == "full":  # a user's template that shows the whole comment
        (tmp_path / "full.txt.j2").write_text(FULL_TEXT, encoding="utf-8")
        (tmp_path / "full.html.j2").write_text(FULL_HTML, encoding="utf-8")
        templates = {"text": "full.txt.j2", "message.html": "full.html.j2"}
        if kind == "ntfy":
            templates.pop("message.html")
        if kind == "telegram":
            templates.pop("text")
        if kind not in ("matrix", "telegram"):
            templates.pop("message.html", None)
    request = send_one(webhook_receiver, kind, make_notice(html=HUGE), tmp_path,
                       templates=templates)
    data = request.json
    own = template == "full"  # the user's own text replaces the built card
    if kind == "slack":
        text = as_dict(data)["text"]
        assert len(text) <= SLACK_LIMIT
        assert text.endswith("…\n" + LINK) or len(text) < 2_000
    elif kind == "mattermost":
        text = as_dict(data)["text"]
        assert MATTERMOST_LIMIT - 10 <= len(text) <= MATTERMOST_LIMIT
        assert text.endswith("…\n" + LINK if own else f"…\n\n[Read and reply]({LINK})")
    elif kind == "discord" and own:
        text = as_dict(data)["content"]
        assert utf16_len(text) <= 2_000 and text.endswith("…\n" + LINK)
    elif kind == "discord":
        (embed,) = as_dict(data)["embeds"]
        assert 4_000 <= utf16_len(embed["description"]) <= 4_096
        assert embed["description"].endswith(f"…\n\n[Read and reply]({LINK})")
    elif kind == "teams":
        assert 20_000 < len(request.body) <= TEAMS_LIMIT < 28_000
        card = as_dict(data)["attachments"][0]["content"]
        assert card["actions"][0]["url"] == LINK
        assert card["body"][-1]["inlines"][-1]["text"].endswith("…" if not own else LINK)
    elif kind == "matrix":
        assert len(request.body) <= MATRIX_LIMIT < 65_536
        content = as_dict(data)
        assert content["body"].endswith("…\n" + LINK)
        assert re.search(f'…(</[a-z]+>)*<br><a href="{LINK}">{LINK}</a>$',
                         content["formatted_body"])
        assert len(content["formatted_body"]) > 10_000  # cut, not dropped
        assert _balanced(content["formatted_body"])
    elif kind == "telegram":
        reading = telegram_reading(as_dict(data)["text"])
        assert len(reading.text.encode("utf-16-le")) // 2 <= TELEGRAM_LIMIT
        assert len(reading.text) > 3_000
        assert reading.text.endswith("…\n" + LINK) and reading.hrefs[-1] == LINK
        assert _balanced(as_dict(data)["text"])
    else:
        assert len(request.body) <= NTFY_LIMIT and request.body.decode().endswith("…\n" + LINK)
        assert len(request.body) > 4_000


def _balanced(html: str) -> bool:
    """Every tag closed in order, so the platform's parser cannot refuse the message."""
    stack: list[str] = []
    for closing, tag in re.findall(r"<(/?)([a-z0-9]+)", html):
        if tag in ("br", "hr"):
            continue
        if not closing:
            stack.append(tag)
        elif not stack or stack.pop() != tag:
            return False
    return not stack


# --- answers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "answer", "seconds"), [
    ("discord", (429, {"Content-Type": "application/json"},
                 b'{"message": "You are being rate limited.", "retry_after": 0.75, '
                 b'"global": false}'), 0.75),
    ("telegram", (429, {"Content-Type": "application/json"},
                  b'{"ok": false, "error_code": 429, "description": "Too Many Requests: '
                  b'retry after 35", "parameters": {"retry_after": 35}}'), 35.0),
    ("matrix", (429, {"Content-Type": "application/json"},
                b'{"errcode": "M_LIMIT_EXCEEDED", "error": "Too many requests", '
                b'"retry_after_ms": 2500}'), 2.5),
    ("ntfy", (429, {"Content-Type": "application/json", "Retry-After": "12"},
              b'{"code": 42901, "http": 429, "error": "limit reached"}'), 12.0),
    ("teams", (429, {"Retry-After": "3"}, b""), 3.0),
    ("mattermost", (429, {"Retry-After": "4"}, b""), 4.0),
])
def test_rate_limits_are_read_where_each_platform_says_them(
        webhook_receiver: WebhookReceiver, kind: str, answer: Any, seconds: float) -> None:
    webhook_receiver.script([answer])

    async def send(context: ChannelContext) -> DeliveryError:
        return await failure_of(channel(context, kind_body(kind, webhook_receiver)),
                                make_notice())

    error = run(send)
    assert isinstance(error, TemporaryFailure) and error.retry_after == seconds
    prefix = kind if kind in ("matrix", "telegram", "ntfy") else "webhook"
    assert str(error).startswith(f"{prefix} out: HTTP 429")


TG = {"Content-Type": "application/json"}


@pytest.mark.parametrize(("kind", "answer", "says"), [
    ("mattermost", (404, {}, b""), "no longer exists"),
    ("discord", (401, TG, b'{"message": "Invalid Webhook Token", "code": 50027}'),
     "token was refused"),
    ("teams", (410, {}, b""), "no longer exists"),
    ("matrix", (401, TG, b'{"errcode": "M_UNKNOWN_TOKEN", "error": "Invalid access token '
                         b'passed.", "soft_logout": false}'), "access token was refused"),
    ("matrix", (403, TG, b'{"errcode": "M_FORBIDDEN", "error": "User @bot:matrix.test not '
                         b'in room"}'), "invite the bot"),
    ("telegram", (403, TG, b'{"ok": false, "error_code": 403, "description": "Forbidden: bot '
                           b'was kicked from the supergroup chat"}'), "bot was kicked"),
    ("telegram", (401, TG, b'{"ok": false, "error_code": 401, "description": '
                           b'"Unauthorized"}'), "token was refused"),
    ("telegram", (400, TG, b'{"ok": false, "error_code": 400, "description": "Bad Request: '
                           b'group chat was upgraded to a supergroup chat", "parameters": '
                           b'{"migrate_to_chat_id": -1009876543210}}'),
     "set chat_id: -1009876543210"),
    ("ntfy", (410, {}, b""), "topic is gone"),
    ("ntfy", (403, TG, b'{"code": 40301, "http": 403, "error": "forbidden"}'), "token"),
])
def test_gone_disables_the_channel(webhook_receiver: WebhookReceiver, kind: str, answer: Any,
                                   says: str) -> None:
    webhook_receiver.script([answer])

    async def send(context: ChannelContext) -> list[Any]:
        ch = channel(context, kind_body(kind, webhook_receiver))
        return await collect(ch, [make_notice(5), make_notice(6)])

    results = run(send)
    assert len(results) == 1  # the batch stopped: the second notice stays queued
    error = results[0].error
    assert isinstance(error, PermanentFailure) and error.disable and says in str(error)
    assert TOKEN not in str(error) and MATRIX_TOKEN not in str(error)


@pytest.mark.parametrize(("kind", "answer"), [
    ("telegram", (400, TG, b'{"ok": false, "error_code": 400, "description": "Bad Request: '
                           b'message is too long"}')),
    ("matrix", (400, TG, b'{"errcode": "M_BAD_JSON", "error": "bad"}')),
    ("ntfy", (400, TG, b'{"code": 40001, "http": 400, "error": "invalid request"}')),
])
def test_other_refusals_fail_one_message_only(webhook_receiver: WebhookReceiver, kind: str,
                                              answer: Any) -> None:
    webhook_receiver.script([answer])

    async def send(context: ChannelContext) -> DeliveryError:
        return await failure_of(channel(context, kind_body(kind, webhook_receiver)),
                                make_notice())

    error = run(send)
    assert isinstance(error, PermanentFailure) and not error.disable
    assert "HTTP 400 (" in str(error)


def test_no_error_shows_a_token(webhook_receiver: WebhookReceiver) -> None:
    """The bot token is in Telegram's URL path, Matrix's is a header: neither may leak into
    an error, even from a server that echoes the request back."""
    echo = f"you sent /bot{TOKEN}/sendMessage with Bearer {MATRIX_TOKEN}".encode()
    webhook_receiver.script([(400, {}, echo), (400, {}, echo)])

    async def send(context: ChannelContext) -> list[DeliveryError]:
        return [await failure_of(channel(context, kind_body(kind, webhook_receiver)),
                                 make_notice()) for kind in ("telegram", "matrix")]

    errors = run(send)
    with WebhookReceiver() as closed:
        origin = closed.origin

    async def unreachable(context: ChannelContext) -> DeliveryError:
        body = kind_body("telegram", webhook_receiver, api_url=origin)
        return await failure_of(channel(context, body), make_notice())

    errors.append(run(unreachable))
    assert all(isinstance(e, DeliveryError) for e in errors)
    for error in errors:
        assert TOKEN not in str(error) and MATRIX_TOKEN not in str(error)
        assert TOKEN.split(":")[1] not in str(error)


def test_a_workflows_signature_never_shows(webhook_receiver: WebhookReceiver) -> None:
    """A Teams Workflows URL carries its credential in `sig=`, not in the path."""
    url = webhook_receiver.url + "?api-version=2016-06-01&sig=Zm9vYmFyYmF6cXV4c2VjcmV0"
    webhook_receiver.script([(400, {}, b"Bad request for sig=Zm9vYmFyYmF6cXV4c2VjcmV0")])

    async def send(context: ChannelContext) -> DeliveryError:
        body = {"type": "webhook", "url": url, "format": "teams"}
        return await failure_of(channel(context, body), make_notice())

    error = run(send)
    assert isinstance(error, PermanentFailure) and str(error).startswith("webhook out: HTTP 400")
    assert "Zm9vYmFyYmF6cXV4c2VjcmV0" not in str(error)


# --- configuration ----------------------------------------------------------------------------


def test_chat_config_checks_and_summaries(webhook_receiver: WebhookReceiver) -> None:
    for kind in ("matrix", "telegram", "ntfy"):
        body = kind_body(kind, webhook_receiver, token="tk_secretsecret") if kind == "ntfy" \
            else kind_body(kind, webhook_receiver)
        config = channel_config_type(kind).model_validate(body)
        summary = CHANNEL_KINDS[kind].summarize(config)
        for secret in (TOKEN, MATRIX_TOKEN, "tk_secretsecret", "blog-replies"):
            assert secret not in repr(config) and secret not in summary
    assert CHANNEL_KINDS["matrix"].summarize(channel_config_type("matrix").model_validate(
        kind_body("matrix", webhook_receiver))) == \
        f"matrix room {ROOM} on http://127.0.0.1/…"
    telegram = channel_config_type("telegram")
    assert telegram.model_validate(kind_body("telegram", webhook_receiver,
                                             chat_id="@blog_news")).model_dump()["chat_id"] \
        == "@blog_news"
    bad: list[dict[str, Any]] = [
        kind_body("matrix", webhook_receiver, room="#alias:matrix.test"),
        kind_body("matrix", webhook_receiver, access_token="two words"),
        kind_body("matrix", webhook_receiver, msgtype="m.image"),
        kind_body("telegram", webhook_receiver, token="not-a-token"),
        kind_body("telegram", webhook_receiver, chat_id="general"),
        kind_body("ntfy", webhook_receiver, url=webhook_receiver.origin + "/"),
        kind_body("ntfy", webhook_receiver, tags=["a,b"]),
        kind_body("ntfy", webhook_receiver, token="tk_x\r\nX-Evil: 1"),
        kind_body("ntfy", webhook_receiver, priority="urgent!"),
    ]
    for body in bad:
        with pytest.raises(ValidationError) as caught:
            channel_config_type(str(body["type"])).model_validate(body)
        assert TOKEN not in json.dumps(caught.value.errors(include_input=False), default=str)


# --- digests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["matrix", "telegram", "ntfy", "teams", "mattermost"])
def test_a_digest_is_one_message_with_every_comment(webhook_receiver: WebhookReceiver,
                                                    kind: str) -> None:
    members = tuple(make_notice(n, html=f"<p>Comment number {n} @room</p>") for n in (5, 6, 7))
    digest = replace(members[0], notification_id="digest-0123abcd", digest=members)
    request = send_one(webhook_receiver, kind, digest)
    text = request.body.decode("utf-8")
    if kind == "ntfy":
        text += str(make_header(decode_header(request.headers["title"])))
    assert '3 new comments on \\"Why Defend Stalin?\\"' in text or \
        '3 new comments on "Why Defend Stalin?"' in text
    for n in (5, 6, 7):
        assert f"Comment number {n}" in text
    assert "@room" not in text or kind in ("ntfy", "teams")
    if kind == "telegram":
        assert telegram_reading(as_dict(request.json)["text"]).tags <= TELEGRAM_TAGS
    if kind == "matrix":
        assert request.path.endswith("/digest-0123abcd")


def test_platform_paces(webhook_receiver: WebhookReceiver) -> None:
    """Telegram refuses more than ~20 messages a minute in a group, Teams ~4 a second."""
    cases: list[tuple[str, dict[str, Any]]] = [
        ("telegram", {}), ("telegram", {"chat_id": 4242}), ("teams", {}), ("matrix", {}),
        ("telegram", {"pace": "10s"})]

    async def paces(context: ChannelContext) -> list[float]:
        return [channel(context, kind_body(kind, webhook_receiver, **extra)).pace
                for kind, extra in cases]

    assert run(paces) == [3.0, 1.0, 0.25, 0.0, 10.0]


def test_cut_html_is_always_balanced_and_within_the_limit() -> None:
    """Random nested markup, cut at random limits, by both measures the platforms use."""
    rng = random.Random(4)
    words = ["a", "Ünï", "😀", "&amp;", "&lt;", "x" * 50, " ", "\n", "@bob", '"q"']
    tags = ["b", "i", "u", "s", "code", "pre", "blockquote", "p", "li", "ul"]

    def markup(depth: int = 0) -> str:
        out = ""
        for _ in range(rng.randint(1, 8)):
            roll = rng.random()
            if depth < 4 and roll < 0.3:
                tag = rng.choice(tags)
                out += f"<{tag}>{markup(depth + 1)}</{tag}>"
            elif depth < 4 and roll < 0.4:
                out += f'<a href="http://x.test/?a=1&amp;b=2">{markup(depth + 1)}</a>'
            else:
                out += rng.choice(words)
        return out

    for _ in range(500):
        html = clean(markup(), TELEGRAM_TAGS, {"a": {"href"}})
        limit = rng.randint(70, 400)
        telegram = shape(html, limit, measure=utf16_len, markup_counts=False,
                         tail=link_html("http://l.test/"))
        assert utf16_len(telegram_reading(telegram).text) <= limit and _balanced(telegram)
        matrix = shape(html, limit, measure=json_len, markup_counts=True,
                       tail=link_html("http://l.test/", "<br>"))
        assert (json_len(matrix) <= limit or matrix == html) and _balanced(matrix)


def test_a_misspelt_template_slot_is_refused(webhook_receiver: WebhookReceiver) -> None:
    """Else the packaged template would silently stay in use."""
    def error(kind: str, **extra: Any) -> str:
        with pytest.raises(ValidationError) as caught:
            channel_config_type(kind if kind in CHANNEL_KINDS else "webhook").model_validate(
                kind_body(kind, webhook_receiver, **extra))
        return str(caught.value.errors()[0]["msg"])

    assert "telegram channels have no template slot 'html'; theirs: message.html" in \
        error("telegram", templates={"html": "t.j2"})
    assert "slot 'txt'" in error("ntfy", templates={"txt": "t.j2"})
    assert "fixed payload" in error("json", templates={"text": "t.j2"})
    for kind, slots in [("slack", {"text": "a.j2", "digest_text": "b.j2"}),
                        ("matrix", {"text": "a.j2", "message.html": "b.j2",
                                    "digest_message.html": "c.j2"}),
                        ("telegram", {"digest_message.html": "c.j2"}),
                        ("ntfy", {"title": "a.j2", "digest_title": "b.j2"})]:
        body = kind_body(kind, webhook_receiver, templates=slots)
        config = channel_config_type(str(body["type"])).model_validate(body)
        assert config.templates == slots
