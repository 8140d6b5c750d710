"""`notifier preview NAME`: what the newest entry of a subscription would look like in each
of its channels, rendered by the channels' own code and templates, and sent nowhere.

Email shows the message `EmailChannel` builds; the console channel its text; the HTTP
channels (webhook and its chat formats, Matrix, Telegram, ntfy) send into an in-process
transport that records the request and answers like their servers, so the payload shown is
exactly the one that would leave; any other kind (Apprise) shows its rendered templates.
Needs no channel secrets (a missing one reads `unset-NAME` in what is shown).

The entry shown is the newest one the subscription would report, as `match` decides: for
`replies_to`, the newest reply to those people, quoting what it answers; for `watch:
threads`, the newest post or comment of any thread it follows. A subscription not polled
yet (just added) is polled now through the real pipeline into a throw-away state, so the
parents of replies and the threads are found as the daemon finds them; nothing is recorded
in the daemon's state.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import sys
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from notifier import redact
from notifier.commands.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Command, load
from notifier.config import Config, Subscription
from notifier.configproblems import close_match
from notifier.delivery.channel import ChannelConfig, ChannelContext, DeliveryError
from notifier.errors import NotifierError
from notifier.failures import FailedFeed
from notifier.match import MAX_DEPTH, wants
from notifier.models import Entry, Notice
from notifier.render import Renderer, RenderError
from notifier.store import Store, SubscriptionState
from notifier.store.statefile import sqlite_path
from notifier.textsafety import shown_entry, strip_bidi_controls

if TYPE_CHECKING:
    import httpx

HTTP_KINDS = frozenset({"webhook", "matrix", "telegram", "ntfy"})
"""Kinds that send only through the context's HTTP client, which a preview replaces with a
recording transport; any other kind shows its rendered templates instead."""


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="the subscription's name")


LOOKBACK = 20
"""Newest stored entries of each feed looked at for the entry to show."""

FILTERED_LOOKBACK = 500
"""The same, for a subscription that filters (`replies_to`, `authors`): the newest reply
to you may be some way down a busy thread."""


@dataclass(frozen=True)
class _Choice:
    notice: Notice
    notified: bool
    """False when no recent entry passes the subscription's filters: the newest is shown."""


def _preview(args: argparse.Namespace) -> int:
    config = load(args, require_secrets=False)
    sub = config.subscription(args.name)
    if sub is None:
        names = [s.name for s in config.subscriptions]
        print(f"notifier: no subscription named {args.name!r}"
              f"{close_match(args.name, names, list_all=False)}", file=sys.stderr)
        return EXIT_USAGE
    choice = _from_state(config, sub)
    if choice is None:
        # Not polled yet (just added): poll it now into a throw-away state.
        try:
            choice = _from_feed(config, sub)
        except NotifierError as exc:
            print(f"notifier: nothing recorded for {sub.name} yet, and reading its feed "
                  f"failed: {redact.urls_in(str(exc))}", file=sys.stderr)
            return EXIT_FAILED
        if choice is None:
            print(f"notifier: {sub.name}: its feed has no entries yet", file=sys.stderr)
            return EXIT_FAILED
    notice = choice.notice
    renderer = Renderer(config.base_dir, {s.name: s.templates for s in config.subscriptions})
    print(f"{sub.name}: newest entry {notice.entry.link or notice.entry.key} "
          f"by {notice.entry.author or 'unknown'}; nothing is sent")
    if not choice.notified:
        print(f"(none of its recent entries would be reported: {_filters(sub)}; the newest "
              "is shown as it would read)")
    code = EXIT_OK
    for name in sub.notify:
        print(f"\n=== {name} ===")
        channel = config.channels.get(name)
        if channel is None:
            print(f"(cannot render: its settings need {', '.join(config.unresolved[name])})")
            code = EXIT_FAILED
            continue
        try:
            print(asyncio.run(render(name, channel, renderer,
                                     _for_channel(notice, name))).rstrip())
        except (DeliveryError, RenderError) as exc:
            print(f"(cannot render: {exc})")
            code = EXIT_FAILED
    return code


def _filters(sub: Subscription) -> str:
    parts = [f"{sub.watch} only"] if sub.watch != "threads" else []
    if sub.replies_to:
        parts.append(f"replies to {', '.join(sub.replies_to)}")
    if sub.authors:
        parts.append(f"by {', '.join(sub.authors)}")
    if sub.exclude_authors:
        parts.append(f"not by {', '.join(sub.exclude_authors)}")
    return "; ".join(parts)


def _from_state(config: Config, sub: Subscription) -> _Choice | None:
    """From the state the daemon keeps, when it has polled this subscription."""
    url = config.state_url()
    file = sqlite_path(url)
    if file is not None and not file.exists():
        return None  # no state yet; a preview does not create one
    store = Store(url)
    try:
        store.migrate()
        state = store.subscription_states().get(sub.name)
        if state is None or state.source_url != sub.url or state.watch != sub.watch:
            return None  # never polled, or polled as something else before an edit
        return choose(store, sub, state)
    finally:
        store.close()


def _from_feed(config: Config, sub: Subscription) -> _Choice | None:
    """Poll the subscription now through the real pipeline (discovery, parse, completion:
    the parents of replies, the threads of `watch: threads`) into a throw-away state, and
    choose from that. Nothing is recorded in the daemon's state, nothing is sent."""
    from notifier.daemon import open_engine

    async def poll(scratch: Config) -> _Choice | None:
        errors: list[FailedFeed] = []
        async with open_engine(scratch) as engine:
            for _ in range(2 if sub.watch == "threads" else 1):  # then the threads it found
                errors += (await engine.poll(force=True)).errors
            state = engine.store.subscription_states().get(sub.name)
            choice = choose(engine.store, sub, state) if state is not None else None
        if choice is None and errors:  # one thread feed failing still shows the others
            raise NotifierError("; ".join(map(str, errors)))
        return choice

    root = logging.getLogger()
    level = root.level
    if level == logging.INFO:  # the throw-away poll's lines are not what was asked (-v: are)
        root.setLevel(logging.WARNING)
    try:
        with tempfile.TemporaryDirectory(prefix="notifier-preview-") as folder:
            scratch = dataclasses.replace(
                config, path=config.path, state=f"sqlite:///{Path(folder) / 'preview.db'}",
                subscriptions=(sub,), channels={}, unresolved={})
            return asyncio.run(poll(scratch))
    finally:
        root.setLevel(level)


def choose(store: Store, sub: Subscription, state: SubscriptionState) -> _Choice | None:
    """The newest entry that `sub` would report (as `match` decides, with the parents it
    needs), among its feed's and, for `watch: threads`, its threads' newest; else the
    newest entry, marked as not reported."""
    if state.feed_id is None:
        return None
    feed_ids = [state.feed_id]
    if sub.watch == "threads":
        feed_ids += sorted(fid for fid, readers in store.thread_feeds().items()
                           if sub.name in readers and fid != state.feed_id)
    lookback = FILTERED_LOOKBACK if sub.replies_to or sub.authors or sub.exclude_authors \
        else LOOKBACK
    found = [(entry, fid) for fid in feed_ids for entry in store.newest_entries(fid, lookback)]
    if not found:
        return None
    epoch = datetime.fromtimestamp(0, UTC)
    found.sort(key=lambda pair: pair[0].published or epoch, reverse=True)  # stable: arrival
    known = _ancestors(store, [entry for entry, _ in found])
    entry, fid = next(((e, f) for e, f in found if wants(sub, e, known)), found[0])
    notified = wants(sub, entry, known)
    feed = store.feeds_by_id([fid])[fid]
    parent = known.get(entry.parent_key) if entry.parent_key else None
    # As the delivery builds it (`delivery.cycle`), so the preview reads as the message will.
    shown = shown_entry(entry)
    notice = Notice(notification_id=f"preview-{uuid.uuid4().hex}", subscription=sub.name,
                    channel="", entry=shown, feed_title=strip_bidi_controls(feed.title),
                    feed_url=feed.url,
                    is_reply=bool(shown.parent_key) and shown.parent_key != shown.post_key,
                    parent=shown_entry(parent) if parent is not None else None)
    return _Choice(notice, notified)


def _ancestors(store: Store, entries: list[Entry]) -> dict[str, Entry]:
    """Stored parents, grandparents... of `entries`: what `match` asks of a reply."""
    known = {entry.key: entry for entry in entries}
    wanted = {e.parent_key for e in entries if e.parent_key} - known.keys()
    for _ in range(MAX_DEPTH):
        if not wanted:
            break
        found = store.entries_by_key(wanted)
        known.update(found)
        wanted = {e.parent_key for e in found.values() if e.parent_key} - known.keys()
    return known


def _for_channel(notice: Notice, channel: str) -> Notice:
    return Notice(notification_id=notice.notification_id, subscription=notice.subscription,
                  channel=channel, entry=notice.entry, feed_title=notice.feed_title,
                  feed_url=notice.feed_url, is_reply=notice.is_reply, parent=notice.parent)


async def render(name: str, config: ChannelConfig, renderer: Renderer, notice: Notice) -> str:
    """The message one channel would send for `notice`, as text."""
    import httpx  # here: `notifier run` imports this module too, and sends no chat

    from notifier.channels import build_channel
    from notifier.channels.console import ConsoleChannel
    from notifier.channels.email import EmailChannel

    captured: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        captured.append(request)
        # What the chat APIs answer on success: enough for each kind to accept it.
        return httpx.Response(200, json={"ok": True, "result": {"message_id": 1},
                                         "event_id": "$preview", "id": "preview"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        channel = build_channel(name, config, ChannelContext(renderer=renderer, http=http))
        if isinstance(channel, EmailChannel):
            message = channel.build_message(notice)
            head = "".join(f"{key}: {message[key]}\n" for key in ("From", "To", "Subject")
                           if message[key])
            body = message.get_body(preferencelist=("plain",))
            text = body.get_content() if body is not None else ""
            return f"{head}\n{text}\n(and an HTML alternative)"
        if isinstance(channel, ConsoleChannel):
            return channel.render("text", notice)
        if channel.kind not in HTTP_KINDS:
            # A kind that may reach its service some other way (Apprise): its templates
            # only, so a preview can never send.
            return "\n\n".join(f"[{slot}]\n{channel.render(slot, notice).rstrip()}"
                                 for slot in channel.template_slots)
        try:
            await channel.send(notice)
        except DeliveryError:
            if not captured:
                raise
        if not captured:
            return "(the channel made no request)"
        return "\n\n".join(_show(request) for request in captured)


def _show(request: httpx.Request) -> str:
    body = request.content.decode("utf-8", "replace")
    kind = request.headers.get("content-type", "")
    if "json" in kind:
        with contextlib.suppress(ValueError):  # shown as sent
            body = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    return f"{request.method} {redact.destination(str(request.url))}  ({kind})\n{body}"


COMMAND = Command(_preview, _configure)
