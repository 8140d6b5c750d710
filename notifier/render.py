"""Turn a `Notice` into the text a channel sends, through Jinja2 templates.

Every channel kind ships default templates, `notifier/templates/<kind>/<slot>.j2`. A user
overrides one with a file named in the configuration, either on the channel (`templates:` of
a channel) or on the subscription, and the subscription's wins: it is the more specific
choice. Each template is compiled once and cached for the life of the renderer, and the
compiled code is kept on disk for the next process (`notifier.jinjaenv.TemplateCache`).

Feed text is untrusted. HTML slots are autoescaped and get the comment as HTML that has been
through `sanitize_html`; plain text slots are not escaped (there is nothing to escape in a
mail body), and one-line slots such as an email subject have every line break and run of
whitespace collapsed after rendering, so no feed text can start a new header line. Chat
formats escape their own syntax in Python after rendering, never in the template, so a user's
template cannot forget it.

Jinja2 itself, and `RenderError` (a Jinja2 `TemplateError` too), are in `notifier.jinjaenv`,
imported at the first template a renderer needs: a run that renders nothing never loads it.
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from markupsafe import Markup, escape

from notifier.htmltext import excerpt, html_to_text
from notifier.models import FLOOD_ID_PREFIX, Entry, Notice
from notifier.sanitize import sanitize_html
from notifier.textsafety import strip_bidi_controls

if TYPE_CHECKING:
    import jinja2

    from notifier.jinjaenv import RenderError

__all__ = ["EXCERPT_CHARS", "ONE_LINE_SLOTS", "RenderError", "Renderer", "is_html_slot"]

EXCERPT_CHARS = 300
PARENT_EXCERPT_CHARS = 200
ONE_LINE_SLOTS = frozenset({"subject", "title", "digest_subject", "digest_title"})
DIGEST_PREFIX = "digest_"
"""A digest renders `digest_text` where a single notification renders `text`, and so on."""
MAX_ONE_LINE_CHARS = 250
"""A subject longer than this is cut: mail clients show less, and feed titles can be huge."""

ANONYMOUS = "Anonymous"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_PACKAGED = "packaged:"
_FILE = "file:"


def is_html_slot(slot: str) -> bool:
    """Slots whose output is HTML, and so are autoescaped: `html`, `body.html`, ..."""
    return slot == "html" or slot.endswith((".html", "_html"))


class Renderer:
    """Renders notices for every channel; one per process (or per configuration reload).

    `subscription_templates` maps a subscription name to its overrides, slot -> file. A
    subscription may write `email/text` instead of `text` to override one kind's slot only.
    """

    def __init__(self, base_dir: Path,
                 subscription_templates: Mapping[str, Mapping[str, str]] | None = None,
                 *, keep_compiled: bool = True) -> None:
        self.base_dir = Path(base_dir)
        self.keep_compiled = keep_compiled
        """Keep compiled templates in the user's cache folder for the next process
        (`notifier.jinjaenv.TemplateCache`)."""
        self.subscription_templates = {name: dict(slots) for name, slots
                                       in (subscription_templates or {}).items()}
        self._shown: dict[str, str] = {}
        """Each loaded file's path -> the name errors show (as configured, or "(packaged)")."""
        self._envs: dict[bool, jinja2.Environment] | None = None
        """Built at the first template (`notifier.jinjaenv`): until then Jinja2 is not even
        imported, and a run that sends nothing never imports it."""
        self._templates: dict[tuple[bool, str], jinja2.Template] = {}
        self._last: tuple[Notice, dict[str, Any]] | None = None

    # --- public ---------------------------------------------------------------------------

    def render(self, kind: str, slot: str, notice: Notice,
               channel_templates: Mapping[str, str],
               extra: Mapping[str, Any] | None = None) -> str:
        """The text of one slot for one notice; raises RenderError naming file and line.

        A digest renders the slot's `digest_` variant, so a channel kind sends digests
        without knowing about them. `extra` adds a kind's own variables (email's
        `unsubscribe`).
        """
        if notice.digest:
            slot = DIGEST_PREFIX + slot
        template = self.template(kind, slot, notice.subscription, channel_templates)
        context = self._context(notice, kind)
        if extra:
            context = {**context, **extra}
        try:
            text = template.render(context)
        except Exception as exc:
            error, cause = self._render_failure(exc, template)
            raise error from cause
        if not text.isascii():  # (known at once; the search reads every character)
            text = strip_bidi_controls(text)  # a name must not reverse the rest of the line
        if slot in ONE_LINE_SLOTS:
            text = " ".join(text.split())
            if len(text) > MAX_ONE_LINE_CHARS:
                text = excerpt(text, MAX_ONE_LINE_CHARS)
        return text

    def template(self, kind: str, slot: str, subscription: str | None,
                 channel_templates: Mapping[str, str]) -> jinja2.Template:
        """The compiled template for a slot; `check` calls it to find broken files early."""
        name = self._template_name(kind, slot, subscription, channel_templates)
        html = is_html_slot(slot)
        cached = self._templates.get((html, name))
        if cached is not None:
            return cached
        import jinja2

        from notifier.jinjaenv import RenderError, cache_folder, environments

        if self._envs is None:
            self._envs = environments(self.base_dir, self._shown,
                                      cache_folder() if self.keep_compiled else None)
        shown = _shown(name)
        try:
            compiled = self._envs[html].get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            raise self._syntax_error(exc, shown) from None
        except jinja2.TemplateNotFound:
            if name.startswith(_PACKAGED) and slot.startswith(DIGEST_PREFIX):
                # A kind without digest templates of its own uses the generic ones: one
                # for HTML slots, one for one-line slots, one for plain text.
                generic = "html" if html else "subject" if slot in ONE_LINE_SLOTS else "text"
                compiled = self.template("digest", generic, None, {})
                self._templates[(html, name)] = compiled
                return compiled
            if name.startswith(_PACKAGED):
                raise RenderError(shown, f"channel kind {kind!r} has no template slot "
                                         f"{slot!r}") from None
            raise RenderError(shown, f"file not found (paths are relative to the "
                                     f"configuration file's folder, {self.base_dir})") from None
        self._templates[(html, name)] = compiled
        return compiled

    def is_own(self, kind: str, slot: str, notice: Notice,
               channel_templates: Mapping[str, str]) -> bool:
        """Whether the user chose the template for this slot (a file, not the packaged one):
        chat formats then send that text instead of laying out their own card."""
        if notice.digest:
            slot = DIGEST_PREFIX + slot
        name = self._template_name(kind, slot, notice.subscription, channel_templates)
        return name.startswith(_FILE)

    def context(self, notice: Notice, kind: str = "") -> dict[str, Any]:
        """Every variable a template sees; documented in docs/templates.md."""
        return dict(self._context(notice, kind))

    # --- template lookup --------------------------------------------------------------------

    def _template_name(self, kind: str, slot: str, subscription: str | None,
                       channel_templates: Mapping[str, str]) -> str:
        own = self.subscription_templates.get(subscription or "", {})
        for file in (own.get(f"{kind}/{slot}"), own.get(slot), channel_templates.get(slot)):
            if file:
                return _FILE + file
        return f"{_PACKAGED}{kind}/{slot}.j2"

    def _render_failure(self, exc: Exception, template: jinja2.Template
                        ) -> tuple[RenderError, Exception | None]:
        """The RenderError for what `template.render` raised, and the cause to chain to it:
        none for Jinja's syntax and lookup errors, whose message says it all."""
        import jinja2

        from notifier.jinjaenv import RenderError

        if isinstance(exc, jinja2.TemplateSyntaxError):  # from an {% include %} compiled late
            return self._syntax_error(exc), None
        if isinstance(exc, jinja2.TemplateNotFound):
            return RenderError(self._shown_name(template), f"included template {exc.name!r} "
                               "not found"), None
        name, line = self._locate(exc, template)
        message = str(exc) if isinstance(exc, jinja2.TemplateError) else \
            f"{type(exc).__name__}: {exc}"
        return RenderError(name, message, line), exc

    def _syntax_error(self, exc: jinja2.TemplateSyntaxError,
                      shown: str | None = None) -> RenderError:
        from notifier.jinjaenv import RenderError

        name = shown or (_shown(exc.name) if exc.name else "(unknown)")
        if exc.filename and exc.filename in self._shown:
            name = self._shown[exc.filename]
        return RenderError(name, exc.message or "syntax error", exc.lineno)

    def _shown_name(self, template: jinja2.Template) -> str:
        return self._shown.get(template.filename or "", template.name or "(unknown)")

    def _locate(self, exc: Exception, template: jinja2.Template) -> tuple[str, int | None]:
        """The template file and line an error was raised in (maybe an included one)."""
        frame = _last_template_frame(exc, set(self._shown))
        if frame is None:
            return self._shown_name(template), None
        return self._shown.get(frame[0], frame[0]), frame[1]

    # --- context ----------------------------------------------------------------------------

    def _context(self, notice: Notice, kind: str) -> dict[str, Any]:
        # One notice is usually rendered into several slots in a row (subject, text, html):
        # sanitise and convert its HTML once.
        if self._last is not None and self._last[0] is notice:
            base = self._last[1]
        else:
            base = build_digest_context(notice) if notice.digest else build_context(notice)
            self._last = (notice, base)
        # Set by the email channel from `list_unsubscribe`; empty everywhere else.
        return {**base, "channel_kind": kind, "unsubscribe": "", "unsubscribe_address": ""}


def build_context(notice: Notice) -> dict[str, Any]:
    """The template variables for one notice, without the channel kind."""
    entry = notice.entry
    parent = notice.parent
    post_link = web_url(entry.post_link or (entry.link if entry.kind == "post" else ""))
    link = web_url(entry.link) or post_link
    feed_url = web_url(notice.feed_url)
    base_url = link or feed_url
    html, text = _html_and_text(entry, base_url)
    # A post is its own post: without a title it has none, and is not headed with the feed's
    # name as if that were its title ("New post by nova on nova", not 'New post: "nova"').
    post_title = entry.post_title or (entry.title if entry.kind == "post" else notice.feed_title)
    author = entry.author or ANONYMOUS
    parent_author = (parent.author if parent and parent.author else entry.parent_author) or ""
    parent_text = _html_and_text(parent, web_url(parent.link) or base_url)[1] if parent else ""
    published = entry.published or entry.updated
    return {
        "entry": entry,
        "notice": notice,
        "subscription": notice.subscription,
        "channel": notice.channel,
        "feed_title": notice.feed_title,
        "feed_url": feed_url,
        "kind": entry.kind,
        "is_reply": notice.is_reply,
        "parent": parent,
        "parent_author": parent_author,
        "parent_link": web_url(parent.link) if parent else "",
        "parent_text": parent_text,
        "parent_excerpt": excerpt(parent_text, PARENT_EXCERPT_CHARS),
        "text": text,
        "excerpt": excerpt(text, EXCERPT_CHARS),
        "html": html,
        "title": entry.title,
        "post_title": post_title,
        "post_link": post_link,
        "link": link,
        "author": author,
        "author_url": web_url(entry.author_url),
        "published": published,
        "published_text": format_datetime(published),
        "missing": notice.missing,
        "edited": notice.revision > 0,
        "headline": headline(notice, author=author, post_title=post_title,
                             parent_author=parent_author),
    }


def digest_total(notice: Notice) -> int:
    """The new entries a digest stands for: its members, and for a flood's summary (which
    shows the newest few) the rest its oldest member counts."""
    if notice.notification_id.startswith(FLOOD_ID_PREFIX):
        return len(notice.digest) + sum(member.missing for member in notice.digest)
    return len(notice.digest)


def build_digest_context(notice: Notice) -> dict[str, Any]:
    """The template variables of a digest: each member's own variables, grouped by post.

    Documented in docs/templates.md. `link` is the one post's page when every member is
    about the same post, else the first member's feed: chat formats keep it when they cut.
    """
    items = [build_context(member) for member in notice.digest]
    posts: dict[str, dict[str, Any]] = {}
    for item in items:
        key = item["post_link"] or item["post_title"] or item["feed_url"]
        group = posts.setdefault(key, {"title": item["post_title"], "link": item["post_link"],
                                       "items": []})
        group["items"].append(item)
    comments = sum(1 for item in items if item["kind"] == "comment")
    parts = []
    if comments:
        parts.append(f"{comments} new comment{'s' if comments != 1 else ''}")
    if len(items) - comments:
        new_posts = len(items) - comments
        parts.append(f"{new_posts} new post{'s' if new_posts != 1 else ''}")
    where = (f' on "{items[0]["post_title"]}"' if len(posts) == 1 and items[0]["post_title"]
             else f" on {len(posts)} posts" if len(posts) > 1 else "")
    total = digest_total(notice)
    if total > len(items):
        noun = "comment" if comments else "post"
        where = where or (f' on "{notice.feed_title}"' if notice.feed_title else "")
        parts = [f"{total:,} new {noun}{'s' if total != 1 else ''}{where}; the newest "
                 f"{len(items)} follow"]
        where = ""
    subscriptions = sorted({member.subscription for member in notice.digest})
    single = next(iter(posts.values())) if len(posts) == 1 else None
    return {
        "notice": notice,
        "digest_id": notice.notification_id,
        "count": len(items),
        "total": total,
        "items": items,
        "posts": list(posts.values()),
        "subscriptions": subscriptions,
        "subscription": notice.subscription,
        "channel": notice.channel,
        "headline": " and ".join(parts) + where,
        "link": (single["link"] if single else "") or (items[0]["feed_url"] if items else ""),
    }


def headline(notice: Notice, *, author: str, post_title: str, parent_author: str) -> str:
    """One line saying what happened, used as subject and chat message lead."""
    entry = notice.entry
    on = f' on "{post_title}"' if post_title else ""
    if entry.kind == "post":
        title = entry.title or post_title
        by = f" by {entry.author}" if entry.author else ""
        return f'New post{by}: "{title}"' if title else f"New post{by} on {notice.feed_title}"
    if notice.revision > 0:
        return f"Edited comment by {author}{on}"
    if notice.is_reply:
        to = f" to {parent_author}" if parent_author else ""
        return f"Reply by {author}{to}{on}"
    return f"New comment by {author}{on}"


def web_url(url: str) -> str:
    """`url` if it is an absolute http(s) URL, else "": feeds can say `javascript:` too."""
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return ""
    return "" if _SPACE_OR_CONTROL.search(url) else url


_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f]")
r"""What `web_url` refuses inside a URL: any character `str.isspace` calls a space (Python's
`\s` is the same set), and the C0 controls. One search, not a generator over every
character (four URLs a message: a tenth of rendering one)."""


def format_datetime(value: datetime | None) -> str:
    """`21 Oct 2013 15:40 UTC`: unambiguous everywhere, independent of the locale."""
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return f"{value.day} {_MONTHS[value.month - 1]} {value.year} {value:%H:%M} UTC"


QUOTE_STYLE = ("margin:0 0 16px 0;padding:4px 0 4px 12px;border-left:3px solid #d4d4d8;"
               "color:#52525b;")
"""The side bar of a quote in an email; inline, since many mail clients drop `<style>`."""


def quote_bars(html: str) -> Markup:
    """Jinja filter: every `<blockquote>` of sanitised HTML gets the email's quote side bar,
    so a quote inside a comment looks like the quoted parent above it."""
    return Markup(str(escape(html)).replace("<blockquote>",
                                            f'<blockquote style="{QUOTE_STYLE}">'))


def quote(text: str, prefix: str = "> ") -> str:
    """Jinja filter: prefix every line, the way mail clients show a quoted message."""
    return "\n".join(prefix + line if line else prefix.rstrip() for line in
                     str(text).splitlines() or [""])


def _html_and_text(entry: Entry, base_url: str) -> tuple[Markup, str]:
    """Sanitised HTML and plain text that say the same thing, from whichever the source had.

    The text comes from the sanitised HTML, not from the raw markup, so nothing the sanitiser
    removes (a script's body, say) can reappear in the plain text part.
    """
    if entry.content_html.strip():
        clean = sanitize_html(entry.content_html, base_url)
        return Markup(clean), html_to_text(clean)
    text = entry.content_text.strip()
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    html = Markup("").join(
        Markup("<p>{}</p>").format(Markup("<br>\n").join(escape(line) for line in
                                                          p.strip().splitlines()))
        for p in paragraphs)
    return html, text


def _shown(name: str) -> str:
    if name.startswith(_PACKAGED):
        return f"{name.removeprefix(_PACKAGED)} (packaged)"
    return name.removeprefix(_FILE)


def _last_template_frame(exc: BaseException, filenames: set[str]) -> tuple[str, int] | None:
    """The innermost traceback frame in a template file; Jinja maps its line to the source."""
    found: tuple[str, int] | None = None
    tb: types.TracebackType | None = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename in filenames:
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


def __getattr__(name: str) -> Any:
    """`RenderError`, which is Jinja2's `TemplateError` too, from `notifier.jinjaenv`: it
    is imported by whoever asks for it, not by every start."""
    if name == "RenderError":
        from notifier.jinjaenv import RenderError

        return RenderError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
