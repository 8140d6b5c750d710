"""Rendering and sanitising with plain values: what a reader sees, and what a feed cannot do."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from markupsafe import Markup

from notifier.models import Entry, Notice
from notifier.render import (
    QUOTE_STYLE,
    Renderer,
    RenderError,
    format_datetime,
    quote,
    web_url,
)
from notifier.sanitize import MAX_HTML_CHARS, sanitize_html

POST = "http://blog.test/2013/10/20/why-defend-stalin/"
ATOM = "{http://www.w3.org/2005/Atom}"


def fixture_comment_html(fixtures_dir: Path, scenario: str, comment: str) -> str:
    """The content HTML of one comment, exactly as WordPress served it."""
    path = fixtures_dir / "wordpress-6.1" / scenario / "post-comments.atom.xml"
    for entry in ET.parse(path).getroot().iter(f"{ATOM}entry"):
        if entry.findtext(f"{ATOM}id", "").endswith(f"#{comment}"):
            return entry.findtext(f"{ATOM}content", "")
    raise LookupError(comment)


@pytest.fixture
def markup_html(fixtures_dir: Path) -> str:
    return fixture_comment_html(fixtures_dir, "02-markup-comment", "comment-5")


def comment(number: int, author: str, html: str, **fields: object) -> Entry:
    defaults: dict[str, object] = {
        "key": f"{POST}#comment-{number}", "kind": "comment", "title": f"By: {author}",
        "author": author, "link": f"{POST}#comment-{number}", "content_html": html,
        "post_key": POST, "post_title": "Why Defend Stalin?", "post_link": POST,
        "published": datetime(2013, 10, 21, 15, 40, tzinfo=UTC),
    }
    defaults.update(fields)
    return Entry(**defaults)  # type: ignore[arg-type]


def notice(entry: Entry, parent: Entry | None = None, **fields: object) -> Notice:
    values: dict[str, object] = {
        "notification_id": "n0123456789abcdef", "subscription": "the-thread",
        "channel": "mail", "entry": entry, "feed_title": "Comments on: Why Defend Stalin?",
        "feed_url": POST + "feed/atom/", "is_reply": bool(entry.parent_key),
        "parent": parent,
    }
    values.update(fields)
    return Notice(**values)  # type: ignore[arg-type]


EAST_SIDE_BOY = comment(2, "East Side Boy", "<p>thanks for article, made me question my "
                                            "views on some things.</p>",
                        published=datetime(2013, 10, 21, 9, 12, tzinfo=UTC))
REPLY = comment(3, "southernfriedbolshevik",
                '<p>In reply to <a href="#comment-2">East Side Boy</a>.</p>\n<p>Thank you '
                "very much for the feedback.</p>", parent_key=EAST_SIDE_BOY.key)


def render_all(renderer: Renderer, item: Notice) -> dict[str, str]:
    return {slot: renderer.render("email", slot, item, {})
            for slot in ("subject", "text", "html")}


# --- the markup fixture ---------------------------------------------------------------------


def test_script_in_a_comment_never_reaches_a_reader(markup_html: str) -> None:
    assert "<script>alert(1)</script>" in markup_html  # the fixture is what we think it is
    item = notice(comment(5, "Markup Tester", markup_html))
    out = render_all(Renderer(Path(".")), item)
    for slot in ("text", "html"):
        assert "<script" not in out[slot].lower()
        assert "alert(1)" not in out[slot]
    assert "alert(1)" not in Renderer(Path(".")).render("webhook", "text", item, {})


def test_markup_fixture_keeps_what_a_reader_wrote(markup_html: str) -> None:
    out = render_all(Renderer(Path(".")), notice(comment(5, "Markup Tester", markup_html)))
    html, text = out["html"], out["text"]
    assert "<strong>bold</strong>" in html
    # The comment's own quote, with the same side bar as the quoted parent.
    assert (f'<blockquote style="{QUOTE_STYLE}"><p>the people make the heroes</p></blockquote>'
            in html)
    assert ('<a href="http://example.test/" rel="nofollow noopener noreferrer">a link</a>'
            in html)
    assert "&amp; an ampersand" in html and "&amp;amp;" not in html
    assert "& an ampersand" in text and "&amp;" not in text and "&#038;" not in text
    assert "> the people make the heroes" in text
    assert "a link <http://example.test/>" in text
    assert f"{POST}#comment-5" in text


# --- replies --------------------------------------------------------------------------------


def test_reply_quotes_its_parent_in_every_body() -> None:
    out = render_all(Renderer(Path(".")), notice(REPLY, EAST_SIDE_BOY))
    assert out["subject"] == ('Reply by southernfriedbolshevik to East Side Boy on '
                              '"Why Defend Stalin?"')
    assert "East Side Boy wrote:\n> thanks for article, made me question my views" in out["text"]
    assert "East Side Boy wrote" in out["html"]
    assert "<blockquote" in out["html"] and "thanks for article" in out["html"]
    # The relative link in the reply's text is made absolute against the comment's page.
    assert f'href="{POST}#comment-2"' in out["html"]


def test_reply_to_an_unseen_parent_names_it_from_the_source() -> None:
    entry = replace(REPLY, parent_author="East Side Boy")
    out = render_all(Renderer(Path(".")), notice(entry, None))
    assert out["subject"].startswith("Reply by southernfriedbolshevik to East Side Boy on")
    assert "wrote:\n>" not in out["text"]


@pytest.mark.parametrize(("entry", "is_reply", "expected"), [
    (EAST_SIDE_BOY, False, 'New comment by East Side Boy on "Why Defend Stalin?"'),
    (replace(EAST_SIDE_BOY, author=""), False, 'New comment by Anonymous on "Why Defend Stalin?"'),
    (Entry(key=POST, kind="post", title="Why Defend Stalin?", author="admin", link=POST),
     False, 'New post by admin: "Why Defend Stalin?"'),
    (Entry(key=POST, kind="post", title="", author="nova", link=POST),
     False, "New post by nova on Comments on: Why Defend Stalin?"),
])
def test_headline(entry: Entry, is_reply: bool, expected: str) -> None:
    context = Renderer(Path(".")).context(notice(entry, is_reply=is_reply))
    assert context["headline"] == expected


# --- one-line slots -------------------------------------------------------------------------


def test_subject_with_line_breaks_in_the_post_title_is_one_line() -> None:
    entry = replace(EAST_SIDE_BOY, post_title="Why\r\nBcc: victim@example.org\n\n  Defend?")
    subject = Renderer(Path(".")).render("email", "subject", notice(entry), {})
    assert "\r" not in subject and "\n" not in subject
    assert subject == 'New comment by East Side Boy on "Why Bcc: victim@example.org Defend?"'


def test_a_huge_subject_is_cut() -> None:
    entry = replace(EAST_SIDE_BOY, post_title="word " * 500)
    subject = Renderer(Path(".")).render("email", "subject", notice(entry), {})
    assert len(subject) <= 250 and subject.endswith("…")


# --- context values -------------------------------------------------------------------------


def test_context_values() -> None:
    context = Renderer(Path(".")).context(notice(REPLY, EAST_SIDE_BOY, missing=3), "email")
    assert context["published_text"] == "21 Oct 2013 15:40 UTC"
    assert context["published"] == datetime(2013, 10, 21, 15, 40, tzinfo=UTC)
    assert context["kind"] == "comment" and context["channel_kind"] == "email"
    assert context["is_reply"] is True and context["missing"] == 3
    assert context["parent"] is EAST_SIDE_BOY and context["parent_author"] == "East Side Boy"
    assert context["link"] == f"{POST}#comment-3" and context["post_link"] == POST
    assert isinstance(context["html"], Markup)
    assert context["text"].startswith("In reply to East Side Boy")


def test_hostile_links_in_entry_fields_are_dropped() -> None:
    entry = replace(EAST_SIDE_BOY, link="javascript:alert(1)", author_url="data:text/html,x",
                    post_link=POST)
    context = Renderer(Path(".")).context(notice(entry))
    assert context["link"] == POST  # falls back to the post
    assert context["author_url"] == ""
    html = Renderer(Path(".")).render("email", "html", notice(entry), {})
    assert "javascript:" not in html and "data:" not in html


def test_text_only_entries_become_escaped_html() -> None:
    entry = replace(EAST_SIDE_BOY, content_html="", content_text="a < b & c\nnext\n\npara")
    context = Renderer(Path(".")).context(notice(entry))
    assert context["html"] == Markup("<p>a &lt; b &amp; c<br>\nnext</p><p>para</p>")
    assert context["text"] == "a < b & c\nnext\n\npara"


def test_format_datetime_and_quote() -> None:
    assert format_datetime(None) == ""
    assert format_datetime(datetime(2013, 10, 3, 7, 5, tzinfo=UTC)) == "3 Oct 2013 07:05 UTC"
    assert quote("a\n\nb") == "> a\n>\n> b"


# --- overrides ------------------------------------------------------------------------------


def test_override_precedence(tmp_path: Path) -> None:
    (tmp_path / "channel.j2").write_text("channel: {{ author }}", encoding="utf-8")
    (tmp_path / "sub.j2").write_text("subscription: {{ author }}", encoding="utf-8")
    (tmp_path / "kind.j2").write_text("email only: {{ author }}", encoding="utf-8")
    item = notice(EAST_SIDE_BOY)
    plain = Renderer(tmp_path)
    assert plain.render("email", "text", item, {"text": "channel.j2"}) == "channel: East Side Boy"
    assert plain.render("email", "text", item, {}).startswith("New comment by East Side Boy")
    subscribed = Renderer(tmp_path, {"the-thread": {"text": "sub.j2"}})
    assert subscribed.render("email", "text", item, {"text": "channel.j2"}) == \
        "subscription: East Side Boy"
    assert subscribed.render("console", "text", item, {}) == "subscription: East Side Boy"
    # Another subscription's override does not apply.
    assert subscribed.render("email", "text", replace(item, subscription="other"),
                             {"text": "channel.j2"}) == "channel: East Side Boy"
    by_kind = Renderer(tmp_path, {"the-thread": {"text": "sub.j2", "email/text": "kind.j2"}})
    assert by_kind.render("email", "text", item, {}) == "email only: East Side Boy"
    assert by_kind.render("console", "text", item, {}) == "subscription: East Side Boy"


def test_override_is_compiled_once(tmp_path: Path) -> None:
    file = tmp_path / "t.j2"
    file.write_text("first {{ author }}", encoding="utf-8")
    renderer = Renderer(tmp_path)
    assert renderer.render("email", "text", notice(EAST_SIDE_BOY), {"text": "t.j2"}) == \
        "first East Side Boy"
    file.write_text("second", encoding="utf-8")
    assert renderer.render("email", "text", notice(EAST_SIDE_BOY), {"text": "t.j2"}) == \
        "first East Side Boy"


def test_html_overrides_are_autoescaped_and_text_ones_are_not(tmp_path: Path) -> None:
    (tmp_path / "t.j2").write_text("{{ author }}|{{ html }}", encoding="utf-8")
    entry = replace(EAST_SIDE_BOY, author="<b>Eve</b> & co", content_html="<em>hi</em>")
    renderer = Renderer(tmp_path)
    assert renderer.render("email", "html", notice(entry), {"html": "t.j2"}) == \
        "&lt;b&gt;Eve&lt;/b&gt; &amp; co|<em>hi</em>"
    assert renderer.render("email", "text", notice(entry), {"text": "t.j2"}) == \
        "<b>Eve</b> & co|<em>hi</em>"


def test_broken_override_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "broken.j2").write_text("line one\n{% if author %}\nno end",
                                                      encoding="utf-8")
    with pytest.raises(RenderError) as caught:
        Renderer(tmp_path).render("email", "text", notice(EAST_SIDE_BOY),
                                  {"text": "templates/broken.j2"})
    assert caught.value.template == "templates/broken.j2"
    assert "templates/broken.j2, line 3" in str(caught.value)


def test_undefined_variable_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "typo.j2").write_text("{{ headline }}\n\n{{ autor }}\n", encoding="utf-8")
    with pytest.raises(RenderError) as caught:
        Renderer(tmp_path).render("email", "text", notice(EAST_SIDE_BOY), {"text": "typo.j2"})
    assert str(caught.value) == "template typo.j2, line 3: 'autor' is undefined"


def test_error_in_an_included_file_names_that_file(tmp_path: Path) -> None:
    (tmp_path / "main.j2").write_text('{% include "part.j2" %}', encoding="utf-8")
    (tmp_path / "part.j2").write_text("ok\n{{ nope.x }}", encoding="utf-8")
    with pytest.raises(RenderError, match=r"template part\.j2, line 2: 'nope' is undefined"):
        Renderer(tmp_path).render("email", "text", notice(EAST_SIDE_BOY), {"text": "main.j2"})


def test_missing_override_and_unknown_slot(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match=r"template gone\.j2: file not found"):
        Renderer(tmp_path).render("email", "text", notice(EAST_SIDE_BOY), {"text": "gone.j2"})
    with pytest.raises(RenderError, match="has no template slot 'sms'"):
        Renderer(tmp_path).render("email", "sms", notice(EAST_SIDE_BOY), {})


def test_every_packaged_template_renders_a_post_and_a_bare_comment() -> None:
    post = Entry(key=POST, kind="post", title="Why Defend Stalin?", link=POST)
    bare = Entry(key="x", kind="comment")
    renderer = Renderer(Path("."))
    for entry in (post, bare):
        for kind, slot in [("email", "subject"), ("email", "text"), ("email", "html"),
                           ("console", "text"), ("webhook", "text")]:
            assert renderer.render(kind, slot, notice(entry, feed_url="", feed_title=""), {})


# --- sanitiser ------------------------------------------------------------------------------

BASE = f"{POST}#comment-9"


@pytest.mark.parametrize(("hostile", "forbidden"), [
    ("<script>alert(1)</script>", ["<script", "alert(1)"]),
    ("<SCRIPT SRC=//evil.test/x.js></SCRIPT>", ["<script", "evil.test"]),
    ('<img src="http://tracker.test/pixel.gif" width="1">', ["<img", "tracker.test"]),
    ('<img src=x onerror="alert(1)">', ["<img", "onerror", "alert(1)"]),
    ('<a href="javascript:alert(1)">x</a>', ["javascript:"]),
    ('<a href="JaVaScRiPt&#58;alert(1)">x</a>', ["javascript", "alert(1)"]),
    ('<a href="java\tscript:alert(1)">x</a>', ["script:", "alert(1)"]),
    ('<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>', ["data:"]),
    ('<a href="vbscript:msgbox(1)">x</a>', ["vbscript"]),
    ('<p onclick="alert(1)" onmouseover="x()">hi</p>', ["onclick", "onmouseover", "alert(1)"]),
    ('<iframe src="http://evil.test/"></iframe>', ["<iframe", "evil.test"]),
    ("<style>body{background:url(http://evil.test/)}</style>", ["<style", "evil.test"]),
    ('<form action="http://evil.test/"><input name="pw"></form>', ["<form", "<input",
                                                                    "evil.test"]),
    ('<svg onload="alert(1)"><circle/></svg>', ["<svg", "alert(1)"]),
    ('<object data="x.swf"></object><embed src="x.swf">', ["<object", "<embed", "x.swf"]),
    ('<p style="position:fixed;top:0">x</p>', ["style", "fixed"]),
    ('<meta http-equiv="refresh" content="0;url=http://evil.test/">', ["<meta", "evil.test"]),
    ('<base href="http://evil.test/">', ["<base", "evil.test"]),
    ("<!--[if IE]><script>alert(1)</script><![endif]-->", ["alert(1)", "<!--"]),
    ('<a href="http://ok.test/" target="_blank" rel="opener">x</a>', ["target", 'rel="opener"']),
    ("<scr<script>ipt>alert(1)</script>", ["<script"]),
])
def test_sanitiser_removes_hostile_markup(hostile: str, forbidden: list[str]) -> None:
    clean = sanitize_html(f"<p>before</p>{hostile}<p>after</p>", BASE)
    for needle in forbidden:
        assert needle.lower() not in clean.lower(), clean
    assert "<p>before</p>" in clean and "<p>after</p>" in clean


def test_sanitiser_keeps_text_markup_and_fixes_links() -> None:
    html = ('<p><b>b</b> <strong>s</strong> <i>i</i> <em>e</em> <u>u</u> <s>s</s> '
            '<code>c</code> <q>q</q> <cite>c</cite></p><pre>p</pre><ul><li>one</li></ul>'
            '<ol><li>two</li></ol><blockquote>quoted</blockquote>'
            '<a href="/2013/10/" title="t">rel</a> <a href="#comment-2">frag</a> '
            '<a href="mailto:x@example.org">mail</a>')
    clean = sanitize_html(html, BASE)
    for tag in ("b", "strong", "i", "em", "u", "s", "code", "q", "cite", "pre", "ul", "ol",
                "li", "blockquote"):
        assert f"<{tag}>" in clean, tag
    assert '<a href="http://blog.test/2013/10/" title="t" rel="nofollow noopener noreferrer">' \
        in clean
    assert f'<a href="{POST}#comment-2" rel="nofollow noopener noreferrer">' in clean
    assert '<a href="mailto:x@example.org" rel="nofollow noopener noreferrer">' in clean


def test_sanitiser_drops_relative_links_without_a_usable_base() -> None:
    assert sanitize_html('<a href="/x">x</a>', "") == \
        '<a rel="nofollow noopener noreferrer">x</a>'
    assert sanitize_html('<a href="/x">x</a>', "ftp://host/") == \
        '<a rel="nofollow noopener noreferrer">x</a>'


def test_sanitiser_caps_its_input() -> None:
    clean = sanitize_html("<p>" + "a" * (MAX_HTML_CHARS * 2) + "</p>", BASE)
    assert len(clean) <= MAX_HTML_CHARS + 10
    assert sanitize_html("", BASE) == ""


def test_a_link_with_a_space_or_a_control_character_is_no_link() -> None:
    """A feed's link goes into href attributes and mail text: one with a space, a line
    break or another control inside (a smuggled second line) is dropped, not shown."""
    good = "https://blog.test/2013/10/20/why-defend-stalin/#comment-5"
    assert web_url(f"  {good}\n") == good  # around it: trimmed
    for inside in (" ", "\t", "\r\n", "\x00", "\x1b", "\x0b", "\u00a0", "\u2028", "\u3000"):
        assert web_url(good.replace("#", inside + "#")) == "", repr(inside)
    for other in ("javascript:alert(1)", "ftp://blog.test/", "/relative/", "https://"):
        assert web_url(other) == ""
