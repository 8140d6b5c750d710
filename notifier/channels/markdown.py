"""Commenter text made inert on the platforms that read Markdown (Discord, Mattermost).

A comment is text a stranger wrote. On a Markdown platform `[https://bank.example/](http://
evil.example/)` would become a link whose visible text is a lie, `**urgent**` bold and
`# Big` a heading, in a message that carries our name. So every untrusted text is escaped
before it goes into a Markdown body, and the only links in the message are the ones built
here from checked URLs (`link`). Escaping is by backslash, which both CommonMark
(Mattermost) and Discord's parser accept before any ASCII punctuation, so the reader sees
exactly the characters the commenter typed.

Mattermost also rewrites Slack's `<url|text>` and `<!channel>` in webhook text before it
reads the Markdown, whatever backslashes say; its `<`, `>` and `&` are written as entities
instead (CommonMark shows `&lt;` as `<`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

__all__ = ["escape_around", "escape_discord", "escape_mattermost", "link", "split_links"]

_INLINE = r"\\`*_~\[\]()|#"
"""Anywhere in a line: emphasis, code, links and images, spoilers, headings, hashtags."""
_DISCORD = re.compile(f"([{_INLINE}<>&])")
"""Discord adds `<@id>`, `<#channel>`, `<t:…>` and `<url>`, which all start with `<`."""
_MATTERMOST = re.compile(f"([{_INLINE}])")
_LINE_START = re.compile(r"^([ \t]*)([-+=>])", re.MULTILINE)
"""Only at the start of a line: quotes, list items, setext rules, Discord's `-#` subtext."""
_ORDERED = re.compile(r"^([ \t]*\d+)\.", re.MULTILINE)
"""`1.` starts an ordered list; `1)` is already defused by its escaped parenthesis."""
_INDENT = re.compile(r"^[ \t]+", re.MULTILINE)
"""Four spaces start a code block; no comment needs its indentation in a chat message."""


def _escape_lines(text: str) -> str:
    text = _ORDERED.sub(r"\1\\.", text)
    return _LINE_START.sub(r"\1\\\2", text)


def escape_discord(text: str) -> str:
    """`text` as Discord shows it: literally, no link, emphasis, heading or mention."""
    return _escape_lines(_DISCORD.sub(r"\\\1", _INDENT.sub("", text)))


def escape_mattermost(text: str) -> str:
    """`text` as Mattermost shows it: literally (see the module's note on `<` and `&`)."""
    text = _INDENT.sub("", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _escape_lines(_MATTERMOST.sub(r"\\\1", text))


def link(label: str, url: str) -> str:
    """A Markdown link we build: `[label](url)`, the URL's parentheses and spaces encoded so
    that no address can end the link early. `label` must already be escaped."""
    safe = url.replace("(", "%28").replace(")", "%29").replace(" ", "%20")
    return f"[{label}]({safe})"


def split_links(text: str, links: Iterable[str]) -> list[tuple[str, bool]]:
    """`text` as (piece, is_one_of_links) runs, longest link first, so a rendered template's
    own links can stay links while everything around them is escaped."""
    wanted = sorted({u for u in links if u}, key=len, reverse=True)
    if not wanted:
        return [(text, False)] if text else []
    pattern = re.compile("|".join(re.escape(u) for u in wanted))
    pieces: list[tuple[str, bool]] = []
    at = 0
    for match in pattern.finditer(text):
        if match.start() > at:
            pieces.append((text[at:match.start()], False))
        pieces.append((match.group(0), True))
        at = match.end()
    if at < len(text):
        pieces.append((text[at:], False))
    return pieces


def escape_around(text: str, links: Iterable[str], escape: Callable[[str], str]) -> str:
    """`text` escaped except where it shows one of `links` (the template's own URLs)."""
    return "".join(piece if is_link else escape(piece)
                   for piece, is_link in split_links(text, links))
