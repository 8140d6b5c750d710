"""The small records adapters and their callers exchange, apart from any one platform.

    feed URL, generator, feed id, headers -> Hints -> Source.recognises
    Source.list_thread -> Backfill -> backfill.complete merges it into the poll

Why its own module: the registry in `notifier.sources` imports every adapter, and every
adapter needs these records, so they sit below both and import neither.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from notifier.models import Entry

__all__ = ["MAX_PAGES", "MAX_SECONDS", "Backfill", "Hints"]

MAX_PAGES = 30
"""Pages fetched for one backfill: 3,000 WordPress comments, 750 Blogger ones."""
MAX_SECONDS = 60.0
"""Time for one backfill, all pages together; what arrived by then is used."""


@dataclass(frozen=True, slots=True)
class Hints:
    """What a fetched feed says about the software behind it; any field may be empty."""

    feed_url: str = ""
    generator: str = ""
    feed_id: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Backfill:
    """What a backfill found: entries (oldest first where the source says), and how it went."""

    entries: tuple[Entry, ...] = ()
    complete: bool = False  # the source was read to its end (or to entries already known)
    pages: int = 0
    error: str = ""
    transient: bool = False  # the error may pass (no answer, 5xx): worth trying again soon
