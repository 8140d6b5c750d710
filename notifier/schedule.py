"""When each feed is polled next: pure arithmetic on `now`, stored per feed.

The due time lives in the database, not in the scheduler, so a restart (and later several
nodes) agree on it; APScheduler only ticks and asks the store what is due.
"""

from __future__ import annotations

import random

from notifier.limits import MAX_RETRY_AFTER

MAX_BACKOFF_FACTOR = 8
"""A failing feed is polled at most 8 times less often than configured."""
GONE_DELAY = MAX_RETRY_AFTER
"""A feed or page answering 410 Gone is asked again once a day, not every interval."""


def server_delay(status: int | None, retry_after: float | None) -> float | None:
    """The least delay the server asked for: its Retry-After, or a day after a 410."""
    if status == 410:
        return max(GONE_DELAY, retry_after or 0.0)
    return retry_after


def next_poll(now: float, interval: float, jitter: float, *, errors: int = 0,
              retry_after: float | None = None, rng: random.Random | None = None) -> float:
    """The next poll time after one that ended `errors` failures in a row.

    Jitter spreads feeds that were added together; backoff doubles the interval per
    consecutive failure; a server's Retry-After is honoured (capped at a day).
    """
    factor = min(2 ** max(errors, 0), MAX_BACKOFF_FACTOR) if errors else 1
    delay = interval * factor * (1 + (rng or random).uniform(-jitter, jitter))
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return now + (1.0 if delay < 1.0 else delay)  # max(), without a call: once per poll
