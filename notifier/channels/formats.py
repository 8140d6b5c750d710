"""The chat formats a webhook can speak: a notice's pieces in, the platform's JSON body out.

Each platform lays a message out in its own module (`slack`, `mattermost`, `discord`,
`teams`), which escapes every stranger's text by that platform's rules, quotes the parent
comment, cuts each piece to the platform's documented limit (keeping our link) and adds
the only links the message has. The escaping happens here, after rendering, where a user's
template cannot forget it:

- slack: Block Kit with the rendered `text` as fallback; strangers' text in `plain_text`
  and `rich_text`, which Slack shows literally; `& < >` escaped in the fallback.
- mattermost: Markdown `text`, 16,383 characters; Markdown escaped, every `@name` broken.
- discord: one embed and `allowed_mentions: {"parse": []}`; Markdown escaped, `@everyone`
  and `@here` broken.
- teams: an Adaptive Card 1.4 (Workflows URLs), 25,000 bytes of JSON; strangers' text only
  in `TextRun`s, which do not read Markdown; `<at>` broken.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from notifier.channels.chatmessage import ChatMessage, chat_message
from notifier.channels.discord import DISCORD_LIMIT, discord_body, discord_content
from notifier.channels.mattermost import MATTERMOST_LIMIT, mattermost_body, mattermost_text
from notifier.channels.slack import SLACK_LIMIT, slack_body, slack_escape, slack_text
from notifier.channels.teams import TEAMS_LIMIT, teams_body

__all__ = ["CHAT_FORMATS", "DISCORD_LIMIT", "MATTERMOST_LIMIT", "SLACK_LIMIT", "TEAMS_LIMIT",
           "ChatFormat", "ChatMessage", "chat_message", "discord_content", "mattermost_text",
           "slack_escape", "slack_text"]

ChatFormat = Callable[[ChatMessage], dict[str, Any]]
"""A notice's pieces -> the JSON body to POST."""

CHAT_FORMATS: dict[str, ChatFormat] = {
    "slack": slack_body,
    "mattermost": mattermost_body,
    "discord": discord_body,
    "teams": teams_body,
}
