"""A Slack message in Block Kit, with the rendered `text` as its notification fallback.

Layout: a `header` with the headline, a `context` with who wrote and when, the parent
comment as a `context` line, the comment as a `rich_text_quote`, and a `section` whose
`<url|Read and reply>` is the only link we add.

The comment and every other text a stranger wrote go into `plain_text` objects or
`rich_text` `text` elements, which Slack shows literally: no mrkdwn, no `<!channel>`, no
`<url|label>`. Only our own `section` is mrkdwn, and the labels in it are escaped (`& < >`,
as Slack asks). A button would need an app with interactivity to avoid a warning on click;
a link does not.

Limits, from Slack's Block Kit reference: at most 50 blocks; a header's text 150
characters; a section's text and any text object 3,000; a context at most 10 elements; the
top-level `text` 40,000 (and Slack truncates it in notifications long before).
"""

from __future__ import annotations

from typing import Any

from notifier.channels.chatmessage import ChatMessage
from notifier.channels.httpsend import fit
from notifier.channels.markdown import split_links

SLACK_LIMIT = 40_000
"""Characters of the top-level `text`."""
HEADER_LIMIT = 150
TEXT_LIMIT = 3_000
"""A section's text, and what we allow any one text object or rich text element."""
MAX_BLOCKS = 50
CONTEXT_ELEMENTS = 10
DIGEST_ITEMS = 25


def slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(text: str, link: str) -> str:
    """Slack's own escaping, so `<!channel>` or `<http://x|y>` in a comment is just text."""
    return fit(slack_escape(text), SLACK_LIMIT, slack_escape(link))


def mrkdwn_link(url: str, label: str) -> str:
    """`<url|label>`: the URL escaped as Slack asks and its `|` encoded, so it cannot end
    early; the label escaped and shown as is."""
    return f"<{slack_escape(url).replace('|', '%7C')}|{slack_escape(label)}>"


def plain(text: str, limit: int = TEXT_LIMIT) -> dict[str, Any]:
    return {"type": "plain_text", "text": fit(text, limit) or " ", "emoji": False}


def slack_body(message: ChatMessage) -> dict[str, Any]:
    if message.own_text:
        return {"text": slack_text(message.text, message.link)}
    blocks = _digest_blocks(message) if message.digest else _blocks(message)
    return {"text": slack_text(message.text, message.link), "blocks": blocks[:MAX_BLOCKS]}


def _blocks(message: ChatMessage) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": plain(message.headline, HEADER_LIMIT)}]
    byline = " · ".join(part for part in (message.author, message.published_text,
                                          message.post_title) if part)
    if byline:
        blocks.append({"type": "context", "elements": [plain(byline)]})
    if message.has_parent:
        said = f"{message.parent_author or 'Someone'} wrote: {message.parent_text}".strip()
        blocks.append({"type": "context", "elements": [plain("↩ " + said)]})
    if message.body:
        blocks.append({"type": "rich_text", "elements": [{
            "type": "rich_text_quote",
            "elements": [{"type": "text", "text": fit(message.body, TEXT_LIMIT)}]}]})
    if message.missing:
        many = "comment" if message.missing == 1 else "comments"
        blocks.append({"type": "context", "elements": [plain(
            f"At least {message.missing} {many} may be missing; see the thread.")]})
    link = message.card_link(lambda url: len(_action(url, message.action)) <= TEXT_LIMIT)
    if link:
        blocks.append({"type": "section", "text": {
            "type": "mrkdwn", "text": _action(link, message.action)}})
    return blocks


def _action(url: str, label: str) -> str:
    return "*" + mrkdwn_link(url, label) + "*"


def _digest_blocks(message: ChatMessage) -> list[dict[str, Any]]:
    """A digest: the headline, then the `text` template's lines as a bullet list, its
    URLs as rich text links and everything else as literal text."""
    lines = [line for line in message.text.splitlines()[1:] if line.strip()]
    items: list[dict[str, Any]] = []
    for line in lines[:DIGEST_ITEMS + 2]:
        elements: list[dict[str, Any]] = []
        for piece, is_link in split_links(line.removeprefix("- "), message.links):
            if is_link:
                elements.append({"type": "link", "url": piece, "text": "link"})
            elif piece.strip():
                elements.append({"type": "text", "text": fit(piece, TEXT_LIMIT)})
        if elements:
            items.append({"type": "rich_text_section", "elements": elements})
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": plain(message.headline, HEADER_LIMIT)}]
    if items:
        blocks.append({"type": "rich_text", "elements": [
            {"type": "rich_text_list", "style": "bullet", "elements": items}]})
    return blocks
