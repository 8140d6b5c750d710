"""What every channel kind has in common: its settings, how it reports failure, how it sends.

A channel renders and sends; it never decides whether to retry. It raises
`TemporaryFailure` (try again later, perhaps after `retry_after`) or `PermanentFailure`
(this message can never be delivered; `disable` when the destination itself is gone), and
the outbox turns that into state. A channel that returns normally has had its message
accepted by the server, and only then is the notification marked sent.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Self

from pydantic import Field, model_validator

from notifier.delivery.digest import DIGEST_MAX, DeliveryTiming
from notifier.delivery.retry import WEBHOOK_RETRY, RetryPolicy
from notifier.errors import NotifierError
from notifier.models import Notice
from notifier.schema import Duration

if TYPE_CHECKING:
    import httpx

    from notifier.render import Renderer


class ChannelConfig(DeliveryTiming):
    """Settings every channel kind accepts; each kind subclasses it with a `type` literal.

    From `DeliveryTiming`: `digest`, `timezone`, `quiet_hours`.
    """

    type: str
    templates: dict[str, str] = {}
    """Template slot -> file (relative to the config file), overriding the packaged one."""
    retry: RetryPolicy | None = None
    """How failed messages are retried; None takes the kind's `default_retry`."""
    pace: Duration | None = None
    """Minimum time between two messages; None takes the kind's `default_pace()`."""
    burst_limit: int | None = Field(None, ge=1, le=DIGEST_MAX - 1)
    """More notifications than this due at once go out as one summary message."""

    kind_slots: ClassVar[tuple[str, ...] | None] = None
    """Set by the `Channel` subclass that owns this settings type: its `template_slots`."""

    def template_slots(self) -> tuple[str, ...] | None:
        """The slots `templates:` may name with these settings; None accepts any."""
        return self.kind_slots

    @model_validator(mode="after")
    def _known_template_slots(self) -> Self:
        """A misspelt slot would silently leave the packaged template in use."""
        slots = self.template_slots()
        if slots is None:
            return self
        for slot in self.templates:
            if slot not in slots and slot.removeprefix("digest_") not in slots:
                known = ", ".join(slots) or "none (this format has a fixed payload)"
                raise ValueError(f"templates: {self.type} channels have no template slot "
                                 f"{slot!r}; theirs: {known} (and their digest_ variants)")
        return self


class DeliveryError(NotifierError):
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
    http: httpx.AsyncClient | None
    """None when no configured channel sends over HTTP: opening a client costs a start-up
    a few hundred milliseconds (its TLS trust store and connection pool)."""


class Channel(ABC):
    """One configured destination, e.g. the `team` Slack webhook."""

    kind: ClassVar[str]
    config_type: ClassVar[type[ChannelConfig]]
    template_slots: ClassVar[tuple[str, ...]]
    """The templates this kind renders; each has a packaged default `<kind>/<slot>.j2`."""
    default_retry: ClassVar[RetryPolicy] = WEBHOOK_RETRY
    uses_http: ClassVar[bool] = False
    """Whether the kind sends through `ChannelContext.http`."""
    _pause: float | None

    def __init_subclass__(cls, **kwargs: object) -> None:
        # The settings type learns its kind's slots here, so no config repeats them.
        super().__init_subclass__(**kwargs)
        if "config_type" in cls.__dict__ and "template_slots" in cls.__dict__:
            cls.config_type.kind_slots = cls.template_slots

    @property
    def retry_policy(self) -> RetryPolicy:
        return self.config.retry or self.default_retry

    @property
    def pace(self) -> float:
        """Minimum seconds between two messages of this channel (0: as fast as accepted)."""
        return self.config.pace if self.config.pace is not None else self.default_pace()

    def default_pace(self) -> float:
        """The platform's own limit when one is documented (Slack: about one a second)."""
        return 0.0

    def note_pause(self, seconds: float | None) -> None:
        """Called by a send that learned the server wants a pause before the next message
        (Discord's `X-RateLimit-*` headers); the delivery step paces the channel by it."""
        if seconds is not None:
            self._pause = max(self._pause or 0.0, seconds)

    def take_pause(self) -> float | None:
        """The pause asked for since the last call, once."""
        pause, self._pause = self._pause, None
        return pause

    def __init__(self, name: str, config: ChannelConfig, context: ChannelContext) -> None:
        self.name = name
        self.config = config
        self.context = context
        self._pause = None

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

    @contextlib.asynccontextmanager
    async def delivery_round(self) -> AsyncIterator[None]:
        """Around every batch of one round of delivery (one drain of the outbox; all of
        `run --once`): kinds that hold a connection (SMTP) keep it open from one batch to the
        next and close it when the round ends. Nothing to keep by default."""
        yield

    @classmethod
    def summarize(cls, config: ChannelConfig) -> str:
        """A one-line, secret-free description of a configured channel, for `check`."""
        return cls.kind
