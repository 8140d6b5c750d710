"""Which subscriptions want which entries, and through which channels: pure filtering.

The result is one queued notice per (channel, entry): when two subscriptions send the same
comment to the same channel, the person behind that channel hears about it once, credited to
the most specific subscription (one with `replies_to`, then one with `authors`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from notifier.config import Subscription
from notifier.models import Entry
from notifier.schema import normalise_name
from notifier.store import QueuedNotice


def parent_author(entry: Entry, known: Mapping[str, Entry]) -> str:
    """Who wrote the comment this one answers: from the entry itself or a stored parent."""
    if entry.parent_author:
        return entry.parent_author
    parent = known.get(entry.parent_key) if entry.parent_key else None
    return parent.author if parent else ""


def wants(sub: Subscription, entry: Entry, known_parents: Mapping[str, Entry]) -> bool:
    if sub.watch == "posts" and entry.kind != "post":
        return False
    if sub.watch == "comments" and entry.kind != "comment":
        return False
    if not sub.wants_author(entry.author):
        return False
    if sub.replies_to:
        names = {normalise_name(n) for n in sub.replies_to}
        if normalise_name(entry.author) in names:
            return False  # never tell people about their own comments
        if normalise_name(parent_author(entry, known_parents)) not in names:
            return False
    return True


def _specificity(sub: Subscription) -> int:
    return (2 if sub.replies_to else 0) + (1 if sub.authors else 0)


def match(candidates: Mapping[str, Iterable[Entry]], subscriptions: Mapping[str, Subscription],
          known_parents: Mapping[str, Entry], missing: int = 0) -> list[QueuedNotice]:
    """Queued notices for the entries each subscription is offered, one per channel+entry."""
    chosen: dict[tuple[str, str], tuple[int, QueuedNotice]] = {}
    for name, offered in candidates.items():
        sub = subscriptions.get(name)
        if sub is None:
            continue
        for entry in offered:
            if not wants(sub, entry, known_parents):
                continue
            for channel in sub.notify:
                notice = QueuedNotice(subscription=name, channel=channel, entry_key=entry.key,
                                      missing=missing)
                slot = (channel, entry.key)
                rank = _specificity(sub)
                if slot not in chosen or rank > chosen[slot][0]:
                    chosen[slot] = (rank, notice)
    return [notice for _, notice in chosen.values()]
