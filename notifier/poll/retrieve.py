"""Fetch one feed and parse its body: the two stages that talk to the network and the pool.

    FeedState -> conditional GET (validators, unless a rescan asks without them)
              -> 304 | same body as last time | body -> parse worker -> `Polled`

A failure is data, never an exception: `Polled.failure` says what went wrong (a kind and a
message), so one feed cannot stop the batch. Parsing runs in `parsepool`'s workers, each
parse bounded in time and memory.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from notifier.failures import Failure
from notifier.fetch import Fetcher
from notifier.frozen import quick_init
from notifier.models import FeedKind, FetchResult, ParsedFeed
from notifier.poll.parsepool import ParsePool
from notifier.store import FeedState

__all__ = ["ParsePool", "Polled", "retrieve"]


@quick_init
@dataclass(frozen=True, slots=True)
class Polled:
    """One feed's fetch and parse, and what the follow-up stage (`complete`) added."""

    feed: FeedState
    fetch: FetchResult
    parsed: ParsedFeed | None
    failure: Failure | None
    body_hash: str | None = None
    unchanged: bool = False  # 200 with the very body parsed last time
    rescan: bool = False  # asked without validators; REST listing too (late approvals)
    missing: int = 0  # a gap no backfill could fill: at least this many may be missing
    quiet_keys: frozenset[str] = frozenset()  # found by a first REST listing: stored, not told
    listing_failed: bool = False  # the REST listing failed for now: keep its rescan due


async def retrieve(fetcher: Fetcher, parser: ParsePool, feed: FeedState, *,
                   rescan: bool, conditional: bool = True,
                   expect: FeedKind | None = None,
                   budget: asyncio.Timeout | None = None,
                   proceed: Callable[[], bool] | None = None) -> Polled:
    """Fetch `feed` and parse a body not parsed before.

    `expect` is the kind its subscriptions watch (`Plan.expected_kind`), which wins over what
    the document looks like. `budget`, the caller's deadline for the feed, stands still while
    the request waits for a slot and the body for a parse worker (see `notifier.budget`).

    A rescan, and a thread a site probe says has news, ask without validators: WordPress's
    are site-wide, and a comment approved late or imported at an old date changes neither,
    so only a full answer can show it (see `notifier.poll.probe`).

    `proceed` says whether the feed's claim still holds when its request is about to go
    out (see `Fetcher.fetch`, which raises `Withdrawn` when it does not).
    """
    ask = conditional and not rescan
    # While the parse is behind, no more bodies are brought in (the pool's `room`).
    fetched = await fetcher.fetch(feed.url, etag=feed.etag if ask else None,
                                  last_modified=feed.last_modified if ask else None,
                                  proceed=proceed, budget=budget, gate=parser)
    digest = hashlib.sha256(fetched.body).hexdigest() if fetched.body is not None else None
    if fetched.ok and digest is not None and digest == feed.body_hash:
        return Polled(feed, fetched, None, None, digest, True, rescan)  # unchanged, rescan
    parsed: ParsedFeed | None = None
    failure = fetched.failure
    if fetched.ok and fetched.body is not None:
        result = await parser.parse(fetched.body, fetched.final_url, fetched.headers, expect,
                                    budget=budget)
        if isinstance(result, Failure):
            failure = result
        else:
            parsed = result
    # By position (unchanged, rescan): keywords make the call build a dict, once per poll
    return Polled(feed, fetched, parsed, failure, digest, False, rescan)
