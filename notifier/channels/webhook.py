"""POST notifications to a URL: a JSON payload signed the Standard Webhooks way, or a Slack or
Discord message.

The URL of a chat webhook is a credential (its path holds the token), so it never appears in
an error, a log line or `check` output: they say "webhook <channel name>" and show the host
at most. Redirects are not followed: a 3xx from a webhook is a misconfiguration, and
following it would hand the payload (and its signature) to wherever it points.

Chat text comes from the `text` template and is escaped here for each platform, after
rendering, so a template can never forget it: Slack gets `& < >` escaped (else `<!channel>`
in a comment pings everyone), Discord gets `allowed_mentions: {"parse": []}` and a broken
`@everyone`/`@here` as well.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import Field, field_validator, model_validator

from notifier.channels.base import (
    Channel,
    ChannelConfig,
    ChannelContext,
    DeliveryError,
    PermanentFailure,
    TemporaryFailure,
)
from notifier.models import Notice
from notifier.redact import destination
from notifier.render import RenderError, build_context
from notifier.schema import Duration, HttpUrl

SLACK_LIMIT = 40_000
DISCORD_LIMIT = 2_000
ELLIPSIS = "…"
ZWSP = "\u200b"
_RESERVED_HEADERS = frozenset({"webhook-id", "webhook-timestamp", "webhook-signature",
                               "content-type", "content-length", "host"})
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


class WebhookConfig(ChannelConfig):
    type: Literal["webhook"]
    url: HttpUrl = Field(repr=False)
    """A credential for chat platforms (the token is in the path): never shown whole."""
    format: Literal["json", "slack", "discord"] = "json"
    secret: str | None = Field(None, repr=False)
    """Standard Webhooks signing secret, `whsec_` + base64; json format only."""
    timeout: Duration = 15.0
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    """Extra request headers, e.g. an Authorization for a self-hosted receiver."""

    @field_validator("secret")
    @classmethod
    def _check_secret(cls, value: str | None) -> str | None:
        if value is not None:
            secret_key(value)  # its ValueError never quotes the secret
        return value

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not name or any(ch not in _TOKEN for ch in name):
                raise ValueError(f"{name!r} is not a valid HTTP header name")
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by notifier itself")
            if any(ch in text for ch in "\r\n\0"):
                raise ValueError(f"the value of header {name!r} contains a line break")
        return value

    @model_validator(mode="after")
    def _secret_needs_json(self) -> WebhookConfig:
        if self.secret is not None and self.format != "json":
            raise ValueError("secret signs the json format only; Slack and Discord "
                             "webhooks do not check signatures")
        return self


def secret_key(secret: str) -> bytes:
    """The HMAC key inside a `whsec_...` secret."""
    body = secret.strip().removeprefix("whsec_")
    try:
        key = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("secret must be whsec_ followed by base64, as Standard Webhooks "
                         "receivers generate it") from None
    if len(key) < 16:
        raise ValueError("secret is too short: use at least 16 random bytes (24 base64 "
                         "characters)")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks `webhook-signature` value: `v1,` + base64 HMAC-SHA256."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def payload(notice: Notice, context: dict[str, Any] | None = None) -> dict[str, Any]:
    """The json format's body; documented in docs/templates.md."""
    ctx = context if context is not None else build_context(notice)
    entry = notice.entry
    parent = notice.parent
    published = entry.published or entry.updated
    return {
        "type": "post.created" if entry.kind == "post" else "comment.created",
        "id": notice.notification_id,
        "subscription": notice.subscription,
        "channel": notice.channel,
        "entry": {
            "key": entry.key,
            "kind": entry.kind,
            "title": entry.title,
            "author": entry.author,
            "author_url": ctx["author_url"],
            "link": ctx["link"],
            "published": published.astimezone(UTC).isoformat() if published else None,
            "text": ctx["text"],
            "html": str(ctx["html"]),
            "post_title": ctx["post_title"],
            "post_link": ctx["post_link"],
            "parent_key": entry.parent_key or None,
            "is_reply": notice.is_reply,
        },
        "parent": None if parent is None else {
            "author": ctx["parent_author"],
            "excerpt": ctx["parent_excerpt"],
            "link": ctx["parent_link"],
        },
        "feed": {"title": notice.feed_title, "url": ctx["feed_url"]},
    }


def slack_text(text: str, link: str) -> str:
    """Slack's own escaping, so `<!channel>` or `<http://x|y>` in a comment is just text."""
    escaped = _slack_escape(text)
    return fit(escaped, SLACK_LIMIT, _slack_escape(link))


def discord_content(text: str, link: str) -> str:
    """Discord content: at most 2,000 characters, no mass mention even if parsing were on."""
    for word in ("@everyone", "@here"):
        text = text.replace(word, "@" + ZWSP + word[1:])
    return fit(text, DISCORD_LIMIT, link, measure=_utf16_len)


def fit(text: str, limit: int, keep: str = "", *,
        measure: Callable[[str], int] = len) -> str:
    """`text` cut to `limit` with "…", keeping `keep` (the link) whole at its end."""
    if measure(text) <= limit:
        return text
    tail = ""
    head = text
    if keep and keep in text and measure(keep) + 2 < limit:
        at = text.rfind(keep)
        head, tail = text[:at], "\n" + keep
    room = limit - measure(tail) - len(ELLIPSIS)
    cut = head[:room]
    while cut and measure(cut) > room:
        cut = cut[:-1]
    # Never end inside an HTML entity such as "&amp;" that Slack would show half of.
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:] and len(cut) - amp < 6:
        cut = cut[:amp]
    return cut.rstrip() + ELLIPSIS + tail


def retry_after(response: httpx.Response, now: float) -> float | None:
    """Seconds to wait: Retry-After (seconds or an HTTP date), else Discord's JSON field."""
    header = response.headers.get("retry-after", "").strip()
    if header:
        try:
            return max(float(header), 0.0)
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(header)
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return max(when.timestamp() - now, 0.0)
    if "json" in response.headers.get("content-type", ""):
        try:
            value = response.json().get("retry_after")
        except (ValueError, AttributeError):
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return max(float(value), 0.0)
    return None


class WebhookChannel(Channel):
    kind: ClassVar[str] = "webhook"
    config_type: ClassVar[type[ChannelConfig]] = WebhookConfig
    template_slots: ClassVar[tuple[str, ...]] = ("text",)
    config: WebhookConfig

    def __init__(self, name: str, config: ChannelConfig, context: ChannelContext,
                 *, clock: Callable[[], float] = time.time) -> None:
        if not isinstance(config, WebhookConfig):
            raise TypeError(f"channel {name}: expected a webhook configuration")
        super().__init__(name, config, context)
        self.clock = clock

    def request_url(self) -> str:
        """Discord answers 204 without `wait=true`, and only with it reports errors fully."""
        url = self.config.url
        if self.config.format != "discord":
            return url
        base, hash_, fragment = url.partition("#")
        path, _, query = base.partition("?")
        params = [p for p in query.split("&") if p]
        if not any(p.split("=", 1)[0] == "wait" for p in params):
            params.append("wait=true")
        return f"{path}?{'&'.join(params)}{hash_}{fragment}"

    def build_request(self, notice: Notice) -> tuple[bytes, dict[str, str]]:
        """Body and headers for one notice; the same id on every retry, a fresh timestamp."""
        if self.config.format == "json":
            data = payload(notice, self.context.renderer.context(notice, self.kind))
        else:
            try:
                text = self.render("text", notice).strip()
            except RenderError as exc:
                raise TemporaryFailure(f"webhook {self.name}: {exc}") from None
            link = self.context.renderer.context(notice, self.kind)["link"]
            if self.config.format == "slack":
                data = {"text": slack_text(text, link)}
            else:
                data = {"content": discord_content(text, link),
                        "allowed_mentions": {"parse": []}}
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        timestamp = int(self.clock())
        headers = {**self.config.headers,
                   "content-type": "application/json",
                   "webhook-id": notice.notification_id,
                   "webhook-timestamp": str(timestamp)}
        if self.config.secret is not None:
            headers["webhook-signature"] = sign(self.config.secret,
                                                notice.notification_id, timestamp, body)
        return body, headers

    async def send(self, notice: Notice) -> None:
        body, headers = self.build_request(notice)
        try:
            response = await self.context.http.post(
                self.request_url(), content=body, headers=headers,
                timeout=self.config.timeout, follow_redirects=False)
        except httpx.TimeoutException:
            raise TemporaryFailure(f"webhook {self.name}: timed out") from None
        except httpx.TransportError as exc:
            # httpx's messages come from the socket layer; the URL is not in them, but the
            # exception's request is: use the class name and the OS reason only.
            raise TemporaryFailure(f"webhook {self.name}: {_transport_reason(exc)}") from None
        failure = self._judge(response)
        if failure is not None:
            raise failure

    def _judge(self, response: httpx.Response) -> DeliveryError | None:
        status = response.status_code
        what = f"webhook {self.name}: HTTP {status}"
        if 200 <= status < 300:
            return None
        if 300 <= status < 400:
            return PermanentFailure(f"{what}: redirect not followed; put the final URL in "
                                    "the configuration")
        if status == 410 or (status == 404 and self.config.format != "json"):
            return PermanentFailure(f"{what}: the webhook no longer exists", disable=True)
        if status in (408, 429) or status >= 500:
            return TemporaryFailure(what, retry_after=retry_after(response, self.clock()))
        return PermanentFailure(what + _error_hint(response, self.config.url))

    @classmethod
    def summarize(cls, config: ChannelConfig) -> str:
        if not isinstance(config, WebhookConfig):
            return cls.kind
        signed = ", signed" if config.secret is not None else ""
        return f"webhook ({config.format}{signed}) to {destination(config.url)}"

    def describe(self) -> str:
        return self.summarize(self.config)


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _utf16_len(text: str) -> int:
    """Discord counts JavaScript string length: an emoji outside the BMP counts twice."""
    return len(text.encode("utf-16-le")) // 2


def _transport_reason(exc: httpx.TransportError) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return f"{type(exc).__name__}: {cause.strerror}"
        cause = cause.__cause__ or cause.__context__
    return type(exc).__name__


def _error_hint(response: httpx.Response, url: str) -> str:
    """A short reason from the receiver's answer (Slack says `invalid_payload`, ...)."""
    text = " ".join(response.text[:200].split()) if response.content else ""
    if not text or "<" in text:  # an HTML error page says nothing useful in one line
        return ""
    # A receiver that echoes the request would put the token in our log: cut every path
    # segment of the URL out of its words.
    for secret in [url, *(part for part in urlsplit(url).path.split("/") if len(part) >= 8)]:
        text = text.replace(secret, "…")
    return f" ({text[:120]})"

