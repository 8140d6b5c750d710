"""When to try a failed notification again, and when to give up: pure timing decisions.

The outbox rows themselves live in the store; this module only answers "given this failure,
what now?", so the policy can be tested with plain numbers and configured per channel.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pydantic import Field

from notifier.schema import Duration, StrictModel

MAX_RETRY_AFTER = 86400.0
"""A server's Retry-After is honoured up to a day; beyond that it is a misconfiguration."""


class RetryPolicy(StrictModel):
    """`retry: {first: 5s, max: 10h, give_up_after: 3d}` on a channel.

    The n-th retry waits `first * factor**(n-1)`, capped at `max`, moved by up to 10% either
    way so that many failed messages do not all come back at the same second.
    """

    first: Duration = 5.0
    max: Duration = 36000.0
    factor: float = Field(6.0, ge=1.0, le=100.0)
    give_up_after: Duration = 3 * 86400.0


WEBHOOK_RETRY = RetryPolicy()
"""About 5 s, 30 s, 3 min, 18 min, 2 h, then every 10 h: the Standard Webhooks ladder's shape."""

SMTP_RETRY = RetryPolicy(first=300.0, max=3600.0, factor=2.0)
"""5, 10, 20, 40 minutes, then hourly: close to what Postfix does for a 4xx."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """`retry_at` None means the notification is dead-lettered."""

    retry_at: float | None
    reason: str


def after_failure(policy: RetryPolicy, *, attempts: int, created: float, now: float,
                  retry_after: float | None = None, permanent: bool = False,
                  rng: random.Random | None = None) -> Verdict:
    """Decide the next attempt after the `attempts`-th failed one (counting from 1)."""
    if permanent:
        return Verdict(None, "permanent failure")
    delay = min(policy.max, policy.first * policy.factor ** max(attempts - 1, 0))
    delay *= 1 + (rng or random).uniform(-0.1, 0.1)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    retry_at = now + delay
    if retry_at - created > policy.give_up_after:
        return Verdict(None, f"gave up after {attempts} attempts")
    return Verdict(retry_at, f"retry {attempts} in {delay:.0f} s")
