"""Plain text from untrusted HTML, for e-mail bodies, chat previews and excerpts.

Comment HTML comes from strangers, so this never runs a regular expression over the markup:
the stdlib tokenizer does the reading and every handler does constant work per token, so the
cost grows with the input's length and nothing else. The output is meant for people, not for
re-parsing: blocks become lines, quotes keep a "> " margin the way mail clients show them, and
links keep their address so a reader of the text can still follow them.
"""

from __future__ import annotations

import contextlib
from html.parser import HTMLParser
from urllib.parse import urlsplit

__all__ = ["MAX_INPUT_CHARS", "excerpt", "html_to_text"]

# Longer input is cut before parsing, and longer output is cut too: a comment or post that long
# is hostile or broken, and neither time nor memory may grow without bound.
MAX_INPUT_CHARS = 2 * 1024 * 1024

# An unparsed tail shorter than this is left to HTMLParser.close(), whose cost is its square.
_TAIL_LIMIT = 4096
# Nesting deeper than this is hostile: quote margins and list indents stop growing, and the
# stack of skipped elements stops recording, so no line or lookup grows with the input.
_MAX_DEPTH = 16
_MAX_SKIP_STACK = 256

ELLIPSIS = "…"

# Content a reader never sees in a browser either. <template> is inert, <title>/<head> only
# appear when someone pasted a whole document.
_SKIPPED = frozenset({"script", "style", "template", "head", "title", "svg", "iframe", "object"})
# Blocks separated from their neighbours by a blank line.
_PARAGRAPHS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "table", "ul", "ol", "dl", "figure", "hr"}
)
# Blocks that only start a new line.
_LINES = frozenset(
    {
        "div", "section", "article", "header", "footer", "aside", "nav", "main", "address",
        "tr", "dt", "dd", "figcaption", "caption", "details", "summary", "center", "form",
    }
)  # fmt: skip
_VOID = frozenset({"br", "img", "hr", "wbr", "input", "meta", "link", "source", "col", "area"})
_LINK_SCHEMES = frozenset({"http", "https", "mailto", "ftp"})


class _Full(Exception):
    """Raised inside the tokenizer to stop it once enough text has been collected."""


class _TextWriter(HTMLParser):
    """Collects lines; each carries the quote depth and list marker in force when it began."""

    def __init__(self, limit: int) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[tuple[int, str]] = []  # (quote depth, text); text "" = blank line
        self._parts: list[str] = []
        self._marker = ""  # "- " (indented) waiting for the next non-empty line
        self._want_blank = False
        self._quote = 0
        self._lists = 0
        self._pre = 0
        self._skip: list[str] = []
        self._links: list[tuple[str, int, int]] = []  # open <a>: (href, line no, first part)
        self._line_no = 0
        self._size = 0
        self._limit = limit

    # -- tokenizer callbacks -------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            if len(self._skip) < _MAX_SKIP_STACK:
                self._skip.append(tag)
            return
        if self._skip:
            return
        if tag == "br":
            self._line_break(hard=True)
        elif tag == "blockquote":
            self._paragraph()
            self._quote += 1
        elif tag in ("ul", "ol"):
            if self._lists:
                self._line_break()
            else:
                self._paragraph()
            self._lists += 1
        elif tag == "li":
            self._line_break()
            self._marker = "  " * min(max(self._lists - 1, 0), _MAX_DEPTH) + "- "
        elif tag in _PARAGRAPHS:
            self._paragraph()
            if tag == "pre":
                self._pre += 1
        elif tag in _LINES:
            self._line_break()
        elif tag in ("td", "th"):
            self._add(" ")
        elif tag == "a":
            href = (_attr(attrs, "href") or "").strip()
            self._links.append((href, self._line_no, len(self._parts)))
        elif tag == "img":
            # WordPress serves emoji as <img alt="🙂">: the alt text is the content.
            self._add(_attr(attrs, "alt") or "")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # "<p/>" opens and closes at once; "<br/>" and "<img/>" never open anything.
        if tag in _SKIPPED or tag == "a":
            return
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._skip:
            if tag in self._skip:  # a stray close of an outer element ends the inner ones too
                del self._skip[self._skip.index(tag) :]
            return
        if tag == "blockquote":
            self._line_break()
            self._quote = max(self._quote - 1, 0)
            self._want_blank = True
        elif tag in ("ul", "ol"):
            self._line_break()
            self._lists = max(self._lists - 1, 0)
            if self._lists == 0:
                self._want_blank = True
        elif tag == "li":
            self._line_break()
        elif tag in _PARAGRAPHS:
            self._line_break()
            self._want_blank = True
            if tag == "pre":
                self._pre = max(self._pre - 1, 0)
        elif tag in _LINES:
            self._line_break()
        elif tag == "a" and self._links:
            self._close_link()

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if not self._pre:
            self._add(data)
            return
        first, *rest = data.split("\n")
        self._add(first)
        for line in rest:
            self._line_break(hard=True)
            self._add(line)

    # -- line assembly ---------------------------------------------------------------------

    def _add(self, text: str) -> None:
        if not text:
            return
        self._parts.append(text)
        # Count what will survive whitespace collapsing, so padding cannot starve the output.
        self._grow(len(text) if self._pre else len(" ".join(text.split())) + 1)

    def _grow(self, size: int) -> None:
        self._size += size
        if self._size > self._limit:
            raise _Full

    def _close_link(self) -> None:
        href, line_no, start = self._links.pop()
        if not _showable(href):
            return
        # A link spanning lines is compared by its last line only: the address is then shown.
        # Text much longer than the address cannot be the address: stop reading it early.
        if line_no != self._line_no:
            start = 0
        pieces: list[str] = []
        size = 0
        for index in range(start, len(self._parts)):
            pieces.append(self._parts[index])
            size += len(pieces[-1])
            if size > len(href) + 32:
                break
        text = " ".join("".join(pieces).split())
        if _same_address(text, href):
            return
        self._add(f" <{href}>" if text else f"<{href}>")

    def _line_break(self, *, hard: bool = False) -> None:
        """End the current line; a hard break (<br>) on an empty line asks for a blank one."""
        raw = "".join(self._parts)
        self._parts.clear()
        self._line_no += 1  # open links now start at the next line's first part
        text = raw.rstrip() if self._pre else " ".join(raw.split())
        if not text.strip():
            if hard and self.lines:
                self._want_blank = True
            return
        if self._want_blank and self.lines:
            depth = min(self.lines[-1][0], self._quote)
            if self.lines[-1][1]:
                self.lines.append((depth, ""))
        self._want_blank = False
        self.lines.append((self._quote, self._marker + text))
        self._grow(len(self._marker) + 2 * min(self._quote, _MAX_DEPTH) + 1)  # margins count
        self._marker = ""

    def _paragraph(self) -> None:
        self._line_break()
        self._want_blank = True

    def finish(self) -> str:
        with contextlib.suppress(_Full):  # the line is kept; the limit only stops reading
            self._line_break()
        out: list[str] = []
        previous_blank = True  # also drops blank lines at the very start
        for depth, text in self.lines:
            if not text and previous_blank:
                continue  # never two blank lines in a row
            previous_blank = not text
            out.append(("> " * min(depth, _MAX_DEPTH) + text).rstrip())
        return "\n".join(out).strip()


def _attr(attrs: list[tuple[str, str | None]], name: str) -> str | None:
    for key, value in attrs:
        if key == name:
            return value
    return None


def _showable(href: str) -> bool:
    """Only addresses a reader can use: no javascript:, data: or page-relative fragments."""
    try:
        scheme = urlsplit(href).scheme.lower()
    except ValueError:
        return False
    return scheme in _LINK_SCHEMES


def _same_address(text: str, href: str) -> bool:
    """Autolinked URLs ("http://x.test/" shown as "x.test") need not be printed twice."""

    def bare(value: str) -> str:
        value = value.strip().lower()
        for prefix in ("mailto:", "https://", "http://", "www."):
            value = value.removeprefix(prefix)
        return value.rstrip("/")

    return bool(text) and bare(text) == bare(href)


def html_to_text(html: str, *, max_chars: int | None = None) -> str:
    """Readable plain text of `html`; with `max_chars`, at most that long and cut at a word.

    Work stops as soon as enough text is collected, so asking for a short preview of a huge
    document costs little.
    """
    if not html:
        return ""
    limit = (
        MAX_INPUT_CHARS if max_chars is None else min(max(max_chars, 0) * 2 + 64, MAX_INPUT_CHARS)
    )
    writer = _TextWriter(limit)
    full = False
    try:
        writer.feed(html[:MAX_INPUT_CHARS])
        tail = writer.rawdata
        if len(tail) > _TAIL_LIMIT and tail.startswith("<"):
            # feed() stops at a tag, comment or declaration that never ends and keeps the rest.
            # A browser swallows such a construct up to the end of the document; close() would
            # instead rescan the rest once per "<" in it (quadratic before Python 3.11.13).
            writer.rawdata = ""
        writer.close()
    except _Full:
        full = True
    text = writer.finish()
    if max_chars is not None:
        return excerpt(text, max_chars)
    return excerpt(text, len(text) - 1) if full else text  # say that something was cut


def excerpt(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, at a word boundary, ending in "…" when cut.

    A single word longer than the room left is cut mid-word: an excerpt that is empty because
    someone pasted a long URL would be worse.
    """
    if limit <= 0:
        return ""
    if len(text) <= limit:
        return text
    room = limit - len(ELLIPSIS)
    if room <= 0:
        return ELLIPSIS[:limit]
    cut = text[: room + 1]
    space = max(cut.rfind(" "), cut.rfind("\n"))
    head = cut[:space] if space > 0 and space >= room // 3 else text[:room]
    return head.rstrip(" \n\t,;:-–—") + ELLIPSIS
