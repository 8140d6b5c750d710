"""`notifier run`: the daemon in the foreground, or one pass with `--once`.

`--once` is what cron and a first try run, so it says in words what happened: a first poll
records a baseline and reports nothing, which looks like a failure unless it is said; and
notifications still failing make the exit status 1 even when this pass did not try them
(they wait for their next attempt), so a cron job does not look healthy while mail is stuck.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from notifier.cluster import node_name
from notifier.commands.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Command, at, load
from notifier.config import Config
from notifier.memory import return_large_blocks
from notifier.poll.record import PollReport
from notifier.poll.shards import Helper, Link, Share, split
from notifier.store import Store
from notifier.store.statefile import hold_state

T = TypeVar("T")


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true",
                        help="poll every subscription once, deliver every pending "
                             "notification, then exit: 1 if a feed failed, a notification "
                             "is still failing or a channel is disabled; for cron and tests")


def _run(args: argparse.Namespace) -> int:
    from notifier.daemon import AdminListenError, run_forever

    # The configuration is loaded with the collector on: with it off, the garbage cycles
    # that loading 10,000 subscriptions leaves were frozen with it (16 MiB of peak memory).
    config = load(args)
    tune_gc()
    return_large_blocks()
    # One run per SQLite state: a second exits 2 here, before it touches any claim.
    with hold_state(config.state_url()):
        if args.once:
            return run_once(config)
        try:
            run_async(run_forever(config))
        except AdminListenError as exc:
            print(f"notifier: {exc}", file=sys.stderr)
            return EXIT_USAGE
        return EXIT_OK


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on uvloop's event loop where it is installed (not on Windows).

    A poll cycle is thousands of small requests, and for a 304 the event loop's own work
    (scheduling, timers, the transport) is as much as the HTTP client's: uvloop's loop cut
    an unchanged daemon cycle over 10,000 feeds from 2.2 s to 1.6 s of CPU. The standard
    loop is used where uvloop is missing; behaviour is the same on both.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


GC_THRESHOLD = 100_000
"""Allocations between youngest-generation collections (Python's default is 700).

A cycle leaves little cyclic garbage (27,000 objects in a `run --once` over 10,000 unchanged
feeds), but each collection costs its walk of the young objects: at 10,000, about 400
collections took 0.2-0.4 s of that run's 3-4 s of CPU; at 100,000, 0.05-0.13 s, for 3 MiB
of peak memory."""


def tune_gc() -> None:
    """Keep the cycle collector off the modules and the configuration, and run it less often.

    A cycle over 10,000 feeds allocates millions of short-lived objects, nearly all freed by
    reference counting; with the default thresholds the collector still walked every live
    object (10,000 subscriptions included) again and again: a quarter of the CPU of an
    unchanged cycle. Frozen objects are never walked; garbage cycles are still collected.
    """
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])


def run_once(config: Config) -> int:
    """One pass through the real pipeline, then what it means for the reader."""
    from notifier.daemon import run_once as one_pass

    before = _baselined(config)
    helper = _split(config)
    result = run_async(one_pass(config, *helper) if helper else one_pass(config))
    for error in [*result.poll.errors, *result.delivery.errors]:
        print(f"notifier: {error}", file=sys.stderr)
    # One more look at the state for the words below: what got a baseline, what is stuck.
    store = Store(config.state_url())
    try:
        baseline = baseline_summary(store, before)
        stuck = _still_failing(config, store)
    finally:
        store.close()
    if baseline:
        print(baseline)
    for line in stuck:
        print(f"notifier: {line}", file=sys.stderr)
    return EXIT_OK if result.ok and not stuck else EXIT_FAILED


def _split(config: Config) -> tuple[Helper, Share] | None:
    """A large run's second process, started now (see `notifier.poll.shards`), and the
    share of the feeds left to this one; None when the run stays in one process."""
    store = Store(config.state_url())
    try:
        found = split(config, store)
    finally:
        store.close()
    if found is None:
        return None
    node = f"{node_name(config)}/2"[-64:]
    config.subscriptions_hash()  # once, before the fork: both processes' nodes carry it
    try:
        return Helper.start(config, found.helper, node, _poll_share), found.parent
    except OSError as exc:  # no fork (memory, process limit): one process does it all
        logging.getLogger("notifier").warning("polling in one process: %s", exc)
        return None


def _poll_share(config: Config, share: Share, node: str, link: Link) -> PollReport:
    """In the second process: its share of the feeds, polled (`daemon.poll_share`)."""
    from notifier.daemon import poll_share

    return run_async(poll_share(config, share, node, link))


def _baselined(config: Config) -> set[str]:
    """The subscriptions that had their baseline before this pass."""
    store = Store(config.state_url())
    try:
        store.migrate()
        return set(store.baselined())
    finally:
        store.close()


def baseline_summary(store: Store, before: set[str]) -> str | None:
    """`baseline: 12 entries recorded on 3 feeds; new ones will be reported`, when this pass
    recorded the first look at some subscriptions' feeds."""
    fresh = {name: url for name, url in store.baselined().items() if name not in before}
    if not fresh:
        return None  # the usual pass: no need to read every feed's health
    health = {h.url: h.entries for h in store.feed_health()}
    feeds = {url for url in fresh.values() if url}
    entries = sum(health.get(url, 0) for url in feeds)
    names = sorted(fresh)
    # A first run of 10,000 subscriptions named every one of them, in one line.
    shown = ", ".join(names[:BASELINE_NAMES]) + (
        f" and {len(names) - BASELINE_NAMES} more" if len(names) > BASELINE_NAMES else "")
    return (f"baseline: {entries} entr{'y' if entries == 1 else 'ies'} recorded on "
            f"{len(feeds)} feed{'' if len(feeds) == 1 else 's'} ({shown}); "
            "new ones will be reported")


BASELINE_NAMES = 10
"""Subscriptions named in the baseline line of `run --once`; the rest are counted."""


def _still_failing(config: Config, store: Store) -> list[str]:
    stats = store.channel_stats()
    now = time.time()
    lines = []
    for name in config.channels:
        s = stats.get(name)
        if s is None:
            continue
        if s.disabled_reason:
            kept = s.queued + s.held + s.dead
            lines.append(f"channel {name} is disabled ({s.disabled_reason}); {kept} "
                         "notifications kept")
        elif s.failed:
            nxt = f"; next attempt {at(now, s.next_retry)}" if s.next_retry else ""
            lines.append(f"{s.failed} notification{'s' if s.failed != 1 else ''} to {name} "
                         f"still failing{nxt}; once the cause is fixed, "
                         f"`notifier retry --now --channel {name}` sends them")
    return lines


COMMAND = Command(_run, _configure)
