"""Plain RSS/Atom: what any feed may say, with no platform's conventions.

    threading from RFC 4685 (`thr:in-reply-to`, `link rel="replies"`, read in `parse`)
    a gap: older pages through `link rel="next"` (RFC 5005, read in `backfill`)

It answers every hook with the neutral default of `Source` and recognises every feed, so it
sits last in the registry: whatever no platform claims is at least RSS or Atom.
"""

from __future__ import annotations

from notifier.sources.base import Source
from notifier.sources.records import Hints

__all__ = ["Generic"]


class Generic(Source):
    """Plain RSS/Atom: no key shape of its own."""

    name = "generic"

    def recognises(self, hints: Hints) -> bool:
        return True  # the last resort: every feed is at least RSS or Atom
