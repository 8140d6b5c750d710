"""Compare a feed's entries with what is stored: the pure heart of "new exactly once".

Newness is decided by identity, never by date: WordPress can publish several comments with
one timestamp, and a held comment keeps its old date when approved. Every key ever stored
for the feed is remembered, so an entry that drops out of the feed window and comes back is
still not new.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from notifier import sources
from notifier.entrytext import AUTHOR_DATE_KEY, HASH_KEY, shared_id_keys
from notifier.models import Entry

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SubscriptionView:
    """What the diff must know about one subscription reading this feed."""

    name: str
    baselined: bool
    backfill: int


@dataclass(frozen=True, slots=True)
class Decision:
    """The diff of one feed against what is stored: what to store, and who may be told."""

    new_entries: tuple[Entry, ...]
    """Entries not stored before, oldest first: they are stored now."""
    changed_entries: tuple[Entry, ...]
    """Stored entries whose title or content changed (edits)."""
    candidates: Mapping[str, tuple[Entry, ...]] = field(default_factory=dict)
    """Per subscription, the entries it may be told about (matching filters them further)."""
    baselines: tuple[str, ...] = ()
    """Subscriptions whose first poll this was."""


def publication_order(entries: Sequence[Entry]) -> list[Entry]:
    """Oldest first; ties in date by the platform's own number (`sources.sequence`: a
    comment's id), then reversed feed order.

    A burst through a comment form gives many comments one timestamp (to the second), and a
    window (newest first) merged with a REST listing (oldest first) has no single feed
    order to undo, so the number the platform gave each comment decides. Entries without a
    date keep their feed order after the dated ones.
    """
    def order(pair: tuple[int, Entry]) -> tuple[bool, datetime, bool, int, int]:
        index, entry = pair
        number = sources.sequence(entry.key)
        return (entry.published is None, entry.published or _EPOCH, number is None,
                number or 0, -index)

    return [entry for _, entry in sorted(enumerate(entries), key=order)]


def earlier_keys(entry: Entry, seen: Mapping[str, str]) -> tuple[str, ...]:
    """Keys this entry may be stored under although its own key says edited or new.

    - Its key is stored with other content: it may be an item that shared its id with an
      older one (`parse` kept the bare id for the oldest and gave it the id with its date);
      the older one has left the feed, so it is alone under the bare id now.
    - A comment keyed by author and date is not stored: an earlier notifier keyed it by
      its content digest.
    The caller reads which of them are stored and hands them to `rekeyed`.
    """
    if entry.key in seen:
        if entry.content_hash and seen[entry.key] != entry.content_hash:
            return shared_id_keys(entry.key, entry.published, entry.content_hash)
        return ()
    if entry.key.startswith(AUTHOR_DATE_KEY) and entry.content_hash:
        return (HASH_KEY + entry.content_hash,)
    return ()


def rekeyed(entries: Sequence[Entry], seen: Mapping[str, str]) -> tuple[Entry, ...]:
    """Each entry under the key it was stored with, where one of its `earlier_keys` is in
    `seen` (and no other entry of the window holds it): then it is neither new nor edited
    by accident of keying, and a real edit of it is still one."""
    taken = {e.key for e in entries}
    out = []
    for entry in entries:
        for key in earlier_keys(entry, seen):
            if key in seen and key not in taken:
                taken.add(key)
                entry = replace(entry, key=key)
                break
        out.append(entry)
    return tuple(out)


def decide(parsed: Sequence[Entry], seen: Mapping[str, str],
           subscriptions: Sequence[SubscriptionView]) -> Decision:
    """Decide what one poll of one feed means.

    `seen` maps each stored key among `parsed` to its stored content hash. A subscription on
    its first poll records a baseline and is offered only its newest `backfill` entries;
    the others are offered every new entry.
    """
    unique: dict[str, Entry] = {}
    for entry in parsed:
        unique.setdefault(entry.key, entry)
    ordered = publication_order(list(unique.values()))
    new = tuple(e for e in ordered if e.key not in seen)
    changed = tuple(e for e in ordered
                    if e.key in seen and e.content_hash and seen[e.key] != e.content_hash)
    candidates: dict[str, tuple[Entry, ...]] = {}
    baselines: list[str] = []
    for sub in subscriptions:
        if sub.baselined:
            candidates[sub.name] = new
        else:
            baselines.append(sub.name)
            candidates[sub.name] = tuple(ordered[-sub.backfill:]) if sub.backfill else ()
    return Decision(new_entries=new, changed_entries=changed, candidates=candidates,
                    baselines=tuple(baselines))
