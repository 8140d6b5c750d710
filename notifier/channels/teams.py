"""A Teams message for a Workflows webhook: one Adaptive Card, schema version 1.4.

Layout: the headline, a byline, the parent comment in an `emphasis` Container (Teams'
quote), the comment, and an `Action.OpenUrl` "Read and reply" button.

A `TextBlock` reads Markdown, so no stranger's text goes into one: every text is a
`TextRun` inside a `RichTextBlock` (Adaptive Cards 1.2+), which the card schema defines as
plain text ("does not support Markdown"). A digest's own links become runs whose
`selectAction` opens them, so the only links are ours. `<at>` is broken besides, since a
Teams client that ever rendered one would ping.

Teams refuses cards over about 28 KB with its own envelope; the whole body is kept under
`TEAMS_LIMIT` bytes. Version 1.4 is what Teams renders on desktop, web and mobile for
cards posted by Workflows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from notifier.channels.chatmessage import ChatMessage
from notifier.channels.httpsend import ZWSP, dump, fit, json_len
from notifier.channels.markdown import split_links

TEAMS_LIMIT = 25_000
"""Bytes of the whole request body; Teams refuses cards over about 28 KB, including its own
envelope, so this leaves room."""
CARD_VERSION = "1.4"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
HEADLINE_LIMIT = 1_000
_TEAMS_AT = re.compile(r"<(/?)at\b", re.IGNORECASE)


def defuse(text: str) -> str:
    return _TEAMS_AT.sub(lambda m: "<" + ZWSP + m.group(1) + "at", text)


def run(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextRun", "text": defuse(text), **style}


def rich(*runs: dict[str, Any], **props: Any) -> dict[str, Any]:
    return {"type": "RichTextBlock", "inlines": list(runs), **props}


def teams_body(message: ChatMessage) -> dict[str, Any]:
    """A Workflows ("Post to a channel when a webhook request is received") message."""
    if message.text_only:
        return _fitted(lambda text: _text_card(message, text), message.text, message.link)
    return _fitted(lambda text: _card(message, text), message.body)


def envelope(content: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
        "content": content}]}


def card(body: list[dict[str, Any]], link: str, action: str) -> dict[str, Any]:
    content: dict[str, Any] = {
        "$schema": CARD_SCHEMA, "type": "AdaptiveCard", "version": CARD_VERSION,
        "body": body, "msteams": {"width": "Full"}}  # else Teams shows a narrow card
    if link:
        content["actions"] = [{"type": "Action.OpenUrl", "title": action, "url": link}]
    return envelope(content)


def _fitted(build: Callable[[str], dict[str, Any]], text: str, keep: str = ""
            ) -> dict[str, Any]:
    """The card with `text` (the part that may be long) cut until the body fits, `keep`
    (a link the text shows) kept at its end."""
    data = build(text)
    over = len(dump(data)) - TEAMS_LIMIT
    if over <= 0:
        return data
    return build(fit(text, max(json_len(text) - over - 16, 0), keep, measure=json_len))


def _paragraphs(text: str) -> list[dict[str, Any]]:
    """One RichTextBlock per paragraph: a run keeps its line breaks, a block its spacing."""
    blocks = [p.strip() for p in re.split(r"\n[ \t]*\n", text) if p.strip()]
    return [rich(run(p)) for p in blocks]


def _card(message: ChatMessage, text: str) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        rich(run(fit(message.headline, HEADLINE_LIMIT, measure=json_len), weight="Bolder",
                 size="Medium"))]
    byline = " · ".join(p for p in (message.author, message.published_text) if p)
    if byline:
        body.append(rich(run(byline, isSubtle=True, size="Small"), spacing="None"))
    if message.has_parent:
        quote = [rich(run(f"{message.parent_author or 'Someone'} wrote:", italic=True,
                          isSubtle=True))]
        if message.parent_text:
            quote.append(rich(run(message.parent_text), spacing="Small"))
        body.append({"type": "Container", "style": "emphasis", "items": quote})
    body += _paragraphs(text)
    if message.missing:
        many = "comment" if message.missing == 1 else "comments"
        body.append(rich(run(f"At least {message.missing} {many} may be missing; see the "
                             "thread.", italic=True, color="Warning")))
    return card(body, message.card_link(), message.action)


def _text_card(message: ChatMessage, text: str) -> dict[str, Any]:
    title, _, rest = text.strip().partition("\n")
    body: list[dict[str, Any]] = [
        rich(run(fit(title, HEADLINE_LIMIT, measure=json_len), weight="Bolder", size="Medium"))]
    for line in rest.splitlines():
        if not line.strip():
            continue
        runs = [run(piece, selectAction={"type": "Action.OpenUrl", "url": piece})
                if is_link else run(piece) for piece, is_link in
                split_links(line, message.links)]
        body.append(rich(*runs))
    return card(body, message.link, "Open")
