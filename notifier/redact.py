"""Keep secrets out of logs, errors and `status`.

Webhook URLs carry tokens in their path (Slack, Discord, Telegram), feed URLs sometimes in
their query; a log line must still say which destination or feed it is about.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote_plus, urlsplit, urlunsplit

_SECRET_PARAM = re.compile(r"(token|key|secret|pass|auth|sig|session|code)", re.IGNORECASE)


_TOKEN_LIKE = re.compile(r"\A(?=.*[A-Za-z])(?=.*\d)[A-Za-z0-9_\-.~+/=]{20,}\Z")
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,15}://[^\s\"'<>]*[^\s\"'<>:,.;)]")
"""A URL in a sentence: it does not end with the punctuation after it."""


def feed_url(url: str) -> str:
    """A feed URL without its userinfo, and with secret-looking query values hidden.

    Hidden: values of parameters whose name looks secret (`apikey`, `token`, ...) and
    values that look like a token whatever their name (20+ characters, letters and digits).
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "(invalid URL)"
    if "@" in parts.netloc:
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        parts = parts._replace(netloc=f"…@{host}" + (f":{port}" if port is not None else ""))
    if not parts.query:
        return urlunsplit(parts)
    query = "&".join(
        f"{quote_plus(k, safe='/:')}="
        + ("…" if _SECRET_PARAM.search(k) or _TOKEN_LIKE.match(v) else quote_plus(v, safe="/:"))
        for k, v in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit(parts._replace(query=query))


SHOWN_MAX = 200
"""Characters of one configured value `check` and `status` print; the rest is elided."""


def short(value: str, limit: int = SHOWN_MAX) -> str:
    """`value`, or its start and its length when longer than `limit`."""
    if len(value) <= limit:
        return value
    return f"{value[:limit]}… ({len(value):,} characters)"


def text(message: str) -> str:
    """A message with every URL in it redacted as `feed_url` does (errors quote URLs)."""
    return _URL_IN_TEXT.sub(lambda m: feed_url(m[0]), message)


def destination(url: str) -> str:
    """Only scheme and host of a delivery URL: its path is often the secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}/…" if parts.hostname else "(invalid URL)"
