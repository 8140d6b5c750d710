"""Platforms: one adapter per blog platform, behind one small Protocol.

    fetched feed -> Hints -> source_for(hints) -> the adapter's rules (keys, thread feed,
    thread listing, change probe) -> parse / discover / backfill / poll ask it, never a regex

Why: platform rules (WordPress's `#comment-N` keys and REST API, Blogger's ids) were spread
over five modules; one file per platform is what lets the next one (Discourse, Disqus,
Reddit, Hacker News are planned) be added without touching the generic algorithms.

To add a platform:
1. Write `notifier/sources/<name>.py` with a frozen class whose fields and methods match
   `Source` below, and module-level constants for the platform's URL shapes and key regexes
   (each fact defined there once). Import only `notifier.entrytext`, `notifier.fetch`,
   `notifier.models` and `notifier.sources.records`: never `parse` or `backfill`, which
   import the adapters.
2. Add an instance to `SOURCES` before the generic entry (the first that recognises wins).
3. Test it with real captured responses, served by a loopback server under `tests/support/`.

State of the move (see the `sources` branch report): WordPress's REST API, comment keys and
probe live in `wordpress.py`; Blogger's and the generic RSS/Atom rules still live in `parse`
and `discover`, to be moved into their own files the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from notifier.sources.records import Backfill, Hints
from notifier.sources.wordpress import WordPress

__all__ = ["SOURCES", "Backfill", "Generic", "Hints", "Source", "WordPress", "source_for"]


class Source(Protocol):
    """What the generic code asks a platform; every hook is pure unless it takes a Fetcher."""

    @property
    def name(self) -> str: ...

    def recognises(self, hints: Hints) -> bool:
        """Whether this feed (URL, generator, feed id, response headers) is this platform's."""
        ...

    def post_key_of(self, comment_key: str) -> str:
        """The post's key a comment key of this platform names, or "" if not its shape."""
        ...


@dataclass(frozen=True, slots=True)
class Generic:
    """Plain RSS/Atom: no key shape of its own; threading comes from RFC 4685 in `parse`."""

    name: str = "generic"

    def recognises(self, hints: Hints) -> bool:
        return True  # the last resort: every feed is at least RSS or Atom

    def post_key_of(self, comment_key: str) -> str:
        return ""


SOURCES: tuple[Source, ...] = (WordPress(), Generic())
"""Adapters in the order they are asked; the generic one last, because it says yes to all."""


def source_for(hints: Hints) -> Source:
    """The first adapter that recognises the feed (the generic one if none does)."""
    return next(source for source in SOURCES if source.recognises(hints))
