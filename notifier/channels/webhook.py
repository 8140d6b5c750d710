"""POST notifications to a URL: a JSON payload signed the Standard Webhooks way, or a chat
message for Slack, Mattermost, Discord or Teams (see `formats`).

A format, not a kind of its own, is anything that is one unauthenticated JSON POST to a URL
the user was given; platforms with their own credentials and URL shapes (Matrix, Telegram,
ntfy) are channel types.

The URL of a chat webhook is a credential (its path holds the token), so it never appears in
an error, a log line or `check` output: they say "webhook <channel name>" and show the host
at most. Redirects are not followed: a 3xx from a webhook is a misconfiguration, and
following it would hand the payload (and its signature) to wherever it points.

A chat message is laid out per platform from the notice's pieces (Slack blocks, a Discord
embed, an Adaptive Card, Mattermost Markdown), every stranger's text escaped after rendering
so a template can never forget it; the `text` template is Slack's fallback and every
digest, and a `text` template of the user's own replaces the built layout.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import UTC
from typing import Any, ClassVar, Literal

import httpx
from pydantic import Field, field_validator, model_validator

from notifier import redact
from notifier.channels.formats import (
    CHAT_FORMATS,
    DISCORD_LIMIT,
    SLACK_LIMIT,
    chat_message,
    discord_content,
    mattermost_text,
    slack_text,
)
from notifier.channels.httpsend import HttpChannel, Platform, dump, fit, number
from notifier.delivery.channel import ChannelConfig
from notifier.delivery.pacing import discord_pause
from notifier.models import Notice
from notifier.redact import destination
from notifier.render import build_context, digest_total
from notifier.schema import Duration, HttpUrl

__all__ = ["DISCORD_LIMIT", "SLACK_LIMIT", "WebhookChannel", "WebhookConfig",
           "discord_content", "fit", "mattermost_text", "payload", "sign", "slack_text"]

_RESERVED_HEADERS = frozenset({"webhook-id", "webhook-timestamp", "webhook-signature",
                               "content-type", "content-length", "host"})
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


class WebhookConfig(ChannelConfig):
    type: Literal["webhook"]
    url: HttpUrl = Field(repr=False)
    """A credential for chat platforms (the token is in the path): never shown whole."""
    format: Literal["json", "slack", "mattermost", "discord", "teams"] = "json"
    secret: str | None = Field(None, repr=False)
    """Standard Webhooks signing secret, `whsec_` + base64; json format only."""
    timeout: Duration = 15.0
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    """Extra request headers, e.g. an Authorization for a self-hosted receiver."""

    def template_slots(self) -> tuple[str, ...] | None:
        """The json format's payload is fixed: a template there would do nothing."""
        return () if self.format == "json" else self.kind_slots

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
            raise ValueError("secret signs the json format only; chat platforms' "
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


def digest_payload(notice: Notice) -> dict[str, Any]:
    """The json format's body for a digest: each member's own payload, under one id."""
    return {"type": "digest", "id": notice.notification_id, "channel": notice.channel,
            "count": len(notice.digest), "total": digest_total(notice),
            "notifications": [payload(member) for member in notice.digest]}


class WebhookChannel(HttpChannel):
    kind: ClassVar[str] = "webhook"
    config_type: ClassVar[type[ChannelConfig]] = WebhookConfig
    template_slots: ClassVar[tuple[str, ...]] = ("text",)
    config: WebhookConfig

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
        if self.config.format == "json" and notice.digest:
            data = digest_payload(notice)
        elif self.config.format == "json":
            data = payload(notice, self.context.renderer.context(notice, self.kind))
        else:
            text = self.render_slot("text", notice)
            context = self.context.renderer.context(notice, self.kind)
            own = self.context.renderer.is_own(self.kind, "text", notice, self.config.templates)
            data = CHAT_FORMATS[self.config.format](chat_message(text, context, own_text=own))
        body = dump(data)
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
        platform = JSON_PLATFORM if self.config.format == "json" else CHAT_PLATFORM
        await self.request("POST", self.request_url(), body, headers,
                           timeout=self.config.timeout, platform=platform,
                           secrets=[self.config.url, *self._secret_headers()])

    def _secret_headers(self) -> list[str]:
        """Values of `headers:` that are credentials (`Authorization`, `X-Api-Key`...): a
        receiver that echoes the request in its refusal must not put them in the log."""
        return [value for name, value in self.config.headers.items()
                if redact.secret_name(name)]

    def observe(self, response: httpx.Response) -> None:
        if self.config.format == "discord":
            self.note_pause(discord_pause(response.headers))

    def default_pace(self) -> float:
        """Slack accepts about one message a second per webhook and drops bursts beyond it;
        Teams about four a second."""
        return {"slack": 1.0, "teams": 0.25}.get(self.config.format, 0.0)

    @classmethod
    def summarize(cls, config: ChannelConfig) -> str:
        if not isinstance(config, WebhookConfig):
            return cls.kind
        signed = ", signed" if config.secret is not None else ""
        return f"webhook ({config.format}{signed}) to {destination(config.url)}"

    def describe(self) -> str:
        return self.summarize(self.config)


def _discord_wait(data: Any) -> float | None:
    """Discord's 429 says `retry_after` (seconds) in its JSON, not always in a header."""
    return number(data.get("retry_after")) if isinstance(data, dict) else None


def _webhook_gone(response: httpx.Response) -> str | None:
    return "the webhook no longer exists" if response.status_code == 410 else None


def _chat_gone(response: httpx.Response) -> str | None:
    """Slack, Discord, Mattermost and Teams answer 404 for a deleted webhook and 401 or 403
    for a token that no longer works (Discord's "Invalid Webhook Token", Slack's
    `invalid_token`): no message will pass until the URL is replaced. A generic json
    receiver's 404 or 401 may be a passing fault, so only chat formats read them as gone."""
    status = response.status_code
    if status in (404, 410):
        return "the webhook no longer exists"
    if status in (401, 403):
        return "the webhook's token was refused; replace the URL"
    return None


JSON_PLATFORM = Platform(gone=_webhook_gone, wait=_discord_wait)
CHAT_PLATFORM = Platform(gone=_chat_gone, wait=_discord_wait)
