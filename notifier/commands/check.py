"""`notifier check`: validate the file and say in words what it will do."""

from __future__ import annotations

import argparse

from notifier import redact
from notifier.commands.common import EXIT_OK, Command, duration, load, timing
from notifier.store import Store
from notifier.store.statefile import not_created


def _check(args: argparse.Namespace) -> int:
    from notifier.channels import CHANNEL_KINDS

    config = load(args)
    # `run` would stop at once on a state whose folder is missing: not OK, then (raises).
    not_created(config.state_url())
    if args.quiet:  # for scripts and reload hooks: problems only, on stderr
        return EXIT_OK
    print(f"{config.path}: OK")
    print(f"  state: {Store.describe_url(config.state_url())}")
    print(f"  channels ({len(config.channels)}):")
    for name, channel in config.channels.items():
        summary = CHANNEL_KINDS[channel.type].summarize(channel)
        times = timing(channel)
        if channel.pace is not None:
            times.append(f"at most one message per {duration(channel.pace)}")
        if channel.burst_limit is not None:
            times.append(f"more than {channel.burst_limit} at once as one summary")
        print(f"    {redact.short(name)}: {redact.short(summary)}"
              f"{''.join(f'; {t}' for t in times)}")
    print(f"  subscriptions ({len(config.subscriptions)}):")
    for sub in config.subscriptions:
        filters = []
        if sub.replies_to:
            filters.append(("replies (and their subthreads) to " if sub.include_subthread
                            else "replies to ") + ", ".join(sub.replies_to))
            if not sub.exclude_self:
                filters.append("their own comments too")
        if sub.watch == "threads":
            filters.append(f"posts of the last {duration(config.threads_max_age(sub))}")
        if sub.notify_edits:
            filters.append("edits too")
        if sub.watch != "posts":
            filters.append(f"rescan every {duration(config.rescan(sub))}")
        if sub.authors:
            filters.append("by " + ", ".join(sub.authors))
        if sub.exclude_authors:
            filters.append("not by " + ", ".join(sub.exclude_authors))
        filters += timing(sub)
        extra = f" ({redact.short('; '.join(filters))})" if filters else ""
        print(f"    {redact.short(sub.name)}: {sub.watch} of "
              f"{redact.short(redact.url(sub.url))}{extra} every "
              f"{duration(config.interval(sub))} -> {', '.join(sub.notify)}")
    return EXIT_OK


COMMAND = Command(_check)
