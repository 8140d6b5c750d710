"""When to try a failed notification again, and when to give up: pure timing decisions.

The outbox rows themselves live in the store; this module only answers "given this failure,
what now?", so the policy can be tested with plain numbers and configured per channel.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pydantic import Field

from notifier.limits import MAX_RETRY_AFTER
from notifier.schema import Duration, StrictModel


class RetryPolicy(StrictModel):
    """`retry: {first: 5s, max: 10h, give_up_after: 3d}` on a channel.

    The n-th retry waits `steps[n-1]` when `steps` is given (the last step repeats), else
    `first * factor**(n-1)` capped at `max`; either way moved by up to 10% so that many
    failed messages do not all come back at the same second.
    """

    first: Duration = 5.0
    max: Duration = 36000.0
    factor: float = Field(6.0, ge=1.0, le=100.0)
    steps: list[Duration] | None = Field(None, min_length=1, max_length=50)
    give_up_after: Duration = 3 * 86400.0

    def delay(self, attempts: int) -> float:
        """Seconds before the next try after the `attempts`-th failure (from 1)."""
        if self.steps:
            return self.steps[min(max(attempts, 1), len(self.steps)) - 1]
        return float(min(self.max, self.first * self.factor ** max(attempts - 1, 0)))


WEBHOOK_RETRY = RetryPolicy(steps=[5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0])
"""5 s, 5 min, 30 min, 2 h, 5 h, then every 10 h: the Standard Webhooks ladder."""

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
    delay = policy.delay(attempts) * (1 + (rng or random).uniform(-0.1, 0.1))
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    retry_at = now + delay
    if retry_at - created > policy.give_up_after:
        return Verdict(None, f"gave up after {attempts} attempts")
    return Verdict(retry_at, f"retry {attempts} in {delay:.0f} s")
