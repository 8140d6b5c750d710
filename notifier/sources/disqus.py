"""Disqus: the comment feeds Disqus serves for a forum (`https://FORUM.disqus.com/latest.rss`).

    feed URL on *.disqus.com -> a comment feed -> item title "Re: Post" -> the post's title

Why an adapter: what Disqus writes around a comment is its own convention, not RSS's. It
titles every item "Re: " + the post's title and links it to the post's page + "#comment-N",
so the item title is the only place the post's title appears. It sits first in the registry:
its host is unmistakable, and WordPress's title rules would otherwise answer for it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from notifier.sources.base import Source
from notifier.sources.records import Hints

__all__ = ["Disqus", "is_disqus_url"]

_HOST = "disqus.com"
_REPLY_PREFIX = "Re: "


def is_disqus_url(url: str) -> bool:
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return False
    return host == _HOST or host.endswith("." + _HOST)


class Disqus(Source):
    """The Disqus adapter: every feed it serves holds comments, each titled "Re: Post"."""

    name = "disqus"

    def recognises(self, hints: Hints) -> bool:
        return is_disqus_url(hints.feed_url)

    def comment_feed(self, url: str, title: str = "") -> bool:
        return is_disqus_url(url)

    def post_title(self, feed_title: str, entry_title: str, author: str,
                   hints: Hints) -> str | None:
        if not self.recognises(hints):
            return None
        if entry_title.startswith(_REPLY_PREFIX):
            return entry_title[len(_REPLY_PREFIX) :].strip()
        return ""
