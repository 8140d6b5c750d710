"""Feed discovery: turns what a person typed (a blog, a post, a feed) into the feed to poll.

url -> fetch -> a feed? keep it (an RSS2 comment feed is swapped for its Atom twin)
            -> an HTML page? read its <link rel="alternate"> feeds -> choose one for the
               watch kind -> prefer its Atom twin -> check that it answers a feed
    + a platform's API root, from the Link header or a <link> with an adapter's `api_rel`
      (WordPress: rel="https://api.w.org/")

Atom is preferred because its comment entries carry `thr:in-reply-to` (who answered whom)
while RSS2 items carry no parent at all (WordPress's do not).

What a page or a body says (its feed links, which to choose, whether a body is a feed, the
API root) is decided from bytes by `notifier.pagelinks`, pure; platform conventions are the
adapters' (`notifier.sources`). What stays here is the order of requests and the errors.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from notifier.errors import NotifierError
from notifier.failures import FailureKind
from notifier.fetch import Fetcher
from notifier.models import FetchResult
from notifier.pagelinks import (
    FeedLink,
    Watch,
    api_root_from_head,
    api_root_from_headers,
    atom_variant,
    choose_feed,
    find_api_root,
    find_feed_links,
    is_comments_feed,
    is_post_comments_feed,
    looks_like_feed,
    page_feed_links,
    sniff_root,
)


@dataclass(frozen=True)
class Discovery:
    """What discovery settled on; `note` tells the person how, in one sentence."""

    feed_url: str
    api_root: str | None
    source: Literal["feed", "page"]
    note: str


class DiscoveryError(NotifierError):
    """The URL leads to no usable feed; the message is meant for the person who typed it.

    `kind` says whether the page could not be had (network, timeout, HTTP: it may pass) or
    was had and holds no feed (discovery: someone must change the URL). `retry_after`
    carries the server's Retry-After (429/503) and `status` its answer, so a failed
    discovery backs off as the server asked, from the first answer.
    """

    def __init__(self, message: str, *, kind: FailureKind = FailureKind.DISCOVERY,
                 status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after


def _poll_url(result: FetchResult) -> str:
    """Permanent redirects are followed for good; temporary ones keep the typed URL."""
    return result.permanent_url or result.url


def _normalise_input(url: str) -> str:
    text = url.strip()
    if "://" not in text:
        text = "https://" + text.removeprefix("//")
    try:
        scheme = urlsplit(text).scheme.lower()
    except ValueError:
        raise DiscoveryError(f"{url}: not a valid URL") from None
    if scheme not in ("http", "https"):
        raise DiscoveryError(f"{url}: only http and https URLs can be watched")
    return text


async def _try_feed(fetcher: Fetcher, url: str, budget: asyncio.Timeout | None = None
                    ) -> FetchResult | None:
    """The fetch of `url` when it answers a feed, else None."""
    result = await fetcher.fetch(url, budget=budget)
    content_type = result.headers.get("content-type", "")
    if result.ok and result.body is not None and looks_like_feed(result.body, content_type):
        return result
    return None


async def discover(fetcher: Fetcher, url: str, watch: Watch, *,
                   budget: asyncio.Timeout | None = None) -> Discovery:
    """Find the feed to poll for `url`, or raise DiscoveryError saying why there is none.

    Costs one request for a feed URL and two or three for a page (page, Atom twin, and the
    advertised feed when the twin fails), because a feed is only accepted once it answered.
    `budget`, the caller's deadline, stands still while a request waits for its per-host
    slot (see `notifier.budget`): a first run discovers a large blog's subscriptions at once.
    """
    url = _normalise_input(url)
    page = await fetcher.fetch(url, accept="text/html, application/xhtml+xml;q=0.9, */*;q=0.5",
                               budget=budget)
    if not page.ok or page.body is None:
        problem = page.problem
        raise DiscoveryError(f"{url}: {problem.message}", kind=problem.kind,
                             status=page.status, retry_after=page.retry_after)
    content_type = page.headers.get("content-type", "")
    if looks_like_feed(page.body, content_type):
        return await _from_feed(fetcher, page, watch, budget)
    media = content_type.split(";")[0].strip().lower()
    if media not in ("", "text/html", "application/xhtml+xml") and sniff_root(page.body) != "html":
        raise DiscoveryError(f"{url} is neither a feed nor an HTML page ({media})")
    head, links = page_feed_links(page.body, page.final_url)
    choice = choose_feed(links, page.final_url, watch)
    if choice is None:
        if not links:
            raise DiscoveryError(f"{url} is an HTML page with no RSS or Atom feed link")
        raise DiscoveryError(f"{url} links to feeds, but none of its {watch}")
    api_root = api_root_from_headers(page.headers, page.final_url) or api_root_from_head(head)
    what = "the posts feed"
    if watch == "comments" and is_post_comments_feed(choice, page.final_url):
        what = "the post's own comment feed"
    elif watch == "comments":
        what = "the site's comment feed"
    twin = atom_variant(choice.url) if choice.type != "application/atom+xml" else None
    if twin is not None:
        answered = await _try_feed(fetcher, twin, budget)
        if answered is not None:
            return Discovery(
                feed_url=_poll_url(answered),
                api_root=api_root or api_root_from_headers(answered.headers, answered.final_url),
                source="page",
                note=f"{what}, in Atom (the page links its RSS version)",
            )
    answered = await _try_feed(fetcher, choice.url, budget)
    if answered is None:
        raise DiscoveryError(f"{url} links to {choice.url}, which does not answer a feed")
    return Discovery(
        feed_url=_poll_url(answered),
        api_root=api_root or api_root_from_headers(answered.headers, answered.final_url),
        source="page",
        note=f"{what}, linked from the page",
    )


async def _from_feed(fetcher: Fetcher, feed: FetchResult, watch: Watch,
                     budget: asyncio.Timeout | None = None) -> Discovery:
    assert feed.body is not None
    api_root = api_root_from_headers(feed.headers, feed.final_url)
    feed_url = _poll_url(feed)
    link = FeedLink(url=feed_url, type="", title="")
    is_rss = sniff_root(feed.body) in ("rss", "rdf:rdf")
    twin = atom_variant(feed_url) if is_rss else None
    if twin is not None and (watch == "comments" or is_comments_feed(link)):
        answered = await _try_feed(fetcher, twin, budget)
        if answered is not None:
            return Discovery(
                feed_url=_poll_url(answered),
                api_root=api_root or api_root_from_headers(answered.headers, answered.final_url),
                source="feed",
                note="the Atom version of the RSS feed given, for its reply structure",
            )
    return Discovery(
        feed_url=feed_url,
        api_root=api_root,
        source="feed",
        note="the feed given",
    )


__all__ = [
    "Discovery",
    "DiscoveryError",
    "FeedLink",
    "atom_variant",
    "choose_feed",
    "discover",
    "find_api_root",
    "find_feed_links",
    "is_comments_feed",
    "looks_like_feed",
]
