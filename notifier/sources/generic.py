"""Plain RSS/Atom: what any feed may say, with no platform's conventions.

    threading from RFC 4685 (`thr:in-reply-to`, `link rel="replies"`, read in `parse`)
    order within one second: a number ending the entry's id, where there is one
    a comment's link: a `#comment-N` anchor (also `#comment_N`, `#commentN`), the common one
    a gap: older pages through `link rel="next"` (RFC 5005, read in `backfill`)

It answers every hook with the neutral default of `Source` and recognises every feed, so it
sits last in the registry: whatever no platform claims is at least RSS or Atom.
"""

from __future__ import annotations

import re

from notifier.sources.base import Source
from notifier.sources.records import Hints

__all__ = ["Generic"]

_RUNNING_NUMBER = re.compile(r"(?<!\d)(\d{1,18})\Z")
"""A number ending an id (`/comments/41`, `tag:example.org,2024:post-7`): many systems number
their items so. At most 18 digits: a longer run is no one's counter (and `int()` of 9,000
digits raises); bounded, the search stays linear on a hostile key."""


_COMMENT_ANCHOR = re.compile(r"#comment[-_]?(?P<n>\d+)\Z")
"""The anchor most blog software gives a comment on its post's page (Drupal, Movable Type,
Ghost and Disqus embeds, hand-made blogs): no one platform's, so the generic adapter's."""


class Generic(Source):
    """Plain RSS/Atom: no key shape of its own."""

    name = "generic"
    comment_anchor = _COMMENT_ANCHOR

    def recognises(self, hints: Hints) -> bool:
        return True  # the last resort: every feed is at least RSS or Atom

    def sequence(self, key: str) -> int | None:
        # No platform's word for it: a trailing number is the best guess of an item's
        # order, better than none when a feed gives several items one timestamp.
        match = _RUNNING_NUMBER.search(key)
        return int(match[1]) if match else None
