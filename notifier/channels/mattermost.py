"""A Mattermost post (Slack-compatible incoming webhook) written in Markdown.

Layout: the headline in bold, a byline, the parent comment as a `>` quote, the comment, and
`[Read and reply](url)`, the only link. Every stranger's text is escaped
(`markdown.escape_mattermost`: backslashes, and `& < >` as entities, so Mattermost's own
`<!channel>` and `<url|text>` rewriting finds nothing) and every `@` that starts a word is
broken, since any user named in a comment would be pinged. A digest is its rendered `text`,
escaped around its own links.

Limit: 16,383 characters (runes) per post; longer webhook text is split or refused.
"""

from __future__ import annotations

import re
from typing import Any

from notifier.channels.chatmessage import ChatMessage
from notifier.channels.httpsend import ZWSP, fit
from notifier.channels.markdown import escape_around, escape_mattermost, link

MATTERMOST_LIMIT = 16_383
_AT_WORD = re.compile(r"(?<![\w.@])@(?=\w)")


def escape(text: str) -> str:
    return _AT_WORD.sub("@" + ZWSP, escape_mattermost(text))


def mattermost_text(text: str, link: str) -> str:
    """A plain text made inert and fitted, its link kept at the end."""
    return fit(escape(text), MATTERMOST_LIMIT, link)


def mattermost_body(message: ChatMessage) -> dict[str, Any]:
    if message.text_only:
        text = escape_around(message.text, message.links, escape)
        return {"text": fit(text, MATTERMOST_LIMIT, message.link)}
    lines = [f"**{escape(message.headline)}**"]
    byline = " · ".join(p for p in (message.author, message.published_text) if p)
    if byline:
        lines.append(escape(byline))
    if message.has_parent:
        said = f"*{escape(message.parent_author or 'Someone')} wrote:*\n" + \
            escape(message.parent_text)
        lines.append("\n".join("> " + line for line in said.splitlines() if line.strip()))
    head = "\n\n".join(lines) + "\n\n"
    tail = ""
    if message.missing:
        many = "comment" if message.missing == 1 else "comments"
        tail += f"\n\n*At least {message.missing} {many} may be missing.*"
    if message.card_link():
        tail += "\n\n" + link(message.action, message.card_link())
    room = MATTERMOST_LIMIT - len(head) - len(tail)
    body = fit(escape(message.body), max(room, 1))
    if body.endswith("…") and (len(body) - 1 - len(body[:-1].rstrip("\\"))) % 2:
        body = body[:-2] + "…"
    return {"text": head + body + tail}
