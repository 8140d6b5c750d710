"""What a chat card shows, taken apart: the pieces each platform lays out in its own way.

Slack blocks, a Discord embed, a Teams Adaptive Card and a Mattermost post each put the
headline, the parent comment, the comment and the link in different fields with different
limits and different escaping. Handing them the pieces, unescaped, lets each platform's
module escape and cut every piece by its own rules; the rendered `text` template travels
along as the plain fallback (Slack's notification text, and the body of every digest).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from notifier.textsafety import strip_bidi_controls

CARD_LINK_LIMIT = 2_000
"""Characters of the link a card shows. Feeds may carry far longer URLs (tracking
parameters), which would push a Slack section past 3,000 characters or a Discord description
past 4,096 and get the whole message refused; such a link yields to the post's."""


def _short(url: str) -> bool:
    return len(url) <= CARD_LINK_LIMIT


@dataclass(frozen=True, slots=True)
class ChatMessage:
    text: str
    """The rendered `text` template: plain, unescaped."""
    link: str
    """The entry's checked link (or a digest's), kept when anything is cut."""
    headline: str = ""
    kind: str = "comment"
    author: str = ""
    author_url: str = ""
    published: datetime | None = None
    published_text: str = ""
    body: str = ""
    """The comment (or post) as plain text, whole."""
    parent_author: str = ""
    parent_text: str = ""
    """The parent comment, already shortened to an excerpt."""
    parent_link: str = ""
    post_title: str = ""
    post_link: str = ""
    feed_title: str = ""
    missing: int = 0
    digest: bool = False
    own_text: bool = False
    """The user's own `text` template was rendered: send it (escaped), not a built card."""
    links: tuple[str, ...] = ()
    """Every URL the `text` template may show; the only text a Markdown body leaves as is."""

    @property
    def text_only(self) -> bool:
        """A digest, or a user's own template: the rendered text is the message."""
        return self.digest or self.own_text

    @property
    def has_parent(self) -> bool:
        return bool(self.parent_text or self.parent_author)

    def card_link(self, fits: Callable[[str], bool] = _short) -> str:
        """The link a card shows: the entry's, else the post's when the entry's does not
        `fit`, else none (the fallback text keeps the whole link)."""
        return next((url for url in (self.link, self.post_link) if url and fits(url)), "")

    @property
    def action(self) -> str:
        return "Read the post" if self.kind == "post" else "Read and reply"

    @property
    def timestamp(self) -> str:
        """ISO 8601 in UTC, as Discord's embed `timestamp` wants it; "" when unknown."""
        if self.published is None:
            return ""
        published = self.published
        if published.tzinfo is None:
            published = published.replace(tzinfo=UTC)
        return published.astimezone(UTC).isoformat()


def chat_message(text: str, context: Mapping[str, Any], *, own_text: bool = False
                 ) -> ChatMessage:
    """The pieces of one notice (or digest) from the renderer's template variables, each
    without the direction controls that would let a commenter's name reverse the rest of
    a line (as the renderer strips them from a rendered template)."""

    def shown(key: str) -> str:
        return strip_bidi_controls(str(context.get(key) or ""))

    text = strip_bidi_controls(text)
    if "items" in context:  # a digest
        items = context["items"]
        links = [context.get("link", "")] + [
            url for item in items for url in (item["link"], item["post_link"], item["feed_url"])]
        return ChatMessage(text=text, link=shown("link"), headline=shown("headline"),
                           digest=True, own_text=own_text,
                           links=tuple(strip_bidi_controls(u) for u in links if u))
    parent_author = shown("parent_author")
    return ChatMessage(
        text=text, link=shown("link"), headline=shown("headline"), kind=shown("kind"),
        author=shown("author"), author_url=shown("author_url"), published=context["published"],
        published_text=shown("published_text"), body=shown("text"),
        parent_author=parent_author if context["parent"] is not None or parent_author else "",
        parent_text=shown("parent_excerpt"), parent_link=shown("parent_link"),
        post_title=shown("post_title"), post_link=shown("post_link"),
        feed_title=shown("feed_title"), missing=int(context["missing"] or 0),
        own_text=own_text,
        links=tuple(shown(key) for key in ("link", "post_link", "feed_url", "parent_link",
                                           "author_url") if context[key]))
