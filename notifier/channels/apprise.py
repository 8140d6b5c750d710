"""The long tail of services (Pushover, Gotify, Signal, SMS gateways, …) through Apprise.

One channel holds a list of Apprise URLs; each notification is sent to all of them through
the same outbox as every other kind, so it is retried with the outbox's policy until every
URL has taken it (at least once, never lost). What Apprise cannot tell us limits what can
be promised: it reports only success or failure per URL, with no Retry-After, no reason
that separates "gone" from "busy", and no message id a service could use to drop a
repeat. So any failure is temporary and retried on the outbox's ladder, and a retry goes
to every URL of the channel again: a channel with several URLs can repeat a message on
the URLs that had taken it. Give each service its own channel where that matters. The
platforms with native channels (email, Slack, Discord, Mattermost, Teams, Matrix,
Telegram, ntfy) should use them: those read the platform's own answers.

The body is plain text (`body_format: text`); Apprise escapes it for each service that
reads Markdown or HTML, so a commenter's Markdown stays text there too. Apprise converts
text to Markdown that way since 2.0 (before, it passed the text through, and a comment's
`[bank](http://evil)` became a link): hence `apprise>=2.0`. A URL typed in a comment may
still become a link where a service links bare URLs; it shows where it leads.

Apprise URLs hold credentials: they are never logged or shown whole; `check` and errors
name the services by scheme only. Apprise itself is an optional dependency
(`pip install 'notifier[apprise]'`) imported only when such a channel exists.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator

from notifier.delivery.channel import Channel, ChannelConfig, ChannelContext, TemporaryFailure
from notifier.models import Notice
from notifier.schema import Duration

if TYPE_CHECKING:
    import apprise as apprise_lib

APPRISE_TITLE_LIMIT = 250
"""Apprise and most services cut titles far shorter than bodies."""
_MISSING = ("type: apprise needs the Apprise library; install it with "
            "pip install 'notifier[apprise]'")


def _library() -> Any:
    try:
        import apprise as library
    except ImportError:
        raise ValueError(_MISSING) from None
    # Apprise's debug lines print service URLs, tokens included: `logsetup` keeps its logger
    # at warnings and up, even with -vv.
    return library


def scheme(url: str) -> str:
    """`pover://user@token` -> `pover`: all of a URL that is safe to show."""
    head, sep, _ = url.partition("://")
    return head.lower() if sep and head.isascii() and head.replace("+", "").isalnum() \
        else "?"


def _instantiate(library: Any, url: str) -> Any:
    """Apprise's parse of one URL, or None. It logs a URL it cannot parse whole, token and
    all, so its logger is silenced meanwhile: the caller's error names the scheme only."""
    logger = logging.getLogger("apprise")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        return library.Apprise.instantiate(url)
    finally:
        logger.setLevel(level)


class AppriseConfig(ChannelConfig):
    type: Literal["apprise"]
    urls: list[str] = Field(min_length=1, repr=False)
    """Apprise URLs (https://github.com/caronc/apprise/wiki): credentials, never shown."""
    timeout: Duration = 30.0
    """How long one notification to all the URLs may take before it counts as failed."""

    @field_validator("urls")
    @classmethod
    def _known_services(cls, value: list[str]) -> list[str]:
        library = _library()
        for number, url in enumerate(value, 1):
            if _instantiate(library, url.strip()) is None:
                raise ValueError(f"URL {number} ({scheme(url)}://…) is not one Apprise "
                                 "understands; see the Apprise wiki for its form")
        return [url.strip() for url in value]


class AppriseChannel(Channel):
    kind: ClassVar[str] = "apprise"
    config_type: ClassVar[type[ChannelConfig]] = AppriseConfig
    template_slots: ClassVar[tuple[str, ...]] = ("title", "text")
    config: AppriseConfig

    def __init__(self, name: str, config: ChannelConfig, context: ChannelContext) -> None:
        if not isinstance(config, AppriseConfig):
            raise TypeError(f"channel {name}: expected an apprise configuration")
        super().__init__(name, config, context)
        self._apprise: apprise_lib.Apprise | None = None

    @property
    def what(self) -> str:
        return f"apprise {self.name}"

    def _targets(self) -> apprise_lib.Apprise:
        if self._apprise is None:
            library = _library()
            targets = library.Apprise()
            for url in self.config.urls:
                targets.add(url)
            self._apprise = targets
        return self._apprise

    async def send(self, notice: Notice) -> None:
        from notifier.render import RenderError  # with Jinja2, at the first message

        try:
            title = self.render("title", notice).strip()[:APPRISE_TITLE_LIMIT]
            body = self.render("text", notice).strip()
        except RenderError as exc:
            raise TemporaryFailure(f"{self.what}: {exc}") from None
        targets = self._targets()
        library = _library()
        try:
            result = await asyncio.wait_for(asyncio.to_thread(
                targets.notify, body=body, title=title,
                body_format=library.NotifyFormat.TEXT), self.config.timeout)
        except TimeoutError:
            raise TemporaryFailure(f"{self.what}: no answer within "
                                   f"{self.config.timeout:g} s") from None
        if not result:
            services = ", ".join(sorted({scheme(url) for url in self.config.urls}))
            raise TemporaryFailure(f"{self.what}: not every service took the message "
                                   f"({services}); Apprise gives no reason or wait")

    @classmethod
    def summarize(cls, config: ChannelConfig) -> str:
        if not isinstance(config, AppriseConfig):
            return cls.kind
        services = ", ".join(scheme(url) for url in config.urls)
        return f"apprise to {len(config.urls)} URL{'s' if len(config.urls) != 1 else ''} " \
            f"({services})"

