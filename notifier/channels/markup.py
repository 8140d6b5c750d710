"""HTML for the chat platforms that take it (Matrix, Telegram).

Each platform accepts a small tag set and refuses or mangles anything else, and each has a
size limit that a cut in the middle of a tag or an entity would turn into a rejected
message. So the rendered template is cleaned to the platform's tag set (nh3, as the comment
itself was), mentions are defused in text only (never inside a link's address), and when the
message is too long it is cut between tokens or inside a text, every open tag is closed, and
"…" and the entry's link follow.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from html import escape
from html.parser import HTMLParser

import nh3

from notifier.channels.httpsend import ELLIPSIS, longest_prefix
from notifier.sanitize import DROPPED_WITH_CONTENT

VOID_TAGS = frozenset({"br", "hr", "img"})
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_PARAGRAPH_END = re.compile(r"</(p|div|h[1-6]|ul|ol)\s*>", re.IGNORECASE)
_LIST_ITEM = re.compile(r"<li(\s[^>]*)?>", re.IGNORECASE)
_BLANK_LINES = re.compile(r"\n[ \t]*(\n[ \t]*)+\n")


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "start", "end" or "text"
    tag: str = ""
    raw: str = ""  # a start tag as nh3 wrote it (attributes quoted and escaped)
    text: str = ""  # unescaped


class _Tokens(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tokens: list[_Token] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tokens.append(_Token("start", tag, self.get_starttag_text() or f"<{tag}>"))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tokens.append(_Token("start", tag, self.get_starttag_text() or f"<{tag}>"))

    def handle_endtag(self, tag: str) -> None:
        if tag not in VOID_TAGS:
            self.tokens.append(_Token("end", tag))

    def handle_data(self, data: str) -> None:
        self.tokens.append(_Token("text", text=data))


def clean(html: str, tags: Collection[str],
          attributes: Mapping[str, Collection[str]] | None = None) -> str:
    """Only `tags` (and, on them, `attributes`) survive; links only to http(s) and mailto."""
    return nh3.clean(html, tags=set(tags),
                     clean_content_tags=set(DROPPED_WITH_CONTENT) - set(tags),
                     attributes={tag: set(attrs) for tag, attrs in (attributes or {}).items()},
                     url_schemes={"http", "https", "mailto"}, link_rel=None,
                     strip_comments=True)


def blocks_to_lines(html: str) -> str:
    """For platforms without `<p>` and `<br>` (Telegram), whose text keeps its line breaks:
    paragraphs become blank lines and list items lines of their own before the tags go."""
    html = _BR.sub("\n", html)
    html = _PARAGRAPH_END.sub(lambda m: m.group(0) + "\n\n", html)
    html = _LIST_ITEM.sub(lambda m: "\n• " + m.group(0), html)
    return _BLANK_LINES.sub("\n\n", html).strip()


def shape(html: str, limit: int, *, measure: Callable[[str], int], markup_counts: bool,
          tail: str = "", text_filter: Callable[[str], str] | None = None) -> str:
    """Clean HTML, its texts passed through `text_filter`, fitted to `limit`.

    `markup_counts`: the limit applies to the HTML as written (Matrix's event size), else
    to its text alone (Telegram counts after parsing the tags). `tail`, when the HTML must be
    cut, goes after the "…": the link, so a cut message still leads to the comment.
    """
    tokens = _parse(html)
    if text_filter is not None:
        tokens = [_Token("text", text=text_filter(t.text)) if t.kind == "text" else t
                  for t in tokens]

    def size(token: _Token) -> int:
        if token.kind == "text":
            return measure(escape(token.text, quote=False) if markup_counts else token.text)
        if not markup_counts:
            return 0
        return measure(token.raw if token.kind == "start" else f"</{token.tag}>")

    if sum(size(t) for t in tokens) <= limit:
        return _serialise(tokens)
    tail_size = sum(size(t) for t in _parse(tail))
    room = limit - tail_size - measure(ELLIPSIS)
    kept: list[_Token] = []
    open_tags: list[str] = []
    used = 0
    for token in tokens:
        closers = sum(size(_Token("end", tag)) for tag in open_tags)
        if token.kind == "end":
            if open_tags and open_tags[-1] == token.tag:
                open_tags.pop()
                kept.append(token)
                used += size(token)
            continue
        cost = size(token)
        if token.kind == "start":
            closing = 0 if token.tag in VOID_TAGS else size(_Token("end", token.tag))
            if used + cost + closing + closers > room:
                break
            kept.append(token)
            used += cost
            if token.tag not in VOID_TAGS:
                open_tags.append(token.tag)
            continue
        if used + cost + closers <= room:
            kept.append(token)
            used += cost
            continue
        left = room - used - closers
        prefix = longest_prefix(token.text, left, lambda s: size(_Token("text", text=s)))
        kept.append(_Token("text", text=prefix.rstrip()))
        break
    closing_tokens = [_Token("end", tag) for tag in reversed(open_tags)]
    return (_serialise(kept).rstrip() + ELLIPSIS + _serialise(closing_tokens) + tail)


def link_html(link: str, before: str = "\n") -> str:
    """`before` + an `<a>` showing the address itself."""
    return f'{before}<a href="{escape(link)}">{escape(link, quote=False)}</a>' if link else ""


def _parse(html: str) -> list[_Token]:
    parser = _Tokens()
    parser.feed(html)
    parser.close()
    return parser.tokens


def _serialise(tokens: list[_Token]) -> str:
    out: list[str] = []
    for token in tokens:
        if token.kind == "start":
            out.append(token.raw)
        elif token.kind == "end":
            out.append(f"</{token.tag}>")
        else:
            out.append(escape(token.text, quote=False))
    return "".join(out)
