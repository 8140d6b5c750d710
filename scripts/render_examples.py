#!/usr/bin/env python3
"""Draw the README's pictures: an email and a Slack message, as notifier writes them.

    .venv/bin/python scripts/render_examples.py [--out docs/images] [--chromium PATH]

One made-up reply goes through the packaged templates exactly as the daemon renders it:
the email's HTML part is shown as is; the Slack message is the Block Kit payload the
`slack` format sends, drawn by a small Slack-like HTML mock-up (Slack itself cannot be run
here). Both pages are photographed by headless Chromium (`apt-get install chromium`), in
a fresh profile that makes no network requests, and written as PNGs; the HTML files are
kept beside them so a change in a template shows up in review as a diff.
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from notifier.channels.chatmessage import chat_message  # noqa: E402
from notifier.channels.slack import slack_body  # noqa: E402
from notifier.models import Entry, Notice  # noqa: E402
from notifier.render import Renderer  # noqa: E402

POST = "https://journal.example.org/2024/03/02/on-reading-old-letters/"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--hide-scrollbars",
                  "--force-device-scale-factor=1"]


def example() -> Notice:
    """A reply to the reader's own comment, with a quote and a link inside it."""
    parent = Entry(
        key=f"{POST}#comment-41", kind="comment", author="Ann Example",
        link=f"{POST}#comment-41", post_key=POST, post_link=POST,
        post_title="On reading old letters",
        content_html="<p>I kept my grandmother's letters for years before I dared to open "
                     "them. Did you find it hard to read yours?</p>")
    entry = Entry(
        key=f"{POST}#comment-42", kind="comment", author="Ben Writer",
        link=f"{POST}#comment-42", post_key=POST, post_link=POST,
        post_title="On reading old letters",
        published=datetime(2024, 3, 4, 9, 15, tzinfo=UTC), parent_key=parent.key,
        content_html=(
            "<p>Ann, very hard at first. What helped was something my aunt said:</p>"
            "<blockquote><p>Read them as letters to a friend, not as a record.</p></blockquote>"
            "<p>I wrote more about it in <a href=\"https://journal.example.org/letters/\">the "
            "follow-up post</a>. And **this** stays text: "
            "[https://bank.example/](http://evil.example/)</p>"))
    return Notice(notification_id="n" + "0" * 31, subscription="My comments",
                  channel="inbox", entry=entry, feed_title="Comments on: On reading old letters",
                  feed_url=POST + "feed/", is_reply=True, parent=parent)


def email_html(renderer: Renderer, notice: Notice) -> str:
    return renderer.render("email", "html", notice, {})


def slack_html(renderer: Renderer, notice: Notice) -> str:
    text = renderer.render("webhook", "text", notice, {}).strip()
    payload = slack_body(chat_message(text, renderer.context(notice, "webhook")))
    rows = "\n".join(_block(block) for block in payload["blocks"])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Slack message (mock-up)</title>
<style>
body {{ margin:0; background:#fff; font:15px/1.46668 -apple-system,"Segoe UI",Roboto,
       Helvetica,Arial,sans-serif; color:#1d1c1d; }}
.msg {{ display:flex; gap:8px; padding:16px 20px; }}
.avatar {{ width:36px; height:36px; border-radius:4px; background:#2563eb; color:#fff;
          font-weight:700; display:flex; align-items:center; justify-content:center; }}
.name {{ font-weight:900; }} .app {{ font-size:10px; background:#ddd; color:#555;
        padding:1px 3px; border-radius:2px; margin-left:4px; vertical-align:2px; }}
.time {{ color:#616061; font-size:12px; margin-left:6px; }}
.header {{ font-size:18px; font-weight:900; margin:6px 0 4px; }}
.context {{ color:#616061; font-size:13px; margin:4px 0; }}
.quote {{ border-left:4px solid #ddd; padding:0 0 0 12px; margin:8px 0; white-space:pre-wrap; }}
.section {{ margin:8px 0; }} a {{ color:#1264a3; text-decoration:none; }}
</style></head><body>
<div class="msg"><div class="avatar">n</div><div>
<div><span class="name">notifier</span><span class="app">APP</span>
<span class="time">9:16 AM</span></div>
{rows}
</div></div></body></html>
"""


def _block(block: dict[str, Any]) -> str:
    kind = block["type"]
    if kind == "header":
        return f'<div class="header">{html.escape(block["text"]["text"])}</div>'
    if kind == "context":
        return '<div class="context">' + " ".join(
            _text(element) for element in block["elements"]) + "</div>"
    if kind == "section":
        return f'<div class="section">{_text(block["text"])}</div>'
    if kind == "rich_text":
        parts = []
        for element in block["elements"]:
            inner = "".join(html.escape(item.get("text", "")) for item in element["elements"])
            css = "quote" if element["type"] == "rich_text_quote" else "section"
            parts.append(f'<div class="{css}">{inner}</div>')
        return "".join(parts)
    return ""


def _text(obj: dict[str, Any]) -> str:
    """plain_text as is; the mrkdwn we write (`*<url|label>*`) as Slack shows it."""
    if obj["type"] == "plain_text":
        return html.escape(obj["text"])
    text = obj["text"]  # already escaped the Slack way: & < > as entities
    text = re.sub(r"<([^|>]+)\|([^>]+)>", r'<a href="\1">\2</a>', text)
    return re.sub(r"\*([^*]+)\*", r"<b>\1</b>", text)


def shoot(chromium: str, page: Path, png: Path, width: int, height: int) -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                        f"--window-size={width},{height}", f"--screenshot={png}",
                        page.as_uri()], check=True, timeout=120,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--chromium", default=shutil.which("chromium")
                        or shutil.which("chromium-browser") or "chromium")
    args = parser.parse_args(argv)
    renderer = Renderer(ROOT)
    notice = example()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, page, size in (("email", email_html(renderer, notice), (760, 580)),
                             ("slack", slack_html(renderer, notice), (760, 320))):
        source = args.out / f"{name}.html"
        source.write_text(page, encoding="utf-8")
        png = args.out / f"{name}.png"
        shoot(args.chromium, source, png, *size)
        print(f"{png.relative_to(ROOT) if png.is_relative_to(ROOT) else png}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
