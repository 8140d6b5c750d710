"""What each chat platform is sent for a reply, checked against what the platform documents
(Slack's Block Kit limits and element types, Discord's embed limits, the Adaptive Card
schema of version 1.4), and that a commenter's Markdown never becomes a link, bold text or a
heading on any of them: the links in a message are the ones notifier builds.

Markdown is read by a real CommonMark parser (markdown-it-py), as Mattermost reads it;
Discord's parser honours the same backslash escapes.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from dataclasses import replace
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft6Validator
from markdown_it import MarkdownIt
from pydantic import ValidationError

from notifier.channels import channel_config_type
from notifier.channels.apprise import AppriseChannel
from notifier.channels.httpsend import dump, utf16_len
from notifier.channels.markdown import escape_discord, escape_mattermost
from notifier.delivery.channel import ChannelContext, TemporaryFailure
from notifier.models import Notice
from tests.support.webhook_receiver import WebhookReceiver
from tests.test_channels import PARENT, POST, channel, failure_of, make_notice, run
from tests.test_channels_chat import LINK, OK_JSON, as_dict, send_one, telegram_reading
from tests.test_delivery import NOON, Clock, deliver_at, queue, stats, write_config

HOSTILE = "[https://bank.example/login](http://evil.example/) **urgent** # Big heading"
HOSTILE_LINES = ("# Heading\n> not a quote\n1. not a list\n- nor this\n    not code\n"
                 "<https://evil.example/> `code` ~~gone~~ ||spoiler|| __under__ "
                 "![img](http://evil.example/i.png) <@123> <#456> @everyone &amp; \\*")
HOSTILE_HTML = f"<p>{HOSTILE}</p><p>{HOSTILE_LINES.replace('&', '&amp;').replace('<', '&lt;')}</p>"
EVIL = "evil.example"


def hostile_notice(**extra: Any) -> Notice:
    """A reply whose comment, commenter name, post title and parent all carry Markdown."""
    parent = replace(PARENT, author="**Boss** [admin](http://evil.example/p)",
                     content_html=f"<p>{HOSTILE} in the parent</p>")
    item = make_notice(html=HOSTILE_HTML, parent=parent, **extra)
    return replace(item, entry=replace(item.entry, author="[Support](http://evil.example/s)",
                                       post_title="# Why **Defend** Stalin?"))


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.hrefs: list[str] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.hrefs += [v or "" for k, v in attrs if k in ("href", "src")]

    def handle_data(self, data: str) -> None:
        self.text += data


def commonmark(text: str) -> _Html:
    parser = _Html()
    parser.feed(MarkdownIt("commonmark").render(text))
    parser.close()
    return parser


def assert_inert(markdown: str, *, our_links: set[str]) -> _Html:
    """Rendered as CommonMark: no link but ours, no emphasis, heading, code, image or
    list from a stranger; their characters all still visible."""
    html = commonmark(markdown)
    assert set(html.hrefs) <= our_links, html.hrefs
    assert not {"h1", "h2", "img", "code", "ol", "ul", "pre"} & set(html.tags), html.tags
    assert "[https://bank.example/login](http://evil.example/) **urgent** # Big heading" \
        in html.text
    return html


# --- Markdown escaping ------------------------------------------------------------------


@pytest.mark.parametrize("escape", [escape_discord, escape_mattermost])
def test_markdown_from_a_comment_stays_text(escape: Any) -> None:
    text = HOSTILE + "\n" + HOSTILE_LINES
    html = assert_inert(escape(text), our_links=set())
    assert not {"strong", "em", "blockquote", "a"} & set(html.tags)
    for line in ("# Heading", "> not a quote", "1. not a list", "- nor this", "not code",
                 "`code`", "||spoiler||", "__under__", "&amp; \\*"):
        assert line in html.text
    assert EVIL in html.text  # shown, as typed, never a target


def test_discord_escapes_its_own_syntax() -> None:
    escaped = escape_discord("<@123> <#456> <t:1700000000> -# small ||secret||")
    assert not re.search(r"(?<!\\)[<>|#]", escaped)  # each one escaped
    assert escape_discord("-# small").startswith("\\-")


# --- Slack --------------------------------------------------------------------------------

SLACK_BLOCKS = {"header", "context", "rich_text", "section", "divider", "actions"}
RICH_ELEMENTS = {"rich_text_section", "rich_text_list", "rich_text_quote",
                 "rich_text_preformatted"}


def check_text_object(obj: dict[str, Any], limit: int) -> str:
    assert obj["type"] in ("plain_text", "mrkdwn")
    assert set(obj) <= {"type", "text", "emoji", "verbatim"}
    assert isinstance(obj["text"], str) and 1 <= len(obj["text"]) <= limit
    if obj["type"] == "mrkdwn":
        assert "emoji" not in obj
    return str(obj["text"])


def check_slack(data: dict[str, Any]) -> list[str]:
    """Block Kit as Slack's reference documents it; returns every mrkdwn text."""
    assert set(data) == {"text", "blocks"}
    assert isinstance(data["text"], str) and 0 < len(data["text"]) <= 40_000
    blocks = data["blocks"]
    assert 1 <= len(blocks) <= 50
    mrkdwn: list[str] = []
    for block in blocks:
        assert block["type"] in SLACK_BLOCKS
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text"
            check_text_object(block["text"], 150)
        elif block["type"] == "section":
            text = check_text_object(block["text"], 3_000)
            if block["text"]["type"] == "mrkdwn":
                mrkdwn.append(text)
        elif block["type"] == "context":
            assert 1 <= len(block["elements"]) <= 10
            for element in block["elements"]:
                text = check_text_object(element, 3_000)
                if element["type"] == "mrkdwn":
                    mrkdwn.append(text)
        elif block["type"] == "rich_text":
            for element in block["elements"]:
                assert element["type"] in RICH_ELEMENTS
                sections = element["elements"] if element["type"] == "rich_text_list" \
                    else [element]
                if element["type"] == "rich_text_list":
                    assert element["style"] in ("bullet", "ordered")
                for section in sections:
                    for inline in section["elements"]:
                        assert inline["type"] in ("text", "link")
                        assert 0 < len(inline.get("text", "x")) <= 3_000
                        if inline["type"] == "link":
                            assert inline["url"].startswith("http")
    return mrkdwn


def slack_plain_texts(data: dict[str, Any]) -> str:
    """Every text Slack shows literally (plain_text objects and rich text elements)."""
    out: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("type") in ("plain_text", "text") and "text" in value:
                out.append(value["text"])
            for child in value.values():
                walk(child)
        elif isinstance(value, list):
            for child in value:
                walk(child)

    walk(data["blocks"])
    return "\n".join(out)


def test_slack_sends_block_kit_with_the_parent_and_a_text_fallback(
        webhook_receiver: WebhookReceiver) -> None:
    request = send_one(webhook_receiver, "slack", make_notice(parent=PARENT))
    data = as_dict(request.json)
    mrkdwn = check_slack(data)
    blocks = data["blocks"]
    assert blocks[0] == {"type": "header", "text": {
        "type": "plain_text", "emoji": False,
        "text": 'Reply by Markup Tester to East Side Boy on "Why Defend Stalin?"'}}
    shown = slack_plain_texts(data)
    assert "East Side Boy wrote: thanks for article, made me question my views." in shown
    quote = next(b for b in blocks if b["type"] == "rich_text")["elements"][0]
    assert quote["type"] == "rich_text_quote"
    assert quote["elements"][0]["text"].startswith("Quote:\n\n> the people make the heroes")
    assert "Markup Tester · 23 Oct 2013 12:00 UTC · Why Defend Stalin?" in shown
    assert mrkdwn == [f"*<{LINK}|Read and reply>*"]
    assert data["text"].startswith("Reply by Markup Tester") and data["text"].endswith(LINK)


def test_slack_shows_a_strangers_markup_literally(webhook_receiver: WebhookReceiver) -> None:
    item = hostile_notice()
    item = replace(item, entry=replace(item.entry, content_html=HOSTILE_HTML
                                       + "<p>&lt;!channel&gt; &lt;http://evil.example/|"
                                       "https://bank.example/&gt;</p>"))
    data = as_dict(send_one(webhook_receiver, "slack", item).json)
    mrkdwn = check_slack(data)
    # Strangers' text is only ever in objects Slack does not parse ...
    assert all(EVIL not in text and "Boss" not in text for text in mrkdwn)
    assert mrkdwn == [f"*<{LINK}|Read and reply>*"]
    shown = slack_plain_texts(data)
    assert HOSTILE in shown and "<!channel>" in shown and "**Boss**" in shown
    # ... and the fallback text, which Slack does parse, is escaped.
    assert "<!channel>" not in data["text"] and "&lt;!channel&gt;" in data["text"]
    assert "<http://evil.example/|" not in data["text"]


def test_slack_cuts_every_piece_to_its_limit(webhook_receiver: WebhookReceiver) -> None:
    item = make_notice(html="<p>" + "Ünïcödé &amp; words " * 2000 + "</p>", parent=PARENT)
    item = replace(item, entry=replace(item.entry, post_title="T" * 400))
    data = as_dict(send_one(webhook_receiver, "slack", item).json)
    check_slack(data)
    assert len(data["blocks"][0]["text"]["text"]) == 150
    quote = next(b for b in data["blocks"] if b["type"] == "rich_text")
    assert len(quote["elements"][0]["elements"][0]["text"]) == 3_000
    assert data["blocks"][-1]["text"]["text"] == f"*<{LINK}|Read and reply>*"


def test_slack_digest_lists_every_comment_with_our_links(
        webhook_receiver: WebhookReceiver) -> None:
    members = [make_notice(n, html=f"<p>comment {n} {HOSTILE}</p>") for n in range(1, 4)]
    digest = replace(members[0], notification_id="d" * 32, digest=tuple(members))
    data = as_dict(send_one(webhook_receiver, "slack", digest).json)
    check_slack(data)
    assert data["blocks"][0]["text"]["text"].startswith("3 new comments")
    (listing,) = data["blocks"][1]["elements"]
    links = [e["url"] for item in listing["elements"] for e in item["elements"]
             if e["type"] == "link"]
    assert [f"{POST}#comment-{n}" for n in range(1, 4)] == links[:3]
    assert EVIL not in " ".join(links)


# --- Discord ------------------------------------------------------------------------------


def check_discord(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Discord's documented limits for an execute-webhook body with embeds."""
    assert set(data) <= {"content", "embeds", "allowed_mentions", "username", "avatar_url"}
    assert data["allowed_mentions"] == {"parse": []}
    assert data.get("content") or data.get("embeds")
    assert utf16_len(data.get("content", "")) <= 2_000
    embeds: list[dict[str, Any]] = data.get("embeds", [])
    assert len(embeds) <= 10
    for embed in embeds:
        assert set(embed) <= {"title", "url", "description", "color", "author", "footer",
                              "timestamp", "fields"}
        assert utf16_len(embed.get("title", "")) <= 256
        assert utf16_len(embed.get("description", "")) <= 4_096
        assert utf16_len(embed.get("author", {}).get("name", "")) <= 256
        assert utf16_len(embed.get("footer", {}).get("text", "")) <= 2_048
        assert 0 <= embed.get("color", 0) <= 0xFFFFFF
        if "timestamp" in embed:
            datetime.fromisoformat(embed["timestamp"])
        total = sum(utf16_len(text) for text in (
            embed.get("title", ""), embed.get("description", ""),
            embed.get("author", {}).get("name", ""), embed.get("footer", {}).get("text", "")))
        assert total <= 6_000
    return embeds


def test_discord_sends_an_embed(webhook_receiver: WebhookReceiver) -> None:
    data = as_dict(send_one(webhook_receiver, "discord", make_notice(parent=PARENT)).json)
    (embed,) = check_discord(data)
    assert embed["title"] == 'Reply by Markup Tester to East Side Boy on "Why Defend Stalin?"'
    assert embed["url"] == LINK and embed["author"] == {"name": "Markup Tester"}
    assert embed["timestamp"] == "2013-10-23T12:00:00+00:00"
    assert embed["footer"] == {"text": "Why Defend Stalin?"}
    description = embed["description"]
    assert description.startswith("> **East Side Boy** wrote:\n> thanks for article, made me "
                                  "question my views\\.") or \
        description.startswith("> **East Side Boy** wrote:\n> thanks for article, made me "
                               "question my views.")
    assert description.endswith(f"[Read and reply]({LINK})")
    html = commonmark(description)
    assert "blockquote" in html.tags and html.hrefs == [LINK]


def test_discord_shows_a_strangers_markdown_literally(
        webhook_receiver: WebhookReceiver) -> None:
    data = as_dict(send_one(webhook_receiver, "discord", hostile_notice()).json)
    (embed,) = check_discord(data)
    html = assert_inert(embed["description"], our_links={LINK})
    assert html.text.count("Big heading") == 2  # the comment and its parent
    assert "**Boss** [admin](http://evil.example/p) wrote:" in html.text
    assert "@everyone" not in embed["description"]
    title = commonmark(embed["title"])
    assert not title.hrefs and "strong" not in title.tags and "h1" not in title.tags
    assert "# Why **Defend** Stalin?" in title.text
    # The author's name is plain text on Discord: shown as written, never a link.
    assert embed["author"]["name"] == "[Support](http://evil.example/s)"
    assert "url" not in embed["author"]


def test_discord_fits_a_huge_comment_in_one_embed(webhook_receiver: WebhookReceiver) -> None:
    item = make_notice(html="<p>" + "😀 **x** " * 3000 + "</p>", parent=PARENT)
    item = replace(item, entry=replace(item.entry, post_title="P" * 3000, author="A" * 400))
    data = as_dict(send_one(webhook_receiver, "discord", item).json)
    (embed,) = check_discord(data)
    assert embed["description"].endswith(f"…\n\n[Read and reply]({LINK})")
    assert embed["description"].startswith("> **East Side Boy** wrote:")
    assert "\\…" not in embed["description"]


def test_discord_digest_escapes_around_its_links(webhook_receiver: WebhookReceiver) -> None:
    members = [make_notice(n, html=f"<p>{HOSTILE} @everyone</p>") for n in range(1, 3)]
    digest = replace(members[0], notification_id="d" * 32, digest=tuple(members))
    data = as_dict(send_one(webhook_receiver, "discord", digest).json)
    check_discord(data)
    content = data["content"]
    assert f"{POST}#comment-1" in content and f"{POST}#comment-2" in content
    assert "@everyone" not in content
    html = commonmark(content)
    assert EVIL not in " ".join(html.hrefs) and "strong" not in html.tags


# --- Mattermost ---------------------------------------------------------------------------


def test_mattermost_quotes_the_parent_in_inert_markdown(
        webhook_receiver: WebhookReceiver) -> None:
    data = as_dict(send_one(webhook_receiver, "mattermost", hostile_notice()).json)
    assert set(data) == {"text"} and len(data["text"]) <= 16_383
    text = data["text"]
    html = assert_inert(text, our_links={LINK})
    assert "<!channel>" not in text and "@everyone" not in text
    assert html.tags.count("strong") == 1  # our headline only
    assert "blockquote" in html.tags
    assert "**Boss** [admin](http://evil.example/p) wrote:" in html.text
    assert text.endswith(f"[Read and reply]({LINK})")
    # Mattermost rewrites Slack's <url|label> before Markdown: none may survive.
    assert not re.search(r"<[^>|]+\|[^>]+>", text)


# --- Teams --------------------------------------------------------------------------------

CARD_SCHEMA = Draft6Validator(json.loads(
    (Path(__file__).parent / "fixtures" / "adaptive-cards" / "adaptive-card-1.4.schema.json")
    .read_text(encoding="utf-8")))
"""Microsoft's Adaptive Card schema, version 1.4 (see tests/fixtures/README.md)."""
CARD_ELEMENTS = {"TextBlock", "RichTextBlock", "Container", "ColumnSet", "FactSet", "Image",
                 "ActionSet"}
TEXTRUN_PROPS = {"type", "text", "color", "fontType", "highlight", "isSubtle", "italic",
                 "selectAction", "size", "strikethrough", "underline", "weight"}
ENUMS = {"color": {"Default", "Dark", "Light", "Accent", "Good", "Warning", "Attention"},
         "size": {"Default", "Small", "Medium", "Large", "ExtraLarge"},
         "weight": {"Lighter", "Default", "Bolder"},
         "spacing": {"None", "Small", "Default", "Medium", "Large", "ExtraLarge", "Padding"},
         "style": {"default", "emphasis", "good", "attention", "warning", "accent"}}


def check_card(data: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The Workflows envelope and an Adaptive Card 1.4 as its schema defines it; returns
    the card and every TextRun."""
    assert data["type"] == "message"
    (attachment,) = data["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert len(dump(data)) <= 25_000
    # The schema itself; `msteams` is Teams' documented host extension, outside it.
    errors = list(CARD_SCHEMA.iter_errors({k: v for k, v in card.items() if k != "msteams"}))
    assert not errors, [error.message for error in errors]
    assert card["msteams"] == {"width": "Full"}
    runs: list[dict[str, Any]] = []

    def element(item: dict[str, Any]) -> None:
        assert item["type"] in CARD_ELEMENTS
        for key, allowed in ENUMS.items():
            if key in item:
                assert item[key] in allowed, (key, item[key])
        if item["type"] == "Container":
            for child in item["items"]:
                element(child)
        if item["type"] == "RichTextBlock":
            for inline in item["inlines"]:
                assert inline["type"] == "TextRun" and set(inline) <= TEXTRUN_PROPS
                for key in ("color", "size", "weight"):
                    if key in inline:
                        assert inline[key] in ENUMS[key]
                if "selectAction" in inline:
                    assert inline["selectAction"]["type"] == "Action.OpenUrl"
                runs.append(inline)

    for item in card["body"]:
        element(item)
    for action in card.get("actions", []):
        assert action["type"] == "Action.OpenUrl" and action["url"].startswith("http")
    return card, runs


def test_teams_card_quotes_the_parent_in_a_container(webhook_receiver: WebhookReceiver) -> None:
    data = as_dict(send_one(webhook_receiver, "teams", make_notice(parent=PARENT)).json)
    card, runs = check_card(data)
    assert runs[0]["text"] == 'Reply by Markup Tester to East Side Boy on "Why Defend Stalin?"'
    assert runs[0]["weight"] == "Bolder"
    (quote,) = [b for b in card["body"] if b["type"] == "Container"]
    assert quote["style"] == "emphasis"
    assert [r["text"] for b in quote["items"] for r in b["inlines"]] == [
        "East Side Boy wrote:", "thanks for article, made me question my views."]
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Read and reply",
                                "url": LINK}]


def test_teams_shows_a_strangers_markdown_as_text(webhook_receiver: WebhookReceiver) -> None:
    data = as_dict(send_one(webhook_receiver, "teams", hostile_notice()).json)
    card, runs = check_card(data)
    # No TextBlock (which reads Markdown) carries anything a stranger wrote.
    assert all(b["type"] != "TextBlock" for b in card["body"])
    texts = " ".join(r["text"] for r in runs)
    assert HOSTILE in texts and "<at>" not in texts
    assert not any("selectAction" in r for r in runs)


def test_teams_digest_links_are_ours(webhook_receiver: WebhookReceiver) -> None:
    members = [make_notice(n, html=f"<p>{HOSTILE}</p>") for n in range(1, 3)]
    digest = replace(members[0], notification_id="d" * 32, digest=tuple(members))
    _, runs = check_card(as_dict(send_one(webhook_receiver, "teams", digest).json))
    targets = [r["selectAction"]["url"] for r in runs if "selectAction" in r]
    assert f"{POST}#comment-1" in targets and f"{POST}#comment-2" in targets
    assert EVIL not in " ".join(targets)


@pytest.mark.parametrize("kind", ["slack", "mattermost", "discord", "teams"])
def test_no_direction_control_reaches_a_card(webhook_receiver: WebhookReceiver,
                                             kind: str) -> None:
    """U+202E in a name would reverse the rest of its line ("‮gnp.exe"): removed from every
    piece of a card, as from every rendered template."""
    parent = replace(PARENT, author="Ann \u202eevil\u202c", content_html="<p>x\u2067y</p>")
    item = make_notice(html="<p>Name reversal \u202egnp.exe\u202c here</p>", parent=parent)
    item = replace(item, entry=replace(item.entry, author="Bob \u2066\u202e",
                                       post_title="T\u202d"))
    body = send_one(webhook_receiver, kind, item).body.decode("utf-8")
    assert "Name reversal gnp.exe here" in body.replace("\\.", ".")
    assert not re.search("[\u202a-\u202e\u2066-\u2069]", body)
    assert not re.search(r"\\u20(2[a-e]|6[6-9])", body, re.IGNORECASE)


@pytest.mark.parametrize("kind", ["slack", "mattermost", "discord", "teams"])
def test_a_huge_link_yields_to_the_post_link_within_each_limit(
        webhook_receiver: WebhookReceiver, kind: str) -> None:
    """A feed's 5,000-character tracking URL would push a Slack section past 3,000 characters
    or a Discord description past 4,096, and the platform would refuse the whole message:
    the card links the post instead, and the payload stays within what each documents."""
    item = make_notice(parent=PARENT)
    huge = f"{POST}?utm_source=" + "&a=b" * 1_250 + "#comment-5"
    item = replace(item, entry=replace(item.entry, link=huge))
    data = as_dict(send_one(webhook_receiver, kind, item).json)
    if kind == "slack":
        assert check_slack(data) == [f"*<{POST}|Read and reply>*"]
    elif kind == "discord":
        (embed,) = check_discord(data)
        assert embed["url"] == POST and embed["description"].endswith(
            f"[Read and reply]({POST})")
    elif kind == "mattermost":
        assert len(data["text"]) <= 16_383
        assert data["text"].endswith(f"[Read and reply]({POST})")
    else:
        card, _ = check_card(data)
        assert card["actions"][0]["url"] == POST


# --- every platform quotes the parent ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["slack", "mattermost", "discord", "teams", "matrix",
                                  "telegram", "ntfy"])
def test_every_platform_quotes_the_parent(webhook_receiver: WebhookReceiver,
                                          kind: str) -> None:
    if kind in ("matrix", "telegram"):
        webhook_receiver.script([OK_JSON])
    long_parent = replace(PARENT, content_html="<p>" + "a long parent comment " * 200
                          + "</p>")
    request = send_one(webhook_receiver, kind, make_notice(parent=long_parent))
    body = request.body.decode("utf-8")
    assert "East Side Boy" in body
    assert "a long parent comment a long parent comment" in body
    assert body.count("a long parent comment") < 20  # shortened, not the whole thread
    if kind == "telegram":
        assert "blockquote" in telegram_reading(as_dict(request.json)["text"]).tags


@pytest.mark.parametrize("kind", ["matrix", "telegram"])
def test_html_platforms_make_no_link_of_markdown(webhook_receiver: WebhookReceiver,
                                                 kind: str) -> None:
    webhook_receiver.script([OK_JSON])
    data = as_dict(send_one(webhook_receiver, kind, hostile_notice()).json)
    html = data["formatted_body"] if kind == "matrix" else data["text"]
    reading = _Html()
    reading.feed(html)
    assert set(reading.hrefs) == {LINK}
    assert HOSTILE in reading.text


# --- apprise ----------------------------------------------------------------------------------


def apprise_body(receiver: WebhookReceiver, *urls: str) -> dict[str, Any]:
    base = receiver.url.replace("http://", "json://", 1)
    return {"type": "apprise", "urls": list(urls) or [base]}


def test_apprise_delivers_through_json(webhook_receiver: WebhookReceiver) -> None:
    item = make_notice(parent=PARENT, html=f"<p>{HOSTILE}</p>")

    async def send(context: ChannelContext) -> None:
        await channel(context, apprise_body(webhook_receiver)).send(item)

    run(send)
    (request,) = webhook_receiver.wait_for(1)
    assert request.method == "POST" and request.path == "/hook"
    data = as_dict(request.json)
    assert data["title"] == 'Reply by Markup Tester to East Side Boy on "Why Defend Stalin?"'
    message = data["message"]
    assert message.startswith("East Side Boy wrote:\n> thanks for article")
    assert HOSTILE in message and message.endswith(LINK)


def test_apprise_keeps_a_strangers_markdown_text_on_a_markdown_service(
        webhook_receiver: WebhookReceiver) -> None:
    """`?format=markdown` makes the target read Markdown, as Discord, Telegram or Rocket.Chat
    do through Apprise: the comment arrives escaped (Apprise 2.0+ converts plain text to
    CommonMark literally), so it shows as typed and makes no link."""
    item = make_notice(parent=PARENT, html=f"<p>{HOSTILE}</p>")
    url = webhook_receiver.url.replace("http://", "json://", 1) + "/?format=markdown"

    async def send(context: ChannelContext) -> None:
        await channel(context, apprise_body(webhook_receiver, url)).send(item)

    run(send)
    (request,) = webhook_receiver.wait_for(1)
    message = as_dict(request.json)["message"]
    assert HOSTILE not in message  # escaped, not passed through
    html = commonmark(message)
    assert not {"a", "strong", "h1"} & set(html.tags), html.tags
    assert HOSTILE in html.text and EVIL in html.text


def test_apprise_failure_is_retried_and_names_no_secret(
        webhook_receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    webhook_receiver.script([(500, {}, b"")])
    secret_url = webhook_receiver.url.replace("http://", "json://user:s3cretpass@", 1)

    async def send(context: ChannelContext) -> str:
        ch = channel(context, apprise_body(webhook_receiver, secret_url))
        error = await failure_of(ch, make_notice())
        assert isinstance(error, TemporaryFailure)
        await ch.send(make_notice())  # the outbox's retry: the receiver now answers 204
        return str(error)

    message = run(send)
    assert "json" in message and "s3cretpass" not in message and "127.0.0.1" not in message
    assert "s3cretpass" not in caplog.text
    assert webhook_receiver.received[-1].status == 204


def test_apprise_config_checks(caplog: pytest.LogCaptureFixture) -> None:
    model = channel_config_type("apprise")
    with pytest.raises(ValidationError, match="URL 1 \\(nosuch://…\\) is not one Apprise"):
        model.model_validate({"type": "apprise", "urls": ["nosuch://pw@host"]})
    assert "pw@host" not in caplog.text  # Apprise would log a short URL whole
    with pytest.raises(ValidationError, match="urls"):
        model.model_validate({"type": "apprise", "urls": []})
    config = model.model_validate({"type": "apprise",
                                   "urls": ["pover://user@token", "json://localhost/x"]})
    assert AppriseChannel.summarize(config) == "apprise to 2 URLs (pover, json)"
    assert "token" not in repr(config)


def test_apprise_without_the_library_says_how_to_install_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "apprise", None)  # `import apprise` now fails
    with pytest.raises(ValidationError, match=r"pip install 'notifier\[apprise\]'"):
        channel_config_type("apprise").model_validate(
            {"type": "apprise", "urls": ["json://localhost/"]})


def test_apprise_delivers_through_the_outbox(tmp_path: Path,
                                            webhook_receiver: WebhookReceiver) -> None:
    """Queued by a poll, refused once, retried on the outbox's ladder, sent exactly once."""
    path = write_config(tmp_path, {"hook": {
        **apprise_body(webhook_receiver), "retry": {"first": "10s", "factor": 6,
                                                   "max": "1h"}}})
    queue(path, range(1, 2), NOON)
    webhook_receiver.script([(503, {}, b"down")])
    seen = deliver_at(path, Clock(NOON), 0, 5, 30, 0,
                      observe=lambda: stats(path))
    assert seen[0] == (1, 0, 0, 0) and seen[1] == (1, 0, 0, 0)
    assert seen[2] == seen[3] == (0, 0, 1, 0)
    statuses = [r.status for r in webhook_receiver.received]
    assert statuses[0] == 503 and statuses[-1] == 204 and statuses.count(204) == 1
    message = as_dict(webhook_receiver.received[-1].json)["message"]
    assert "Comment number 1." in message and message.endswith(f"{POST}#comment-1")
