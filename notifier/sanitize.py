"""Make a feed's HTML safe to put in front of a reader.

Feed content is written by strangers and served by sites we do not control; feedparser's own
sanitiser lets `javascript:` in attributes, `data:` URLs and forms through, so everything is
cleaned again here, at render time, with an allowlist (nh3, i.e. ammonia). What survives is
the small set of text markup a comment needs. Images are dropped because in an email they
are tracking pixels; links are made absolute (a relative link in a mail is dead) and marked
`nofollow noopener noreferrer`.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

import nh3

MAX_HTML_CHARS = 256 * 1024
"""Longer input is cut before cleaning: no real comment is that long, and the sanitiser's
cost grows with the input, so a hostile feed must not be able to make it arbitrarily large."""

ALLOWED_TAGS = frozenset({
    "p", "br", "blockquote", "q", "cite", "b", "strong", "i", "em", "u", "s",
    "code", "pre", "ul", "ol", "li", "a",
})
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "nofollow noopener noreferrer"

# Dropped together with their content: what is inside them is code or widgets, never text
# a reader wrote (e.g. `alert(1)` must not survive as prose).
DROPPED_WITH_CONTENT = frozenset({
    "script", "style", "iframe", "noscript", "template", "object", "embed", "applet",
    "frame", "frameset", "noembed", "noframes", "textarea", "select", "svg", "math",
    "title", "xmp",
})


def sanitize_html(html: str, base_url: str) -> str:
    """Clean untrusted HTML; relative links resolve against `base_url` (the entry's page).

    When `base_url` is not an absolute http(s) URL, relative links are dropped rather than
    left pointing nowhere.
    """
    if not html:
        return ""
    if len(html) > MAX_HTML_CHARS:
        html = html[:MAX_HTML_CHARS]
    relative: Literal["deny"] | tuple[Literal["rewrite_with_base"], str] = "deny"
    if _is_absolute_http(base_url):
        relative = ("rewrite_with_base", base_url)
    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel=LINK_REL,
        strip_comments=True,
        url_relative=relative,
    )


def _is_absolute_http(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
