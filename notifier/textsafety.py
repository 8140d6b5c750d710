"""Text from feeds made safe to store and to show: one home for both rules.

- **Storable**: PostgreSQL refuses NUL in text (`&#0;` in a comment is enough), and no
  database driver encodes a lone surrogate (feedparser passes `&#xD800;` through). Either
  one in a batch used to roll the whole batch back; they are replaced before the store.
- **Shown**: Unicode's explicit direction controls (embeddings, overrides, isolates) let a
  commenter's name reverse the rest of a subject or chat line ("‮gnp.exe"); they are
  removed from every rendered notification. The direction *marks* (LRM, RLM, ALM) stay: they
  affect one position only and right-to-left text needs them.
"""

from __future__ import annotations

import re

__all__ = ["storable", "strip_bidi_controls"]

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


def storable(text: str) -> str:
    """`text` with NUL removed and lone surrogates replaced by U+FFFD."""
    if not _UNSTORABLE.search(text):
        return text
    return _UNSTORABLE.sub(lambda m: "" if m[0] == "\x00" else "\ufffd", text)


def strip_bidi_controls(text: str) -> str:
    """`text` without explicit bidirectional embeddings, overrides and isolates."""
    return _BIDI_CONTROLS.sub("", text)
