"""The one registry of channel kinds: configuration type, class and defaults by `type:`.

The configuration loader asks it which settings a `type:` accepts, the daemon asks it to
build each configured channel; adding a kind means one module and one line here.

A kind's module is imported the first time the kind is asked for: a configuration with one
email channel does not pay, at every start, for the chat and webhook kinds it never uses.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from notifier.delivery.channel import Channel, ChannelConfig, ChannelContext
from notifier.errors import NotifierError

__all__ = ["CHANNEL_KINDS", "UnknownChannelKind", "build_channel", "channel_config_type"]

_MODULES: dict[str, tuple[str, str]] = {
    "console": ("notifier.channels.console", "ConsoleChannel"),
    "email": ("notifier.channels.email", "EmailChannel"),
    "webhook": ("notifier.channels.webhook", "WebhookChannel"),
    "matrix": ("notifier.channels.matrix", "MatrixChannel"),
    "telegram": ("notifier.channels.telegram", "TelegramChannel"),
    "ntfy": ("notifier.channels.ntfy", "NtfyChannel"),
    "apprise": ("notifier.channels.apprise", "AppriseChannel"),
}
"""Kind name -> (module, class): the registry itself, in the order `check` lists kinds."""


class _Kinds(Mapping[str, type[Channel]]):
    """The registry as a read-only mapping that imports a kind's module on first lookup."""

    def __getitem__(self, kind: str) -> type[Channel]:
        module, name = _MODULES[kind]
        cls: type[Channel] = getattr(importlib.import_module(module), name)
        return cls

    def __iter__(self) -> Iterator[str]:
        return iter(_MODULES)

    def __len__(self) -> int:
        return len(_MODULES)

    def __contains__(self, kind: object) -> bool:
        return kind in _MODULES


CHANNEL_KINDS: Mapping[str, type[Channel]] = _Kinds()


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
