"""HTTP header values read once, here: `Retry-After` and `Link`, for feeds and channels alike.

    "120" | "Wed, 21 Oct 2015 07:28:30 GMT" -> parse_retry_after -> seconds (capped) | None
    '<url>; rel="next", <url2>; rel=shortlink' -> parse_link_header -> [(url, params)]

Why one module: the fetcher (a feed's 429/503), every HTTP channel (a webhook's 429) and
the platform adapters (WordPress's `Link` headers) read the same headers; two parsers of
one header drift apart (one took "1.5", the other not; one capped, the other not).
Pure functions, no I/O.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import urljoin

from notifier.limits import MAX_RETRY_AFTER

__all__ = ["parse_link_header", "parse_retry_after"]

_DELAY_SECONDS = re.compile(r"\A\d{1,12}(?:\.\d{1,6})?\Z")


def parse_retry_after(value: str, now: datetime | float) -> float | None:
    """Seconds to wait from a Retry-After value (delay-seconds or HTTP-date), capped at a day.

    RFC 9110 says whole seconds; some servers send a fraction ("1.5"), which is honoured too.
    A date in the past means "now" (0). Garbage (words, negative numbers, exponents) gives
    None, so the caller's own backoff applies. `now` is a datetime or a Unix timestamp.
    """
    text = value.strip()
    if not text:
        return None
    if text.isascii() and _DELAY_SECONDS.match(text):
        return min(float(text), MAX_RETRY_AFTER)
    # Here, not at import: a parse worker reads Link headers through this module, and
    # email.utils (with socket and random) was some 5 ms of its 75 ms start.
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if isinstance(now, datetime):
        moment = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    else:
        moment = datetime.fromtimestamp(now, UTC)
    seconds = (when - moment).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def parse_link_header(value: str, base_url: str = "") -> list[tuple[str, dict[str, str]]]:
    """RFC 8288 `Link` values as (absolute URL, params with lower-case names), in order.

    Written as a single left-to-right scan because commas and semicolons may sit inside the
    `<URL>` and inside quoted parameter values, so splitting on "," is wrong. The first
    occurrence of a parameter wins, as RFC 8288 says for `rel`. Malformed members are skipped.
    """
    links: list[tuple[str, dict[str, str]]] = []
    i, n = 0, len(value)
    while i < n:
        start = value.find("<", i)
        if start < 0:
            break
        end = value.find(">", start + 1)
        if end < 0:
            break
        target = value[start + 1 : end].strip()
        params: dict[str, str] = {}
        i = end + 1
        while i < n:
            while i < n and value[i] in " \t":
                i += 1
            if i >= n or value[i] == ",":
                i += 1
                break
            if value[i] != ";":
                # Junk after the URL: skip to the next member.
                comma = value.find(",", i)
                i = n if comma < 0 else comma + 1
                break
            i += 1
            while i < n and value[i] in " \t":
                i += 1
            name_start = i
            while i < n and value[i] not in "=;, \t":
                i += 1
            name = value[name_start:i].lower()
            while i < n and value[i] in " \t":
                i += 1
            param_value = ""
            if i < n and value[i] == "=":
                i += 1
                while i < n and value[i] in " \t":
                    i += 1
                if i < n and value[i] == '"':
                    i += 1
                    chars: list[str] = []
                    while i < n and value[i] != '"':
                        if value[i] == "\\" and i + 1 < n:
                            i += 1
                        chars.append(value[i])
                        i += 1
                    i += 1  # closing quote
                    param_value = "".join(chars)
                else:
                    token_start = i
                    while i < n and value[i] not in ";,":
                        i += 1
                    param_value = value[token_start:i].strip()
            if name and name not in params:
                params[name] = param_value
        try:
            url = urljoin(base_url, target) if base_url else target
        except ValueError:
            continue  # e.g. a broken IPv6 literal: skip the member, keep the others
        links.append((url, params))
    return links
