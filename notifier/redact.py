"""Keep secrets out of logs, errors and `status`: the one place that decides what is shown.

    any URL notifier fetches or stores (feed, API root, database) -> url()
        -> scheme, user, host, port, path, query with secret-looking values hidden
    a delivery URL (webhook, chat API) -> destination() -> scheme and host only
    a receiver's answer, an error text -> text(secrets) -> every known secret cut out

Why one module: the same URL was shown four ways (the fetcher dropped the query, the poll
log kept a password, the store hid it, config errors showed the host), so whether a token
leaked depended on which module wrote the line. Webhook URLs carry tokens in their path
(Slack, Discord, Telegram), feed URLs sometimes in their query or user info, database URLs
a password; each line must still say which destination, feed or database it is about.
Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote_plus, urlsplit, urlunsplit

__all__ = ["HIDDEN", "destination", "destinations_in", "secret_name", "short", "text", "url",
           "urls_in"]

HIDDEN = "…"
"""What stands where a secret was."""
_SECRET_PARAM = re.compile(r"(token|key|secret|pass|auth|sig|session|code)", re.IGNORECASE)
_SHOWN_INVALID = 40
"""Characters of something that is not a URL shown in a config error, to be recognised."""
_SECRET_PART = 8
"""Path segments and query values of a secret URL this long are secrets too."""


def url(value: str) -> str:
    """A fetched or stored URL, safe for a log line: no password, no secret query value.

    The user name stays (it tells which account), the password becomes "…", and so does
    the value of every query parameter whose name looks secret (`token`, `key`, `sig`...);
    the fragment is dropped (`#access_token=` is a fragment).
    """
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if parts.username is not None or parts.password is not None:
        host = f"[{host}]" if ":" in host else host
        user = parts.username or ""
        login = f"{user}:{HIDDEN}" if parts.password is not None else user
        netloc = f"{login}@{host}" + (f":{port}" if port is not None else "")
    query = parts.query
    if query:
        query = "&".join(
            f"{quote_plus(k)}={HIDDEN if secret_name(k) else quote_plus(v, safe='/:')}"
            for k, v in parse_qsl(query, keep_blank_values=True))
    shown = urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    if not netloc and value.startswith(f"{parts.scheme}://"):
        shown = f"{parts.scheme}://{shown.removeprefix(f'{parts.scheme}:')}"  # sqlite:///path
    return shown


def secret_name(name: str) -> bool:
    """Whether a query parameter or header of this name carries a secret (`token`, `key`,
    `Authorization`...): its value is hidden wherever it could be shown."""
    return _SECRET_PARAM.search(name) is not None


def destination(value: str) -> str:
    """Only scheme and host of a delivery URL: its path is often the secret itself.

    Something that is not a URL at all (a config mistake) is shown short, so the person
    recognises what they wrote.
    """
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        host = None
        parts = None
    if parts is not None and parts.scheme and host:
        return f"{parts.scheme}://{host}/{HIDDEN}"
    if len(value) < _SHOWN_INVALID:
        return value
    return value[: _SHOWN_INVALID - 3] + HIDDEN


def text(value: str, secrets: Iterable[str]) -> str:
    """`value` without any secret, nor any long path segment or query value of a secret URL:
    a receiver that echoes the request must not put the token into our log."""
    words: list[str] = []
    for secret in secrets:
        if not secret:
            continue
        words.append(secret)
        if "://" in secret:  # a Workflows URL's `sig=` is as secret as a Slack path
            path, _, query = secret.split("://", 1)[1].partition("/")[2].partition("?")
            parts = path.split("/") + [v for p in query.split("&") for v in p.split("=")[1:]]
            words += [part for part in parts if len(part) >= _SECRET_PART]
    for word in sorted(words, key=len, reverse=True):
        value = value.replace(word, HIDDEN)
    return value


SHOWN_MAX = 200
"""Characters of one configured value `check` and `status` print; the rest is elided."""
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,15}://[^\s\"'<>]*[^\s\"'<>:,.;)]")
"""A URL in a sentence: it does not end with the punctuation after it."""


def short(value: str, limit: int = SHOWN_MAX) -> str:
    """`value`, or its start and its length when longer than `limit`."""
    if len(value) <= limit:
        return value
    return f"{value[:limit]}{HIDDEN} ({len(value):,} characters)"


def urls_in(message: str) -> str:
    """A message with every URL in it shown as `url` shows it (errors quote URLs)."""
    return _URL_IN_TEXT.sub(lambda m: url(m[0]), message)


def destinations_in(message: str) -> str:
    """A message with every URL in it shown as `destination` shows it (a library's log line,
    which may name a webhook's or a chat API's URL, token and all)."""
    return _URL_IN_TEXT.sub(lambda m: destination(m[0]), message)
