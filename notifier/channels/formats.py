"""The chat formats a webhook can speak: rendered text in, the platform's JSON body out.

All four take the same plain-text `text` template and differ only in what they must escape
and how much they accept, so the escaping happens here, after rendering, where a user's
template cannot forget it, and every body is cut to its platform's limit (keeping the link)
so the platform never refuses a message for its size:

- slack: `text`, 40,000 characters; `& < >` escaped, so `<!channel>` is text.
- mattermost: `text` (Slack-compatible), 16,383 characters; escaped as for Slack, and every
  `@name` broken.
- discord: `content` and `allowed_mentions: {"parse": []}`, 2,000 UTF-16 units;
  `@everyone` and `@here` broken.
- teams: an Adaptive Card (Workflows URLs), 25,000 bytes of JSON, under Teams' ~28 KB;
  `<at>` broken.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from notifier.channels.httpsend import (
    ZWSP,
    break_mentions,
    dump,
    fit,
    json_len,
    utf16_len,
)

SLACK_LIMIT = 40_000
MATTERMOST_LIMIT = 16_383
"""Mattermost's post limit in characters (runes); longer webhook text is split or refused."""
DISCORD_LIMIT = 2_000
TEAMS_LIMIT = 25_000
"""Bytes of the whole request body; Teams refuses cards over about 28 KB, including its own
envelope, so this leaves room."""

_AT_WORD = re.compile(r"(?<![\w.@])@(?=\w)")
_TEAMS_AT = re.compile(r"<(/?)at\b", re.IGNORECASE)

ChatFormat = Callable[[str, str], dict[str, Any]]
"""(rendered text, entry link) -> the JSON body to POST."""


def slack_text(text: str, link: str) -> str:
    """Slack's own escaping, so `<!channel>` or `<http://x|y>` in a comment is just text."""
    return fit(slack_escape(text), SLACK_LIMIT, slack_escape(link))


def mattermost_text(text: str, link: str) -> str:
    """Mattermost reads Slack's `<!channel>` and its own `@channel`, `@all`, `@name`: escape
    the first as Slack does, and break every `@` that starts a word, since any user named in
    a comment would be pinged."""
    escaped = _AT_WORD.sub("@" + ZWSP, slack_escape(text))
    return fit(escaped, MATTERMOST_LIMIT, slack_escape(link))


def discord_content(text: str, link: str) -> str:
    """Discord content: at most 2,000 characters, no mass mention even if parsing were on."""
    text = break_mentions(text, ("@everyone", "@here"))
    return fit(text, DISCORD_LIMIT, link, measure=utf16_len)


def slack_body(text: str, link: str) -> dict[str, Any]:
    return {"text": slack_text(text, link)}


def mattermost_body(text: str, link: str) -> dict[str, Any]:
    return {"text": mattermost_text(text, link)}


def discord_body(text: str, link: str) -> dict[str, Any]:
    return {"content": discord_content(text, link), "allowed_mentions": {"parse": []}}


def teams_body(text: str, link: str) -> dict[str, Any]:
    """A Workflows ("Post to a channel when a webhook request is received") message: one
    Adaptive Card whose first line is its title, the rest its text, and the link a button.

    A mention in a card needs an `msteams.entities` entry, which is never sent; `<at>` is
    still broken so no client ever renders it as one.
    """
    text = _TEAMS_AT.sub(lambda m: "<" + ZWSP + m.group(1) + "at", text)
    title, _, rest = text.strip().partition("\n")
    # A TextBlock's Markdown shows a lone line break as a space: every line a paragraph.
    rest = "\n\n".join(line.strip() for line in rest.splitlines() if line.strip())

    def card(title: str, rest: str) -> dict[str, Any]:
        body: list[dict[str, Any]] = [{"type": "TextBlock", "text": title, "weight": "Bolder",
                                       "size": "Medium", "wrap": True}]
        if rest:
            body.append({"type": "TextBlock", "text": rest, "wrap": True})
        content: dict[str, Any] = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard", "version": "1.4", "body": body,
            "msteams": {"width": "Full"}}  # else Teams shows a narrow card
        if link:
            content["actions"] = [{"type": "Action.OpenUrl", "title": "Open", "url": link}]
        return {"type": "message", "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
            "content": content}]}

    title = fit(title, 1_000, measure=json_len)
    room = TEAMS_LIMIT - (len(dump(card(title, "x"))) - 1)
    return card(title, fit(rest, room, link, measure=json_len))


def slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


CHAT_FORMATS: dict[str, ChatFormat] = {
    "slack": slack_body,
    "mattermost": mattermost_body,
    "discord": discord_body,
    "teams": teams_body,
}
