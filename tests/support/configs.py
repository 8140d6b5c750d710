"""Configuration snippets for the local test servers, so a test's YAML shows only what it
is about.

A channel to the test SMTP server speaks clear text (loopback, `security: none`); a chat
webhook's URL ends in a Slack-shaped secret path, which tests check never reaches a log.
"""

from __future__ import annotations

from tests.support.smtp_server import SmtpServer
from tests.support.webhook_receiver import WebhookReceiver

SECRET_PATH = "/services/T000/B000/secret-token"
"""The token part of the chat webhooks' URLs: it must appear in no output."""


def email_channel(name: str, smtp: SmtpServer) -> str:
    """A `channels:` entry (two-space indent) sending to `smtp` from and to example.org."""
    return (f"  {name}:\n"
            "    type: email\n"
            '    from: "Thread notifier <notifier@example.org>"\n'
            "    to: [reader@example.org]\n"
            f"    smtp: {{host: 127.0.0.1, port: {smtp.port}, security: none}}\n")


def chat_channel(name: str, hook: WebhookReceiver, fmt: str) -> str:
    """A `channels:` entry posting chat format `fmt` to `hook` under SECRET_PATH."""
    return (f"  {name}:\n"
            "    type: webhook\n"
            f'    url: "{hook.url}{SECRET_PATH}"\n'
            f"    format: {fmt}\n")
