"""A Discord webhook message: one embed (title linking to the comment, author, the parent
as a quote, the comment, a "Read and reply" link, a timestamp), no pings.

Discord reads Markdown in an embed's title and description, so every stranger's text there
is escaped (`markdown.escape_discord`) and `@everyone`/`@here` broken besides
`allowed_mentions: {"parse": []}`; the author's name and the footer are shown as plain
text by Discord and go unescaped. A digest has no single comment to show: its rendered
`text` goes into `content`, escaped around its own links.

Limits, from Discord's developer documentation: `content` 2,000 characters; an embed's
title 256, description 4,096, author name 256, footer text 2,048, and all of an embed's
texts together 6,000. Discord counts as JavaScript does, so an astral emoji counts twice.
"""

from __future__ import annotations

from typing import Any

from notifier.channels.chatmessage import ChatMessage
from notifier.channels.httpsend import break_mentions, fit, utf16_len
from notifier.channels.markdown import escape_around, escape_discord, link

DISCORD_LIMIT = 2_000
"""UTF-16 units of `content`."""
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4_096
AUTHOR_LIMIT = 256
FOOTER_LIMIT = 2_048
EMBED_TOTAL = 6_000
COLOUR = 0x2563EB
_MASS_MENTIONS = ("@everyone", "@here")


def discord_content(text: str, link: str) -> str:
    """Discord content: at most 2,000 characters, no mass mention even if parsing were on."""
    text = break_mentions(text, _MASS_MENTIONS)
    return fit(text, DISCORD_LIMIT, link, measure=utf16_len)


def escape(text: str) -> str:
    return break_mentions(escape_discord(text), _MASS_MENTIONS)


def discord_body(message: ChatMessage) -> dict[str, Any]:
    if message.text_only:
        text = escape_around(message.text, message.links, escape)
        return {"content": discord_content(text, message.link),
                "allowed_mentions": {"parse": []}}
    return {"embeds": [embed(message)], "allowed_mentions": {"parse": []}}


def embed(message: ChatMessage) -> dict[str, Any]:
    data: dict[str, Any] = {"title": _fit(escape(message.headline), TITLE_LIMIT),
                            "color": COLOUR}
    if message.card_link():
        data["url"] = message.card_link()
    if message.author:
        data["author"] = {"name": _fit(break_mentions(message.author, _MASS_MENTIONS),
                                       AUTHOR_LIMIT)}
        if message.author_url:
            data["author"]["url"] = message.author_url
    footer = message.post_title or message.feed_title
    if footer:
        data["footer"] = {"text": _fit(footer, FOOTER_LIMIT)}
    if message.timestamp:
        data["timestamp"] = message.timestamp
    used = sum(utf16_len(part) for part in (data["title"], data.get("author", {}).get("name", ""),
                                            data.get("footer", {}).get("text", "")))
    data["description"] = _description(message, min(DESCRIPTION_LIMIT, EMBED_TOTAL - used))
    return data


def _description(message: ChatMessage, limit: int) -> str:
    """The parent as a quote, the comment, and our link last, which a cut keeps."""
    url = message.card_link()
    action = link(message.action, url) if url else ""
    head = ""
    if message.has_parent:
        said = _fit(escape(message.parent_text), 1_000)
        who = escape(message.parent_author or "Someone")
        head = "\n".join("> " + line for line in f"**{who}** wrote:\n{said}".splitlines()
                         if line.strip()) + "\n\n"
    extra = ""
    if message.missing:
        many = "comment" if message.missing == 1 else "comments"
        extra = f"\n\n*At least {message.missing} {many} may be missing.*"
    tail = extra + ("\n\n" + action if action else "")
    room = limit - utf16_len(head) - utf16_len(tail)
    return head + _fit(escape(message.body), max(room, 1)) + tail


def _fit(text: str, limit: int) -> str:
    """Cut by Discord's measure, never leaving a lone backslash that would escape "…"."""
    cut = fit(text, limit, measure=utf16_len)
    if cut.endswith("…") and (len(cut) - 1 - len(cut[:-1].rstrip("\\"))) % 2:
        cut = cut[:-2] + "…"
    return cut
