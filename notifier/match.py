"""Which subscriptions want which entries, and through which channels: pure filtering.

The result is one queued notice per (channel, entry): when two subscriptions send the same
comment to the same channel, the person behind that channel hears about it once, credited to
the most specific subscription (one with `replies_to`, then one with `authors`).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from notifier.config import Subscription
from notifier.models import Entry
from notifier.schema import EMAIL, normalise_name
from notifier.store import QueuedNotice


def parent_author(entry: Entry, known: Mapping[str, Entry]) -> str:
    """Who wrote the comment this one answers: from the entry itself or a stored parent."""
    if entry.parent_author:
        return entry.parent_author
    parent = known.get(entry.parent_key) if entry.parent_key else None
    return parent.author if parent else ""


@dataclass(frozen=True, slots=True)
class People:
    """Whom `replies_to` names: by name, and where the source shows them, by website or email.

    An email is compared as its Gravatar hash (md5 or sha256 of the trimmed, lower-cased
    address), which is all WordPress's REST API reveals of it; a website by its URL without
    scheme, `www.` and trailing slash, as commenters type it differently each time.
    """

    names: frozenset[str]
    urls: frozenset[str]
    hashes: frozenset[str]

    @classmethod
    def of(cls, given: Iterable[str]) -> People:
        names: set[str] = set()
        urls: set[str] = set()
        hashes: set[str] = set()
        for item in given:
            text = item.strip()
            if text.lower().startswith(("http://", "https://")):
                urls.add(_url_identity(text))
            elif EMAIL.fullmatch(text):
                address = text.lower().encode()
                hashes.update({hashlib.md5(address, usedforsecurity=False).hexdigest(),
                               hashlib.sha256(address).hexdigest()})
            else:
                names.add(normalise_name(text))
        return cls(frozenset(names), frozenset(urls), frozenset(hashes))

    def wrote(self, name: str, url: str = "", author_hash: str = "") -> bool:
        return ((bool(name) and normalise_name(name) in self.names)
                or (bool(url) and _url_identity(url) in self.urls)
                or (bool(author_hash) and author_hash.lower() in self.hashes))


@functools.lru_cache(maxsize=256)
def _people(given: tuple[str, ...]) -> People:
    """Parsed once per configuration, not once per entry: emails are hashed here."""
    return People.of(given)


def _url_identity(url: str) -> str:
    parts = urlsplit(url.strip().lower())
    host = parts.netloc.removeprefix("www.")
    return host + parts.path.rstrip("/")


MAX_DEPTH = 50
"""Ancestors looked at for `include_subthread`; real threads nest a handful deep."""


def _answers(entry: Entry, people: People, known: Mapping[str, Entry], *, deep: bool) -> bool:
    """Whether `entry` replies to one of `people` (or, `deep`, to anyone below them)."""
    parent = known.get(entry.parent_key) if entry.parent_key else None
    if people.wrote(parent_author(entry, known), parent.author_url if parent else "",
                    parent.author_hash if parent else ""):
        return True
    if not deep:
        return False
    seen = {entry.key}
    for _ in range(MAX_DEPTH):
        if parent is None or parent.key in seen or not parent.parent_key:
            return False
        seen.add(parent.key)
        if parent.parent_key == parent.post_key:
            return False
        grand = known.get(parent.parent_key)
        if people.wrote(parent_author(parent, known), grand.author_url if grand else "",
                        grand.author_hash if grand else ""):
            return True
        parent = grand
    return False


def wants(sub: Subscription, entry: Entry, known_parents: Mapping[str, Entry]) -> bool:
    if sub.watch == "posts" and entry.kind != "post":
        return False
    if sub.watch == "comments" and entry.kind != "comment":
        return False
    if not sub.wants_author(entry.author):
        return False
    if sub.replies_to:
        people = _people(tuple(sub.replies_to))
        if sub.exclude_self and people.wrote(entry.author, entry.author_url, entry.author_hash):
            return False  # people are not told about their own comments
        if not _answers(entry, people, known_parents, deep=sub.include_subthread):
            return False
    return True


def _specificity(sub: Subscription) -> int:
    return (2 if sub.replies_to else 0) + (1 if sub.authors else 0)


def match(candidates: Mapping[str, Iterable[Entry]], subscriptions: Mapping[str, Subscription],
          known_parents: Mapping[str, Entry], missing: Mapping[str, int] | None = None,
          revisions: Mapping[str, int] | None = None) -> list[QueuedNotice]:
    """Queued notices for the entries each subscription is offered, one per channel+entry.

    `missing` says, per entry key, how many comments before it may have been missed;
    `revisions` marks entries offered as edits (1 for the first edit reported, ...).
    """
    chosen: dict[tuple[str, str], tuple[int, QueuedNotice]] = {}
    for name, offered in candidates.items():
        sub = subscriptions.get(name)
        if sub is None:
            continue
        for entry in offered:
            if not wants(sub, entry, known_parents):
                continue
            for channel in sub.notify:
                notice = QueuedNotice(
                    subscription=name, channel=channel, entry_key=entry.key,
                    revision=(revisions or {}).get(entry.key, 0),
                    missing=(missing or {}).get(entry.key, 0))
                slot = (channel, entry.key)
                rank = _specificity(sub)
                if slot not in chosen or rank > chosen[slot][0]:
                    chosen[slot] = (rank, notice)
    return [notice for _, notice in chosen.values()]
