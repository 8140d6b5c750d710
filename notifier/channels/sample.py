"""`notifier test-channel NAME`: one made-up notification through the real path.

A new channel fails in ways only its server can tell (a wrong password, a bot not in the
room, a webhook deleted): the operator should learn that from one command, not from the
log after the first real comment. The sample goes through the same rendering (with the
channel's and subscription's own templates) and the same `send_batch` as any notification;
only the outbox is bypassed, so nothing is recorded and nothing is retried.

It is a reply, the case people care most about, and says in its headline, its author and
its text that it is a test, so nobody answers it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx

from notifier import __version__
from notifier.channels import CHANNEL_KINDS, build_channel
from notifier.delivery.channel import ChannelConfig, ChannelContext, DeliveryError
from notifier.models import Entry, Notice
from notifier.render import Renderer

SAMPLE_POST = "https://blog.example.org/2024/05/14/a-post-to-test-notifier/"


def sample_notice(channel: str, subscription: str = "notifier test-channel",
                  now: datetime | None = None) -> Notice:
    """A realistic reply, clearly marked as a test; a fresh id each time, so a platform
    that drops repeats (Matrix transaction ids, Message-IDs) shows every test."""
    when = (now or datetime.now(UTC)).replace(microsecond=0)
    parent = Entry(
        key=f"{SAMPLE_POST}#comment-1", kind="comment", author="Ann Example",
        link=f"{SAMPLE_POST}#comment-1", post_key=SAMPLE_POST, post_link=SAMPLE_POST,
        post_title="[TEST] A post to test notifier", published=when,
        content_html="<p>Does this channel work? I would like to hear about replies.</p>")
    entry = Entry(
        key=f"{SAMPLE_POST}#comment-2", kind="comment", author="notifier (test message)",
        link=f"{SAMPLE_POST}#comment-2", post_key=SAMPLE_POST, post_link=SAMPLE_POST,
        post_title="[TEST] A post to test notifier", published=when,
        parent_key=parent.key, parent_author=parent.author,
        content_html=("<p><strong>This is a test</strong> sent by <code>notifier "
                      f"test-channel {channel}</code>. If you can read it, the channel works; "
                      "nothing needs to be done.</p><p>The post and the comments are made up; "
                      "the link leads nowhere.</p>"))
    return Notice(notification_id=f"test-{uuid.uuid4().hex}", subscription=subscription,
                  channel=channel, entry=entry, feed_title="[TEST] notifier",
                  feed_url=SAMPLE_POST + "feed/atom/", is_reply=True, parent=parent)


async def send_sample(name: str, config: ChannelConfig, renderer: Renderer,
                      subscription: str | None = None) -> DeliveryError | None:
    """Send the sample to one configured channel; None when the server accepted it."""
    async with httpx.AsyncClient(follow_redirects=False, timeout=httpx.Timeout(15.0),
                                 headers={"User-Agent": f"notifier/{__version__}"}) as http:
        channel = build_channel(name, config, ChannelContext(renderer=renderer, http=http))
        notice = sample_notice(name, subscription or "notifier test-channel")
        async for result in channel.send_batch([notice]):
            return result.error
    return DeliveryError(f"{name}: the channel returned no result")


def describe(config: ChannelConfig) -> str:
    """The secret-free one-line description `check` shows."""
    return CHANNEL_KINDS[config.type].summarize(config)
