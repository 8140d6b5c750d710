"""Limits that more than one part of notifier must agree on, each defined once, with its reason.

Limits that belong to one stage stay in that stage's module (the fetcher's body cap,
`poll.cycle.WRITE_BATCH`); a number that two modules would otherwise each define lives here.
"""

from __future__ import annotations

__all__ = ["MAX_RETRY_AFTER"]

MAX_RETRY_AFTER = 86_400.0
"""A server's Retry-After is honoured up to a day, for a feed (the next poll) and a channel
(the next try) alike; beyond that it is a misconfiguration, not a plan."""
