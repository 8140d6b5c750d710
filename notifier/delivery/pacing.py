"""How fast one channel may send: a minimum gap between messages, and pauses servers ask for.

Slack accepts about one message a second per webhook and drops or rejects the excess;
Discord says in `X-RateLimit-Remaining`/`X-RateLimit-Reset-After` when its bucket is empty;
any server may answer 429 with `Retry-After`. The pacer remembers the earliest time the next
message may go; it is pure (the caller passes `now` and does the sleeping), one per channel,
so a slow channel never holds back another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

MAX_SERVER_PAUSE = 3600.0
"""A pause a server asks for is honoured up to an hour; the rows wait in the outbox meanwhile."""
MAX_INLINE_WAIT = 10.0
"""A delivery worker sleeps for its channel's pacing up to this long; a longer pause ends the
cycle and the rows stay queued, so a stop signal is never kept waiting."""


@dataclass(slots=True)
class Pacer:
    """When one channel's next message may start: its own pace, and a pause its server
    asked for."""

    interval: float = 0.0
    """Minimum seconds between the starts of two messages; 0 is no pacing."""
    not_before: float = 0.0

    def wait(self, now: float) -> float:
        """Seconds until the next message may start."""
        return max(0.0, self.not_before - now)

    def sent(self, now: float, server_pause: float | None = None) -> None:
        """A message just went (or was refused): space the next one."""
        pause = min(max(server_pause or 0.0, 0.0), MAX_SERVER_PAUSE)
        self.not_before = max(self.not_before, now + self.interval, now + pause)


def discord_pause(headers: Mapping[str, str]) -> float | None:
    """Seconds until Discord's bucket refills, when the answer says it is empty."""
    if headers.get("x-ratelimit-remaining", "").strip() != "0":
        return None
    try:
        return max(float(headers.get("x-ratelimit-reset-after", "")), 0.0)
    except ValueError:
        return None
