"""`notifier add`, `import` and `export`: manage subscriptions without editing YAML by hand.

`add` discovers the feed first and says what it will follow, so a typo or a page without a
feed is found now, not in the daemon's log. Both `add` and `import` append to the file
through `configfile`, which keeps the operator's comments and layout and refuses a result
`check` would refuse. None of them needs the channels' secrets.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from notifier import redact
from notifier.commands.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Command, load
from notifier.config import Config
from notifier.configfile import ConfigWriteError, append_subscriptions
from notifier.configproblems import close_match
from notifier.opml import OpmlError, OpmlOutline, read_opml, subscription_name, write_opml
from notifier.store import Store, StoreError
from notifier.store.statefile import not_created

WATCHES = ("posts", "comments", "threads")


def _watch_and_notify_options(parser: argparse.ArgumentParser, *, watch: str,
                              what: str) -> None:
    parser.add_argument("--watch", choices=WATCHES, default=watch,
                        help=f"what to report{what} (default: {watch})")
    parser.add_argument("--notify", metavar="C,...",
                        help="channels to notify, comma-separated (default: every channel)")


def _config_and_channels(args: argparse.Namespace) -> tuple[Config, list[str]] | None:
    """What `add` and `import` start from: the file as it is (without secrets, perhaps
    without subscriptions yet) and the channels named by --notify; None after saying
    what is wrong."""
    config = load(args, require_secrets=False, need_subscriptions=False)
    notify = _notify(config, args.notify)
    return None if notify is None else (config, notify)


def _notify(config: Config, option: str | None) -> list[str] | None:
    """The channel names asked for, or None after printing what is wrong."""
    known = list(dict.fromkeys([*config.channels, *config.unresolved]))
    if option is None:
        return known
    names = [n.strip() for n in option.split(",") if n.strip()]
    wrong = [n for n in names if n not in known]
    for name in wrong:
        print(f"notifier: no channel named {name!r}"
              f"{close_match(name, known, list_all=False) or '; channels: ' + ', '.join(known)}",
              file=sys.stderr)
    return None if wrong or not names else names


# --- add ---------------------------------------------------------------------------------


def _configure_add(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", metavar="URL", help="a blog, a post or a feed")
    parser.add_argument("--name", help="the subscription's name (default: from the URL)")
    _watch_and_notify_options(parser, watch="comments", what="")


def _add(args: argparse.Namespace) -> int:
    from notifier.daemon import fetch_settings
    from notifier.discover import DiscoveryError, discover
    from notifier.fetch import Fetcher

    start = _config_and_channels(args)
    if start is None:
        return EXIT_USAGE
    config, notify = start
    url: str = args.url.strip()
    if "://" not in url:  # `notifier add blog.example.org`, as discovery reads it too
        url = "https://" + url.removeprefix("//")
    for sub in config.subscriptions:
        if sub.url == url and sub.watch == args.watch:
            print(f"notifier: {sub.name} already follows the {args.watch} of {url}",
                  file=sys.stderr)
            return EXIT_USAGE
    taken = {s.name for s in config.subscriptions}
    if args.name is not None and args.name in taken:
        print(f"notifier: a subscription named {args.name!r} exists already", file=sys.stderr)
        return EXIT_USAGE

    async def find() -> Any:
        async with Fetcher(fetch_settings(config)) as fetcher:
            return await discover(fetcher, url, "posts" if args.watch == "threads"
                                  else args.watch)

    try:
        found = asyncio.run(find())
    except DiscoveryError as exc:
        # The message quotes the URL as typed, perhaps with a password or a key in it.
        print(f"notifier: cannot follow it: {redact.urls_in(str(exc))}; nothing was added",
              file=sys.stderr)
        return EXIT_FAILED
    name = args.name or subscription_name("", url, taken)
    what = {"posts": "new posts", "comments": "new comments",
            "threads": "new posts and the comments on each"}[args.watch]
    print(f"{name}: {what} from {redact.url(found.feed_url)}")
    print(f"  ({found.note}; notifying {', '.join(notify)})")
    item: dict[str, Any] = {"name": name, "url": url}
    if args.watch != "comments":
        item["watch"] = args.watch
    item["notify"] = notify
    path = Path(args.config)
    try:
        append_subscriptions(path, [item])
    except ConfigWriteError as exc:
        print(f"notifier: {exc}; nothing was added", file=sys.stderr)
        return EXIT_FAILED
    print(f"added to {path}; the daemon follows it after `notifier reload` or a restart, "
          "starting with a baseline (what is there now is not reported)")
    return EXIT_OK


# --- import --------------------------------------------------------------------------------


def _configure_import(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("opml", metavar="FILE.opml",
                        help="an OPML export of a feed reader (Feedly, Miniflux, rss2email...)")
    _watch_and_notify_options(parser, watch="posts", what=" of each feed")


def _import(args: argparse.Namespace) -> int:
    start = _config_and_channels(args)
    if start is None:
        return EXIT_USAGE
    config, notify = start
    source = Path(args.opml)
    try:
        feeds = read_opml(source.read_bytes(), str(source))
    except OSError as exc:
        print(f"notifier: {source}: cannot read it: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except OpmlError as exc:
        print(f"notifier: {exc}", file=sys.stderr)
        return EXIT_USAGE
    followed = {(s.url, s.watch): s.name for s in config.subscriptions}
    taken = {s.name for s in config.subscriptions}
    items: list[dict[str, Any]] = []
    skipped: list[str] = []
    for feed in feeds:
        if (feed.url, args.watch) in followed:
            skipped.append(f"{followed[(feed.url, args.watch)]} ({redact.url(feed.url)})")
            continue
        item: dict[str, Any] = {"name": subscription_name(feed.title, feed.url, taken),
                                "url": feed.url}
        if args.watch != "comments":
            item["watch"] = args.watch
        item["notify"] = notify
        items.append(item)
        followed[(feed.url, args.watch)] = item["name"]
    for item in items:
        print(f"  + {item['name']}: {redact.url(item['url'])}")
    if skipped:
        print(f"already followed, skipped: {', '.join(skipped)}")
    if not items:
        print("nothing to import")
        return EXIT_OK
    path = Path(args.config)
    try:
        append_subscriptions(path, items)
    except ConfigWriteError as exc:
        print(f"notifier: {exc}; nothing was imported", file=sys.stderr)
        return EXIT_FAILED
    print(f"imported {len(items)} subscription{'s' if len(items) != 1 else ''} "
          f"({args.watch}, notifying {', '.join(notify)}) into {path}; each starts with a "
          "baseline after `notifier reload` or a restart")
    return EXIT_OK


# --- export --------------------------------------------------------------------------------


def _export(args: argparse.Namespace) -> int:
    config = load(args, require_secrets=False)
    feeds: dict[str, str] = {}
    try:
        if not_created(config.state_url()) is None:  # no state yet: the URLs as written
            store = Store(config.state_url())
            try:
                store.migrate()
                feeds = {name: state.feed_url for name, state in
                         store.subscription_states().items() if state.feed_url}
            finally:
                store.close()
    except StoreError:
        pass  # a state that cannot be read: the URLs as written
    outlines = [OpmlOutline(sub.name, feeds.get(sub.name, sub.url),
                            sub.url if sub.name in feeds else None)
                for sub in config.subscriptions]
    sys.stdout.write(write_opml(outlines, f"notifier subscriptions ({config.path.name})"))
    return EXIT_OK


ADD = Command(_add, _configure_add)
IMPORT = Command(_import, _configure_import)
EXPORT = Command(_export)
