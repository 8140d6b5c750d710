"""Push notifications to phones through ntfy: a POST of plain text to a topic URL.

The title, the tags and the link to open travel in headers (`Title`, `Tags`, `Click`).
HTTP headers are Latin-1 at best, and a comment's title or author is not, so every value
that is not plain ASCII is sent RFC 2047-encoded (`=?UTF-8?B?...?=`), which ntfy decodes.
The body is cut to 4,096 bytes: a longer one would turn into an attachment, or be refused
where attachments are off. ntfy has no mentions, so nothing is escaped.

A topic URL is the topic's only secret when no token protects it; like a webhook URL it is
shown by host only.
"""

from __future__ import annotations

import base64
from typing import ClassVar, Literal
from urllib.parse import quote

import httpx
from pydantic import Field, field_validator

from notifier.channels.httpsend import HttpChannel, Platform, fit, utf8_len
from notifier.delivery.channel import ChannelConfig
from notifier.models import Notice
from notifier.redact import destination
from notifier.schema import Duration, HttpUrl, StrList, Token

NTFY_LIMIT = 4_096
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"
_WORD_BYTES = 45
"""UTF-8 bytes per encoded word: 60 base64 characters, 72 with the wrapping, under RFC
2047's 75."""


class NtfyConfig(ChannelConfig):
    type: Literal["ntfy"]
    url: HttpUrl = Field(repr=False)
    """The topic, e.g. https://ntfy.sh/my-blog-replies."""
    token: Token | None = Field(None, repr=False)
    """An access token (`tk_...`) for a protected topic; sent as a Bearer token."""
    tags: StrList = Field(default_factory=lambda: ["speech_balloon"])
    """Emoji short codes or words shown with the notification."""
    priority: Literal["min", "low", "default", "high", "max"] = "default"
    timeout: Duration = 15.0

    @field_validator("url")
    @classmethod
    def _has_topic(cls, value: str) -> str:
        path = value.split("://", 1)[1].partition("/")[2].split("?")[0].strip("/")
        if not path:
            raise ValueError("the URL must name a topic, e.g. https://ntfy.sh/my-topic")
        return value

    @field_validator("tags")
    @classmethod
    def _tags_one_word(cls, value: list[str]) -> list[str]:
        for tag in value:
            if not tag or any(ch in tag for ch in "\r\n\0,"):
                raise ValueError(f"{tag!r}: a tag cannot be empty or contain a comma or a "
                                 "line break")
        return value


class NtfyChannel(HttpChannel):
    kind: ClassVar[str] = "ntfy"
    config_type: ClassVar[type[ChannelConfig]] = NtfyConfig
    template_slots: ClassVar[tuple[str, ...]] = ("title", "text")
    config: NtfyConfig

    def build_request(self, notice: Notice) -> tuple[bytes, dict[str, str]]:
        title = self.render_slot("title", notice)
        text = self.render_slot("text", notice)
        link = self.link(notice)
        headers = {"content-type": "text/plain; charset=utf-8",
                   "title": header_value(title),
                   "priority": self.config.priority}
        if self.config.tags:
            headers["tags"] = header_value(",".join(self.config.tags))
        if link:
            headers["click"] = quote(link, safe=_URL_SAFE)  # an IRI's letters, escaped
        if self.config.token is not None:
            headers["authorization"] = f"Bearer {self.config.token}"
        body = fit(text, NTFY_LIMIT, link, measure=utf8_len).encode("utf-8")
        return body, headers

    async def send(self, notice: Notice) -> None:
        body, headers = self.build_request(notice)
        await self.request("POST", self.config.url, body, headers, timeout=self.config.timeout,
                           platform=NTFY, secrets=[self.config.url, self.config.token or ""])

    @classmethod
    def summarize(cls, config: ChannelConfig) -> str:
        if not isinstance(config, NtfyConfig):
            return cls.kind
        login = ", with a token" if config.token else ""
        return f"ntfy topic on {destination(config.url)}{login}"


def header_value(text: str) -> str:
    """`text` as one header line: ASCII as is, anything else RFC 2047 encoded words split on
    character boundaries (so each word decodes on its own), never a line break."""
    text = " ".join(text.split())
    if text.isascii():
        return text
    words: list[str] = []
    chunk = b""
    for char in text:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > _WORD_BYTES:
            words.append(chunk.decode("utf-8"))
            chunk = b""
        chunk += encoded
    words.append(chunk.decode("utf-8"))
    return " ".join(f"=?UTF-8?B?{base64.b64encode(w.encode('utf-8')).decode('ascii')}?="
                    for w in words)


def _gone(response: httpx.Response) -> str | None:
    """A topic deleted, or a token that no longer opens it: every message would fail."""
    if response.status_code == 410:
        return "the topic is gone"
    if response.status_code in (401, 403):
        return "the server refused the token for this topic"
    return None


NTFY = Platform(gone=_gone)
