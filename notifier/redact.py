"""Keep secrets out of logs, errors and `status`.

Webhook URLs carry tokens in their path (Slack, Discord, Telegram), feed URLs sometimes in
their query; a log line must still say which destination or feed it is about.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_SECRET_PARAM = re.compile(r"(token|key|secret|pass|auth|sig|session|code)", re.IGNORECASE)


def feed_url(url: str) -> str:
    """A feed URL with the values of secret-looking query parameters hidden."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [(k, "…" if _SECRET_PARAM.search(k) else v)
             for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="…/:")))


def destination(url: str) -> str:
    """Only scheme and host of a delivery URL: its path is often the secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}/…" if parts.hostname else "(invalid URL)"
