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

import dataclasses
import re
from typing import Any

from notifier.models import Entry

__all__ = ["shown_entry", "storable", "strip_bidi_controls"]

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


def shown_entry(entry: Entry) -> Entry:
    """The entry with direction controls removed from every text: what a channel builds a
    message from (rendered templates, and the blocks and cards some channels assemble)."""
    changes: dict[str, Any] = {}
    for field in dataclasses.fields(entry):
        value = getattr(entry, field.name)
        if isinstance(value, str) and _BIDI_CONTROLS.search(value):
            changes[field.name] = strip_bidi_controls(value)
    return dataclasses.replace(entry, **changes) if changes else entry
