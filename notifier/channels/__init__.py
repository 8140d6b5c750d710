"""The one registry of channel kinds: configuration type, class and defaults by `type:`.

The configuration loader asks it which settings a `type:` accepts, the daemon asks it to
build each configured channel; adding a kind means one module and one line here.
"""

from __future__ import annotations

from notifier.channels.apprise import AppriseChannel
from notifier.channels.console import ConsoleChannel
from notifier.channels.email import EmailChannel
from notifier.channels.matrix import MatrixChannel
from notifier.channels.ntfy import NtfyChannel
from notifier.channels.telegram import TelegramChannel
from notifier.channels.webhook import WebhookChannel
from notifier.delivery.channel import Channel, ChannelConfig, ChannelContext
from notifier.errors import NotifierError

__all__ = ["CHANNEL_KINDS", "UnknownChannelKind", "build_channel", "channel_config_type"]

CHANNEL_KINDS: dict[str, type[Channel]] = {
    cls.kind: cls for cls in (ConsoleChannel, EmailChannel, WebhookChannel, MatrixChannel,
                              TelegramChannel, NtfyChannel, AppriseChannel)
}


class UnknownChannelKind(NotifierError, KeyError):
    """A `type:` no channel kind answers to; a KeyError so lookups can catch it as one."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind

    def __str__(self) -> str:
        return f"unknown channel type {self.kind!r}; known types: {', '.join(CHANNEL_KINDS)}"


def channel_config_type(kind: str) -> type[ChannelConfig]:
    """The settings model for `type: <kind>`."""
    try:
        return CHANNEL_KINDS[kind].config_type
    except KeyError:
        raise UnknownChannelKind(kind) from None


def build_channel(name: str, config: ChannelConfig, context: ChannelContext) -> Channel:
    """The channel object for one validated `channels:` entry."""
    try:
        cls = CHANNEL_KINDS[config.type]
    except KeyError:
        raise UnknownChannelKind(config.type) from None
    if not isinstance(config, cls.config_type):
        raise TypeError(f"channel {name}: {type(config).__name__} is not the configuration "
                        f"of a {config.type} channel")
    return cls(name, config, context)
