"""What every channel kind has in common: its settings, how it reports failure, how it sends.

A channel renders and sends; it never decides whether to retry. It raises
`TemporaryFailure` (try again later, perhaps after `retry_after`) or `PermanentFailure`
(this message can never be delivered; `disable` when the destination itself is gone), and
the outbox turns that into state. A channel that returns normally has had its message
accepted by the server, and only then is the notification marked sent.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import httpx

from notifier.models import Notice
from notifier.outbox import WEBHOOK_RETRY, RetryPolicy
from notifier.schema import StrictModel

if TYPE_CHECKING:
    from notifier.render import Renderer


class ChannelConfig(StrictModel):
    """Settings every channel kind accepts; each kind subclasses it with a `type` literal."""

    type: str
    templates: dict[str, str] = {}
    """Template slot -> file (relative to the config file), overriding the packaged one."""
    retry: RetryPolicy | None = None
    """How failed messages are retried; None takes the kind's `default_retry`."""


class DeliveryError(Exception):
    """A message was not accepted. The text is shown in logs and `status`: no secrets."""


class TemporaryFailure(DeliveryError):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class PermanentFailure(DeliveryError):
    def __init__(self, reason: str, *, disable: bool = False) -> None:
        super().__init__(reason)
        self.disable = disable


@dataclass(frozen=True, slots=True)
class SendResult:
    """The fate of one notice in a batch: `error` None means accepted by the server."""

    notification_id: str
    error: DeliveryError | None = None


@dataclass(frozen=True)
class ChannelContext:
    """Shared resources a channel may use; built once per process."""

    renderer: Renderer
    http: httpx.AsyncClient


class Channel(ABC):
    """One configured destination, e.g. the `team` Slack webhook."""

    kind: ClassVar[str]
    config_type: ClassVar[type[ChannelConfig]]
    template_slots: ClassVar[tuple[str, ...]]
    """The templates this kind renders; each has a packaged default `<kind>/<slot>.j2`."""
    default_retry: ClassVar[RetryPolicy] = WEBHOOK_RETRY

    @property
    def retry_policy(self) -> RetryPolicy:
        return self.config.retry or self.default_retry

    def __init__(self, name: str, config: ChannelConfig, context: ChannelContext) -> None:
        self.name = name
        self.config = config
        self.context = context

    def render(self, slot: str, notice: Notice) -> str:
        """Render one template slot, honouring subscription and channel overrides."""
        return self.context.renderer.render(self.kind, slot, notice, self.config.templates)

    @abstractmethod
    async def send(self, notice: Notice) -> None:
        """Deliver one notice; return only once the server accepted it."""

    async def send_batch(self, notices: Sequence[Notice]) -> AsyncIterator[SendResult]:
        """Deliver several notices, yielding each result as soon as it is known.

        A generator rather than a list, so the outbox records every acceptance at once: a
        crash in the middle of a batch repeats at most the one message in flight. Kinds
        that can reuse a connection (SMTP) override this. After a `PermanentFailure` with
        `disable`, stop: the rest of the batch stays queued.
        """
        for notice in notices:
            try:
                await self.send(notice)
            except DeliveryError as exc:
                yield SendResult(notice.notification_id, exc)
                if isinstance(exc, PermanentFailure) and exc.disable:
                    return
            else:
                yield SendResult(notice.notification_id)

    @classmethod
    def summarize(cls, config: ChannelConfig) -> str:
        """A one-line, secret-free description of a configured channel, for `check`."""
        return cls.kind
