"""Fetch one feed and parse its body: the two stages that talk to the network and the pool.

    FeedState -> conditional GET (validators, unless a rescan asks without them)
              -> 304 | same body as last time | body -> parse worker -> `Polled`

A failure is data, never an exception: `Polled.error` says what went wrong, so one feed
cannot stop the batch. Parsing runs in a process pool started only when a body needs it,
so a cycle of unchanged feeds (304s) never pays for the workers' start-up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import multiprocessing
import os
import signal
from dataclasses import dataclass

from notifier.fetch import Fetcher
from notifier.models import FeedKind, FetchResult, ParsedFeed
from notifier.parse import ParseError, parse_feed
from notifier.store import FeedState

__all__ = ["ParsePool", "Polled", "retrieve"]


@dataclass(frozen=True, slots=True)
class Polled:
    """One feed's fetch and parse, and what the follow-up stage (`complete`) added."""

    feed: FeedState
    fetch: FetchResult
    parsed: ParsedFeed | None
    error: str | None
    body_hash: str | None = None
    unchanged: bool = False  # 200 with the very body parsed last time
    rescan: bool = False  # asked without validators; REST listing too (late approvals)
    missing: int = 0  # a gap no backfill could fill: at least this many may be missing
    quiet_keys: frozenset[str] = frozenset()  # found by a first REST listing: stored, not told
    listing_failed: bool = False  # the REST listing failed for now: keep its rescan due


def _worker_signals() -> None:
    """Ctrl-C reaches the whole process group: the daemon stops its workers itself, so
    they ignore SIGINT instead of each printing a KeyboardInterrupt traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _parse_job(body: bytes, url: str, headers: dict[str, str],
               expect: FeedKind | None = None) -> ParsedFeed | str:
    """Runs in a worker process: returns the parsed feed or the reason it is not one."""
    try:
        return parse_feed(body, url, headers, expect=expect)
    except ParseError as exc:
        return str(exc)
    except Exception as exc:
        return f"parser failed: {type(exc).__name__}: {exc}"


class ParsePool:
    """Parse workers, started at the first body: feedparser holds the GIL while it works.

    Processes when there are cores to spare, one thread otherwise (and in tests that ask for
    `workers=1`), so parsing never blocks the event loop.
    """

    def __init__(self, workers: int | None = None) -> None:
        self._workers = workers if workers is not None else min(os.cpu_count() or 1, 4)
        self._executor: concurrent.futures.Executor | None = None

    def _pool(self) -> concurrent.futures.Executor:
        if self._executor is None:
            if self._workers <= 1:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    1, thread_name_prefix="parse")
            else:
                self._executor = concurrent.futures.ProcessPoolExecutor(
                    self._workers, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_worker_signals)
        return self._executor

    async def parse(self, body: bytes, url: str, headers: dict[str, str],
                    expect: FeedKind | None = None) -> ParsedFeed | str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool(), _parse_job, body, url, headers, expect)

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


async def retrieve(fetcher: Fetcher, parser: ParsePool, feed: FeedState, *,
                   rescan: bool, conditional: bool = True,
                   expect: FeedKind | None = None) -> Polled:
    """Fetch `feed` and parse a body not parsed before.

    `expect` is the kind its subscriptions watch (`Plan.expected_kind`), which wins over what
    the document looks like.

    A rescan, and a thread a site probe says has news, ask without validators: WordPress's
    are site-wide, and a comment approved late or imported at an old date changes neither,
    so only a full answer can show it (see `notifier.poll.probe`).
    """
    ask = conditional and not rescan
    fetched = await fetcher.fetch(feed.url, etag=feed.etag if ask else None,
                                  last_modified=feed.last_modified if ask else None)
    digest = hashlib.sha256(fetched.body).hexdigest() if fetched.body is not None else None
    if fetched.ok and digest is not None and digest == feed.body_hash:
        return Polled(feed, fetched, None, None, digest, unchanged=True, rescan=rescan)
    parsed: ParsedFeed | None = None
    error = fetched.error
    if fetched.ok and fetched.body is not None:
        result = await parser.parse(fetched.body, fetched.final_url, fetched.headers, expect)
        if isinstance(result, str):
            error = result
        else:
            parsed = result
    return Polled(feed, fetched, parsed, error, digest, rescan=rescan)
