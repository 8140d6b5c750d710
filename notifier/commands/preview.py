"""`notifier preview NAME`: what the newest entry of a subscription would look like in each
of its channels, rendered by the channels' own code and templates, and sent nowhere.

Email shows the message `EmailChannel` builds; the console channel its text; the HTTP
channels (webhook and its chat formats, Matrix, Telegram, ntfy) send into an in-process
transport that records the request and answers like their servers, so the payload shown is
exactly the one that would leave; any other kind (Apprise) shows its rendered templates.
Needs no channel secrets (a missing one reads `unset-NAME` in what is shown). A
subscription not polled yet (just added) is read from its feed now; nothing is recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from notifier import redact
from notifier.commands.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Command, load
from notifier.config import Config, close_match
from notifier.delivery.channel import ChannelConfig, ChannelContext, DeliveryError
from notifier.errors import NotifierError
from notifier.models import Notice
from notifier.render import Renderer, RenderError
from notifier.store import Store

if TYPE_CHECKING:
    import httpx

HTTP_KINDS = frozenset({"webhook", "matrix", "telegram", "ntfy"})
"""Kinds that send only through the context's HTTP client, which a preview replaces with a
recording transport; any other kind shows its rendered templates instead."""


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="the subscription's name")


def _preview(args: argparse.Namespace) -> int:
    config = load(args, require_secrets=False)
    sub = config.subscription(args.name)
    if sub is None:
        names = [s.name for s in config.subscriptions]
        print(f"notifier: no subscription named {args.name!r}"
              f"{close_match(args.name, names, list_all=False)}", file=sys.stderr)
        return EXIT_USAGE
    notice = _newest_notice(config, sub.name)
    if notice is None:
        # Not polled yet (just added): read the feed now, recording nothing.
        try:
            notice = asyncio.run(_fetched_notice(config, sub.name, sub.url, sub.watch))
        except NotifierError as exc:
            print(f"notifier: nothing recorded for {sub.name} yet, and reading its feed "
                  f"failed: {exc}", file=sys.stderr)
            return EXIT_FAILED
        if notice is None:
            print(f"notifier: {sub.name}: its feed has no entries yet", file=sys.stderr)
            return EXIT_FAILED
    renderer = Renderer(config.base_dir, {s.name: s.templates for s in config.subscriptions})
    print(f"{sub.name}: newest entry {notice.entry.link or notice.entry.key} "
          f"by {notice.entry.author or 'unknown'}; nothing is sent")
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


def _newest_notice(config: Config, name: str) -> Notice | None:
    store = Store(config.state_url())
    try:
        store.migrate()
        state = store.subscription_states().get(name)
        if state is None or state.feed_id is None:
            return None
        newest = store.newest_entries(state.feed_id, 1)
        if not newest:
            return None
        entry = newest[0]
        feed = store.feeds_by_id([state.feed_id])[state.feed_id]
        parent = store.entries_by_key([entry.parent_key]).get(entry.parent_key) \
            if entry.parent_key else None
    finally:
        store.close()
    return Notice(notification_id=f"preview-{uuid.uuid4().hex}", subscription=name,
                  channel="", entry=entry, feed_title=feed.title, feed_url=feed.url,
                  is_reply=bool(entry.parent_key) and entry.parent_key != entry.post_key,
                  parent=parent)


async def _fetched_notice(config: Config, name: str, url: str, watch: str) -> Notice | None:
    """The newest entry of the subscription's feed as it is now, straight from the source
    (the poll path's completion, such as WordPress REST parents, is left out)."""
    from notifier.daemon import fetch_settings
    from notifier.discover import discover
    from notifier.fetch import Fetcher
    from notifier.parse import parse_feed

    async with Fetcher(fetch_settings(config)) as fetcher:
        found = await discover(fetcher, url, "comments" if watch == "comments" else "posts")
        fetched = await fetcher.fetch(found.feed_url)
    if not fetched.ok or fetched.body is None:
        raise NotifierError(f"{redact.url(found.feed_url)}: "
                            f"{fetched.error or f'HTTP {fetched.status}'}")
    feed = parse_feed(fetched.body, fetched.final_url, fetched.headers)
    if not feed.entries:
        return None
    epoch = datetime.fromtimestamp(0, UTC)
    entry = max(feed.entries, key=lambda e: e.published or epoch)
    parent = next((e for e in feed.entries if entry.parent_key and e.key == entry.parent_key),
                  None)
    return Notice(notification_id=f"preview-{uuid.uuid4().hex}", subscription=name,
                  channel="", entry=entry, feed_title=feed.title, feed_url=found.feed_url,
                  is_reply=bool(entry.parent_key) and entry.parent_key != entry.post_key,
                  parent=parent)


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


COMMAND = Command("preview", "Show the notification the newest entry of a subscription "
                             "would produce in each of its channels; sends nothing.",
                  _preview, _configure)
