"""Send notifications into a Matrix room through the client-server API.

`PUT /_matrix/client/v3/rooms/{room}/send/m.room.message/{txnId}` with the notification id
as the transaction id: a homeserver that already accepted a message answers a retry with the
same event instead of posting it twice, so a crash after acceptance repeats nothing.

The access token goes in the Authorization header, never in the URL, and never into a log
or an error. Messages are `m.notice` by default, the msgtype bots use so that other bots do
not answer them. Mentions: the content carries an empty `m.mentions`, which tells servers
(spec 1.7 and later) that nobody is mentioned, and `@room` in text is broken for older ones.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal
from urllib.parse import quote

import httpx
from pydantic import Field, field_validator

from notifier.channels.httpsend import (
    HttpChannel,
    Platform,
    break_mentions,
    dump,
    fit,
    json_answer,
    json_len,
    number,
)
from notifier.channels.markup import clean, link_html, shape
from notifier.delivery.channel import ChannelConfig
from notifier.models import Notice
from notifier.redact import destination
from notifier.schema import Duration, HttpUrl, Token

MATRIX_LIMIT = 60_000
"""Bytes of event content; the whole event, with what the server adds, must stay under
65,536 bytes or the server answers 413."""

# The HTML the Matrix spec suggests clients render (a subset: no images, which would load
# from the comment author's choice of server, no tables, no fonts).
MATRIX_TAGS = frozenset({"p", "br", "blockquote", "b", "strong", "i", "em", "u", "s", "del",
                         "code", "pre", "ul", "ol", "li", "a", "h3", "h4", "hr", "span"})
MATRIX_ATTRIBUTES = {"a": {"href"}}
_ROOM_ID = re.compile(r"^![^\s:]+(:[^\s]+)?$")
"""`!opaque:server`; rooms of version 12 and later drop the `:server`."""


class MatrixConfig(ChannelConfig):
    type: Literal["matrix"]
    homeserver: HttpUrl
    """The client-server API's base, e.g. https://matrix.example.org (no path needed)."""
    room: str
    """The room id, `!abc123:example.org` (Room settings -> Advanced), not an alias."""
    access_token: Token = Field(repr=False, min_length=1)
    """The bot account's token: never logged, never in an error or `repr()`."""
    msgtype: Literal["m.notice", "m.text"] = "m.notice"
    timeout: Duration = 15.0

    @field_validator("room")
    @classmethod
    def _check_room(cls, value: str) -> str:
        if not _ROOM_ID.match(value):
            raise ValueError(f"{value!r} is not a room id such as !abc123:example.org (an "
                             "alias #name:server cannot be sent to; use the room's id)")
        return value



class MatrixChannel(HttpChannel):
    kind: ClassVar[str] = "matrix"
    config_type: ClassVar[type[ChannelConfig]] = MatrixConfig
    template_slots: ClassVar[tuple[str, ...]] = ("text", "message.html")
    config: MatrixConfig

    def request_url(self, notice: Notice) -> str:
        base = self.config.homeserver.rstrip("/")
        return (f"{base}/_matrix/client/v3/rooms/{quote(self.config.room, safe='')}/send/"
                f"m.room.message/{quote(notice.notification_id, safe='')}")

    def content(self, notice: Notice) -> dict[str, Any]:
        """The event content, cut to fit: plain `body` and sanitised `formatted_body`."""
        text = _no_room_ping(self.render_slot("text", notice))
        html = clean(self.render_slot("message.html", notice), MATRIX_TAGS, MATRIX_ATTRIBUTES)
        link = self.link(notice)

        def build(body: str, formatted: str) -> dict[str, Any]:
            return {"msgtype": self.config.msgtype, "body": body,
                    "format": "org.matrix.custom.html", "formatted_body": formatted,
                    "m.mentions": {}}

        room = MATRIX_LIMIT - len(dump(build("", "")))
        body = fit(text, max(room // 2, room - json_len(html)), link, measure=json_len)
        formatted = shape(html, room - json_len(body), measure=json_len, markup_counts=True,
                          tail=link_html(link, "<br>"), text_filter=_no_room_ping)
        return build(body, formatted)

    async def send(self, notice: Notice) -> None:
        headers = {"authorization": f"Bearer {self.config.access_token}",
                   "content-type": "application/json"}
        await self.request("PUT", self.request_url(notice), dump(self.content(notice)),
                           headers, timeout=self.config.timeout, platform=MATRIX,
                           secrets=[self.config.access_token])

    @classmethod
    def summarize(cls, config: ChannelConfig) -> str:
        if not isinstance(config, MatrixConfig):
            return cls.kind
        return f"matrix room {config.room} on {destination(config.homeserver)}"


def _no_room_ping(text: str) -> str:
    return break_mentions(text, ("@room",))


def _errcode(response: httpx.Response) -> tuple[str, str]:
    data = json_answer(response)
    if not isinstance(data, dict):
        return "", ""
    return str(data.get("errcode") or ""), " ".join(str(data.get("error") or "").split())


def _gone(response: httpx.Response) -> str | None:
    """Answers after which no message can get through until the operator acts."""
    status = response.status_code
    errcode, error = _errcode(response)
    if status == 410:
        return "the homeserver says the room is gone"
    if status == 401 or errcode in ("M_UNKNOWN_TOKEN", "M_MISSING_TOKEN"):
        return f"{errcode or 'unauthorised'}: the access token was refused; log the bot in " \
               "again and update access_token"
    if status == 403 and errcode == "M_FORBIDDEN":
        return f"M_FORBIDDEN: {error or 'not allowed'}; invite the bot to the room again"
    if status == 404 and errcode in ("M_NOT_FOUND", "M_UNRECOGNIZED"):
        return f"{errcode}: {error or 'not found'}; check homeserver and room"
    return None


def _wait(data: Any) -> float | None:
    """`M_LIMIT_EXCEEDED` says `retry_after_ms`, in milliseconds."""
    value = number(data.get("retry_after_ms")) if isinstance(data, dict) else None
    return None if value is None else value / 1000


def _reason(response: httpx.Response) -> str:
    errcode, error = _errcode(response)
    return f"{errcode}: {error}" if errcode else ""


MATRIX = Platform(gone=_gone, wait=_wait, reason=_reason)
