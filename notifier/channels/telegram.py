"""Send notifications to a Telegram chat through a bot: `sendMessage` in HTML parse mode.

The bot token is part of the URL path (`/bot<token>/sendMessage`), so the URL is never
logged and never in an error; errors name the channel. Telegram's HTML mode knows only
b, i, u, s, a, code, pre and blockquote, refuses the whole message for any other tag or for
a named entity other than `&lt; &gt; &amp; &quot;`, and keeps line breaks as written: the
rendered template is cleaned to that set (paragraphs and `<br>` become line breaks first)
and written out again, so nothing it says can be refused. The limit is 4,096 characters of
text after the tags are parsed, counted in UTF-16 units.

`@username` in a comment would notify that Telegram user in a group: it is broken with a
zero-width space.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

import httpx
from pydantic import Field, field_validator

from notifier.channels.httpsend import (
    ZWSP,
    HttpChannel,
    Platform,
    dump,
    json_answer,
    number,
    utf16_len,
)
from notifier.channels.markup import blocks_to_lines, clean, link_html, shape
from notifier.delivery.channel import ChannelConfig
from notifier.models import Notice
from notifier.redact import destination
from notifier.schema import Duration, HttpUrl

TELEGRAM_LIMIT = 4_096
TELEGRAM_TAGS = frozenset({"b", "i", "u", "s", "a", "code", "pre", "blockquote"})
TELEGRAM_ATTRIBUTES = {"a": {"href"}}
_BOT_TOKEN = re.compile(r"^\d+:[A-Za-z0-9_-]{20,}$")
_CHAT_ID = re.compile(r"^(-?\d+|@[A-Za-z][A-Za-z0-9_]{3,})$")
_AT_WORD = re.compile(r"(?<![\w.@/])@(?=\w)")


class TelegramConfig(ChannelConfig):
    type: Literal["telegram"]
    token: str = Field(repr=False)
    """The bot token from @BotFather, `123456:ABC...`: a secret, and part of every URL."""
    chat_id: str
    """A chat's number (groups are negative, e.g. -1001234567890) or a public channel's
    `@name`."""
    api_url: HttpUrl = "https://api.telegram.org"
    """Another Bot API server (self-hosted, or a test's)."""
    message_thread_id: int | None = None
    """A forum topic of the chat."""
    silent: bool = False
    """Send without a sound (`disable_notification`)."""
    link_preview: bool = False
    timeout: Duration = 15.0

    @field_validator("token")
    @classmethod
    def _check_token(cls, value: str) -> str:
        if not _BOT_TOKEN.match(value):
            raise ValueError("token must look like 123456789:AAE... as @BotFather gives it")
        return value

    @field_validator("chat_id", mode="before")
    @classmethod
    def _check_chat(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not _CHAT_ID.match(value.strip()):
            raise ValueError("chat_id must be a chat's number, such as -1001234567890, or a "
                             "public channel's @name")
        return value.strip()


class TelegramChannel(HttpChannel):
    kind: ClassVar[str] = "telegram"
    config_type: ClassVar[type[ChannelConfig]] = TelegramConfig
    template_slots: ClassVar[tuple[str, ...]] = ("message.html",)
    config: TelegramConfig

    def request_url(self) -> str:
        return f"{self.config.api_url.rstrip('/')}/bot{self.config.token}/sendMessage"

    def message(self, notice: Notice) -> dict[str, Any]:
        html = self.render_slot("message.html", notice)
        link = self.link(notice)
        text = shape(clean(blocks_to_lines(html), TELEGRAM_TAGS, TELEGRAM_ATTRIBUTES),
                     TELEGRAM_LIMIT, measure=utf16_len, markup_counts=False,
                     tail=link_html(link), text_filter=_no_mentions)
        data: dict[str, Any] = {
            "chat_id": self.config.chat_id, "text": text, "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": not self.config.link_preview},
        }
        if self.config.message_thread_id is not None:
            data["message_thread_id"] = self.config.message_thread_id
        if self.config.silent:
            data["disable_notification"] = True
        return data

    async def send(self, notice: Notice) -> None:
        await self.request("POST", self.request_url(), dump(self.message(notice)),
                           {"content-type": "application/json"}, timeout=self.config.timeout,
                           platform=TELEGRAM, secrets=[self.config.token, self.request_url()])

    def default_pace(self) -> float:
        """Telegram asks bots for at most one message a second in a chat and twenty a
        minute in a group (negative ids and @channels); beyond that it answers 429."""
        chat = self.config.chat_id
        return 3.0 if chat.startswith(("-", "@")) else 1.0

    @classmethod
    def summarize(cls, config: ChannelConfig) -> str:
        if not isinstance(config, TelegramConfig):
            return cls.kind
        return f"telegram chat {config.chat_id} via {destination(config.api_url)}"


def _no_mentions(text: str) -> str:
    return _AT_WORD.sub("@" + ZWSP, text)


def _description(response: httpx.Response) -> tuple[str, dict[str, Any]]:
    data = json_answer(response)
    if not isinstance(data, dict):
        return "", {}
    parameters = data.get("parameters")
    return (" ".join(str(data.get("description") or "").split()),
            parameters if isinstance(parameters, dict) else {})


def _gone(response: httpx.Response) -> str | None:
    """A revoked token, a bot removed from its chat, a chat that moved or never existed:
    no message will get through until the configuration changes."""
    status = response.status_code
    description, parameters = _description(response)
    if status == 410:
        return description or "gone"
    if status in (401, 404):  # Telegram answers 404 to a token it does not know
        return f"{description or 'unauthorised'}: the bot token was refused"
    if status == 403:
        return f"{description or 'forbidden'}: add the bot to the chat again"
    moved = parameters.get("migrate_to_chat_id")
    if status == 400 and moved is not None:
        return f"the group became a supergroup; set chat_id: {moved}"
    if status == 400 and "chat not found" in description.lower():
        return f"{description}: check chat_id, and that the bot was added to the chat"
    return None


def _wait(data: Any) -> float | None:
    """A 429 says how long in `parameters.retry_after`."""
    parameters = data.get("parameters") if isinstance(data, dict) else None
    return number(parameters.get("retry_after")) if isinstance(parameters, dict) else None


def _reason(response: httpx.Response) -> str:
    return _description(response)[0]


TELEGRAM = Platform(gone=_gone, wait=_wait, reason=_reason)
