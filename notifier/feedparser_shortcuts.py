"""Shortcuts through feedparser's work whose answer is known: the same results, less time.

feedparser is pure Python and a parse worker spends most of a changed cycle in it. Two of its
steps do work whose result can be had for less, without changing a byte of what it returns:

- **URI joins.** It joins URIs as it reads, with or without relative links in the feed: at
  every element it joins the base in force with the element's `xml:base` (or with itself
  when there is none), and it joins each link, id and content URL with that base. A ten-item
  WordPress feed makes 140 joins of a handful of distinct pairs, a fifth of its parse. The
  join functions depend on their arguments only, so their answers are remembered; long URIs
  (a hostile feed's) are joined each time, never kept.
- **Relative links in markup without markup.** It rewrites every HTML field through its
  SGML parser to resolve relative links. Text with neither `<` nor `&` has no tag, attribute
  or reference for it to touch, and comes back as it went in (its parser hands such text to
  `handle_data` whole, which keeps it verbatim): it is returned at once. A third of the
  fields of real feeds are such text (a comment feed's `description`).

Installed once, by `notifier.parse`, on the feedparser module it imports; a feedparser
without these functions is left as it is. The golden files of tests/golden hold what the
parses of real feeds give, with and without these shortcuts alike.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import feedparser.mixin
import feedparser.urls

__all__ = ["install"]

JOIN_CACHE = 256
"""URI joins remembered per process, each of at most `JOINED_CHARS` characters: at most a few
MiB, well below a parse worker's `RECYCLE_GROWTH`."""
JOINED_CHARS = 1024

_MARK = "_notifier_shortcut"


def _remembered(join: Callable[..., str]) -> Callable[..., str]:
    """`join` with its answers for short URIs remembered."""
    cached = functools.lru_cache(JOIN_CACHE)(join)

    def remembering(base: str, rel: str | None = None) -> str:
        if len(base or "") + len(rel or "") > JOINED_CHARS:
            return join(base, rel)
        return cached(base, rel)

    return remembering


def _plain_text_as_is(resolve: Callable[..., str]) -> Callable[..., str]:
    """`resolve` (feedparser's `resolve_relative_uris`) that returns plain text untouched."""

    def resolving(html: str, *args: object) -> str:
        if isinstance(html, str) and "<" not in html and "&" not in html:
            return html
        return resolve(html, *args)

    return resolving


def install() -> None:
    """Put the shortcuts in place (once; calling again changes nothing)."""
    for module, name, shortcut in (
        (feedparser.mixin, "_urljoin", _remembered),
        (feedparser.mixin, "make_safe_absolute_uri", _remembered),
        (feedparser.urls, "make_safe_absolute_uri", _remembered),
        (feedparser.mixin, "resolve_relative_uris", _plain_text_as_is),
    ):
        original = getattr(module, name, None)
        if callable(original) and not getattr(original, _MARK, False):
            replacement = shortcut(original)
            setattr(replacement, _MARK, True)
            setattr(module, name, replacement)
