"""Blogger comment-feed pages, written from Blogger's documented Atom format.

Like `tests/fixtures/blogger/post-comments.atom.xml` (see its README), these are not
captures: they follow the GData documentation for `/feeds/POSTID/comments/default` -- newest
first, `openSearch:totalResults` / `startIndex` / `itemsPerPage`, `link rel="next"` to the
next `start-index` while more remain, every entry's `thr:in-reply-to` naming the post, and a
reply's parent as `link rel="related"`. Links use the fixture origin `http://blog.test`,
which `BlogServer` rewrites to its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from xml.sax.saxutils import escape, quoteattr

BLOG = "111"
POST = "333"
ORIGIN = "http://blog.test"
FEED_PATH = f"/feeds/{POST}/comments/default"
POST_PAGE = f"{ORIGIN}/2024/05/walking-old-railway.html"
START = datetime(2024, 5, 3, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Comment:
    id: int
    author: str
    text: str
    minute: int  # minutes after START
    parent: int | None = None

    @property
    def key(self) -> str:
        return f"tag:blogger.com,1999:blog-{BLOG}.post-{self.id}"


def page_path(start: int, per_page: int) -> str:
    """The path and query Blogger's `rel="next"` link uses for a page."""
    return f"{FEED_PATH}?start-index={start}&max-results={per_page}"


def comment_page(comments: list[Comment], *, start: int = 1, per_page: int = 25) -> bytes:
    """Page `start` (1-based index) of the post's comment feed holding `comments`."""
    ordered = sorted(comments, key=lambda c: c.minute, reverse=True)
    shown = ordered[start - 1 : start - 1 + per_page]
    newest = START + timedelta(minutes=ordered[0].minute) if ordered else START
    more = start - 1 + per_page < len(ordered)
    next_link = (f"<link rel='next' type='application/atom+xml' "
                 f"href={quoteattr(ORIGIN + page_path(start + per_page, per_page))}/>"
                 if more else "")
    entries = "".join(_entry(c) for c in shown)
    return f"""<?xml version='1.0' encoding='UTF-8'?>\
<feed xmlns='http://www.w3.org/2005/Atom' \
xmlns:openSearch='http://a9.com/-/spec/opensearchrss/1.0/' \
xmlns:thr='http://purl.org/syndication/thread/1.0'>\
<id>tag:blogger.com,1999:blog-{BLOG}.post{POST}..comments</id>\
<updated>{_iso(newest)}</updated>\
<title type='text'>Comments on Example Notes: Walking the Old Railway</title>\
<link rel='self' type='application/atom+xml' href={quoteattr(ORIGIN + FEED_PATH)}/>\
<link rel='alternate' type='text/html' href={quoteattr(POST_PAGE)}/>\
{next_link}\
<generator version='7.00' uri='http://www.blogger.com'>Blogger</generator>\
<openSearch:totalResults>{len(ordered)}</openSearch:totalResults>\
<openSearch:startIndex>{start}</openSearch:startIndex>\
<openSearch:itemsPerPage>{per_page}</openSearch:itemsPerPage>\
{entries}</feed>""".encode()


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _entry(comment: Comment) -> str:
    when = _iso(START + timedelta(minutes=comment.minute))
    self_href = f"{ORIGIN}/feeds/{BLOG}/{POST}/comments/default/{comment.id}"
    related = ""
    if comment.parent is not None:
        parent_href = f"{ORIGIN}/feeds/{BLOG}/{POST}/comments/default/{comment.parent}"
        related = f"<link rel='related' type='application/atom+xml' href={quoteattr(parent_href)}/>"
    return (
        f"<entry><id>{comment.key}</id><published>{when}</published><updated>{when}</updated>"
        f"<title type='text'>{escape(comment.text[:40])}</title>"
        f"<content type='html'>{escape(escape(comment.text))}</content>"
        f"<link rel='self' type='application/atom+xml' href={quoteattr(self_href)}/>"
        f"<link rel='alternate' type='text/html' "
        f"href={quoteattr(f'{POST_PAGE}?showComment={comment.id}#c{comment.id}')}/>"
        f"{related}<author><name>{escape(comment.author)}</name></author>"
        f"<thr:in-reply-to href={quoteattr(POST_PAGE)} "
        f"ref='tag:blogger.com,1999:blog-{BLOG}.post-{POST}' type='text/html'/></entry>"
    )
