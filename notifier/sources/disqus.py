"""Disqus: the comment feeds Disqus serves for a forum (`https://FORUM.disqus.com/latest.rss`).

    feed URL or self link on *.disqus.com -> a comments feed -> item title "Re: Post" -> post

Why its own module: what Disqus writes around a comment is its own convention, not RSS's. It
titles every item "Re: " + the post's title and links it to the post's page + "#comment-N",
so the item title is the only place the post's title appears.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = ["is_disqus_feed", "post_title"]

_HOST = "disqus.com"
_REPLY_PREFIX = "Re: "


def is_disqus_feed(urls: Iterable[str]) -> bool:
    """Whether any of the feed's own URLs (self link, site link, URL fetched) is Disqus's."""
    for url in urls:
        try:
            host = (urlsplit(url).hostname or "").lower()
        except ValueError:
            continue
        if host == _HOST or host.endswith("." + _HOST):
            return True
    return False


def post_title(entry_title: str) -> str:
    """The post a Disqus comment is on, from its item title ("Re: Post"); else ""."""
    if entry_title.startswith(_REPLY_PREFIX):
        return entry_title[len(_REPLY_PREFIX) :].strip()
    return ""
