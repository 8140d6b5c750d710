"""A local HTTP server that answers like the captured WordPress 6.1 blog.

Tests point the notifier at real sockets instead of mocks so that redirects, conditional GETs,
gzip and slow bodies go through the same HTTP stack as in production.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import cast
from urllib.parse import parse_qs, quote, urlsplit

from tests.support.threaded import OwnedServer, ThreadedHTTPService

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures"
WORDPRESS_DIR = FIXTURES_DIR / "wordpress-6.1"
FIXTURE_ORIGIN = "http://blog.test"
DEFAULT_SCENARIO = "01-seed-thread"
POST_PATH = "/2013/10/20/why-defend-stalin/"
REST_COMMENTS_PATH = "/wp-json/wp/v2/comments"
NOT_MODIFIED = "not-modified.headers"
_REST_ONE_COMMENT = re.compile(re.escape(REST_COMMENTS_PATH) + r"/(?P<id>\d+)/?")

ROUTES: dict[str, str] = {
    "/": "home.html",
    POST_PATH: "post.html",
    "/feed/": "posts.rss2.xml",
    "/feed/atom/": "posts.atom.xml",
    "/comments/feed/": "comments.rss2.xml",
    "/comments/feed/atom/": "comments.atom.xml",
    POST_PATH + "feed/": "post-comments.rss2.xml",
    POST_PATH + "feed/atom/": "post-comments.atom.xml",
    "/wp-json/": "rest-root.json",
}

# WordPress builds these self links with get_self_link(): home host without its port, plus
# the request URI as sent. The fixtures README notes it for RSS2; feed-atom.php does the same.
_PORTLESS_SELF_LINK = re.compile(
    rb'(<atom:link href="|<link rel="self" type="application/atom\+xml" href=")'
    rb'http://blog\.test[^"]*(")'
)
_PORTLESS_SELF_FILES = frozenset(
    {
        "posts.rss2.xml",
        "posts.atom.xml",
        "comments.rss2.xml",
        "comments.rss2.paged2.xml",
        "post-comments.rss2.xml",
    }
)

# Debian's mod_deflate configuration; it explains which fixtures carry Vary: Accept-Encoding.
DEFLATE_TYPES = frozenset(
    {
        "text/html",
        "text/plain",
        "text/xml",
        "text/css",
        "text/javascript",
        "application/x-javascript",
        "application/javascript",
        "application/ecmascript",
        "application/rss+xml",
        "application/wasm",
        "application/xml",
    }
)

MAX_DRIP_BYTES = 1_000_000
MAX_DRIP_PAUSE = 5.0

Headers = list[tuple[str, str]]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it, so tests can assert on what the client sent."""

    method: str
    path: str
    headers: dict[str, str]


@dataclass
class _Response:
    status: int
    reason: str
    headers: Headers
    body: bytes
    compressible: bool = False
    drip: tuple[int, float] | None = None
    verbatim_length: bool = False


@dataclass
class _Override:
    status: int
    headers: dict[str, str]
    body: bytes
    remaining: int | None
    drip: tuple[int, float] | None = None


@dataclass(frozen=True)
class PostComment:
    """One approved comment on a `Post`; `date` is UTC without an offset, as REST's
    `date_gmt` ("2013-10-25T10:00:00")."""

    id: int
    author: str
    date: str
    text: str


@dataclass
class Post:
    """A post beyond the captured one, on the same site: its comment feed (Atom, with the
    site's validators), its REST listing (`?post=<id>`), its comments in the site's count.

    Append to `comments` to approve one: an id below the site's newest and an old date is
    a late approval, which moves neither the feed's validators nor the newest id.
    """

    post_id: int
    path: str
    title: str
    comments: list[PostComment] = field(default_factory=list)

    def rest_item(self, comment: PostComment) -> dict[str, object]:
        """The comment as WordPress's REST API lists it (the fields notifier reads)."""
        return {"id": comment.id, "post": self.post_id, "parent": 0,
                "author_name": comment.author, "author_url": "", "date": comment.date,
                "date_gmt": comment.date, "content": {"rendered": f"<p>{comment.text}</p>\n"},
                "link": f"{FIXTURE_ORIGIN}{self.path}#comment-{comment.id}",
                "status": "approved", "type": "comment"}

    def atom(self) -> bytes:
        """The post's comment feed as WordPress writes it: newest 10 by date, newest first."""
        link = f"{FIXTURE_ORIGIN}{self.path}"
        shown = sorted(self.comments, key=lambda c: (c.date, c.id), reverse=True)[:10]
        entries = "".join(f"""
\t<entry>
\t\t<title>By: {c.author}</title>
\t\t<link rel="alternate" href="{link}#comment-{c.id}" type="text/html" />
\t\t<author><name>{c.author}</name></author>
\t\t<id>{link}#comment-{c.id}</id>
\t\t<updated>{c.date}Z</updated>
\t\t<published>{c.date}Z</published>
\t\t<content type="html"><![CDATA[<p>{c.text}</p>]]></content>
\t\t<thr:in-reply-to ref="{link}" href="{link}" type="text/html" />
\t</entry>""" for c in shown)
        updated = shown[0].date if shown else "2013-10-20T10:00:00"
        return f"""<?xml version="1.0" encoding="UTF-8" ?><feed
\txmlns="http://www.w3.org/2005/Atom" xml:lang="en-US"
\txmlns:thr="http://purl.org/syndication/thread/1.0">
\t<title type="text">Comments on {self.title}</title>
\t<updated>{updated}Z</updated>
\t<link rel="alternate" type="text/html" href="{link}#comments" />
\t<link rel="self" type="application/atom+xml" href="{link}feed/atom/" />
\t<id>{link}feed/atom/</id>
<generator uri="https://wordpress.org/" version="6.1.9">WordPress</generator>{entries}
</feed>
""".encode()


@dataclass
class _AddedFile:
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def scenarios() -> list[str]:
    """Scenario folders in capture order; the overlay depends on this order."""
    return sorted(p.name for p in WORDPRESS_DIR.iterdir() if p.is_dir())


def parse_headers_file(text: str) -> tuple[int, str, Headers]:
    """Parse a captured `.headers` file, keeping repeated headers (WordPress sends 3 Links)."""
    lines = text.replace("\r\n", "\n").split("\n")
    _version, code, *reason = lines[0].split(" ", 2)
    headers: Headers = []
    for line in lines[1:]:
        if not line:
            break
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return int(code), (reason[0] if reason else ""), headers


def get_header(headers: Headers, name: str) -> str | None:
    """First value of a header, case-insensitively, as HTTP wants."""
    for key, value in headers:
        if key.lower() == name.lower():
            return value
    return None


def without(headers: Headers, *names: str) -> Headers:
    """Drop headers by name, case-insensitively."""
    lowered = {n.lower() for n in names}
    return [(k, v) for k, v in headers if k.lower() not in lowered]


def rewrite_origin(data: bytes, origin: str) -> bytes:
    """Replace the fixture origin in the three spellings WordPress uses (plain, JSON, query)."""
    escaped_fixture = FIXTURE_ORIGIN.replace("/", "\\/")
    escaped_origin = origin.replace("/", "\\/")
    data = data.replace(FIXTURE_ORIGIN.encode(), origin.encode())
    data = data.replace(escaped_fixture.encode(), escaped_origin.encode())
    return data.replace(
        quote(FIXTURE_ORIGIN, safe="").encode(), quote(origin, safe="").encode()
    )


def lower_headers(headers: list[tuple[str, str]]) -> dict[str, str]:
    """Lower-cased names, repeated headers joined with ", " as RFC 9110 allows."""
    lowered: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        lowered[key] = f"{lowered[key]}, {value}" if key in lowered else value
    return lowered


def _accepts_gzip(value: str | None) -> bool:
    if not value:
        return False
    for token in value.split(","):
        coding, _, params = token.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "x-gzip"):
            continue
        quality = params.strip().lower()
        if quality.startswith("q="):
            try:
                return float(quality[2:]) > 0
            except ValueError:
                return False
        return True
    return False


def _http_timestamp(value: str) -> float | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _wp_json(value: object) -> bytes:
    """Encode like wp_json_encode(): ASCII only, slashes escaped."""
    return json.dumps(value, separators=(",", ":")).replace("/", "\\/").encode()


def _matches(key: str, path: str, target: str) -> bool:
    return key == target if "?" in key else key == path


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10.0

    def log_message(self, format: str, *args: object) -> None:
        """Keep pytest output clean; the request log replaces stderr logging."""

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def _serve(self) -> None:
        blog = cast(BlogServer, cast(OwnedServer, self.server).owner)
        headers = blog._record(self.command, self.path, self.headers.items())
        response = blog._respond(self.path, headers)
        self._send(response, blog)

    def _send(self, response: _Response, blog: BlogServer) -> None:
        body = response.body
        headers = list(response.headers)
        if response.drip is not None:
            total, _pause = response.drip
            if get_header(headers, "Content-Length") is None:
                headers.append(("Content-Length", str(total)))
            headers.append(("Connection", "close"))
        elif not response.verbatim_length:
            if response.compressible and _accepts_gzip(self.headers.get("Accept-Encoding")):
                body = gzip.compress(body, mtime=0)
                headers.append(("Content-Encoding", "gzip"))
                if blog.gzip_etag_suffix:
                    headers = [
                        (k, v[:-1] + '-gzip"' if k.lower() == "etag" and v.endswith('"') else v)
                        for k, v in headers
                    ]
            if response.status >= 200 and response.status not in (204, 304):
                headers.append(("Content-Length", str(len(body))))
        self.send_response_only(response.status, response.reason or None)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD" or response.status in (204, 304):
            return
        try:
            if response.drip is not None:
                self._drip(body, response.drip, blog)
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _drip(self, body: bytes, drip: tuple[int, float], blog: BlogServer) -> None:
        total, pause = drip
        source = body or b"."
        for index in range(total):
            if index and blog._stopping.wait(pause):
                break
            self.wfile.write(source[index % len(source) : index % len(source) + 1])
            self.wfile.flush()


class BlogServer(ThreadedHTTPService):
    """The captured WordPress blog, served on 127.0.0.1 from tests/fixtures/wordpress-6.1.

    Files missing from the current scenario come from the latest earlier scenario that has
    them, because later captures only hold what changed.
    """

    handler = _Handler
    thread_name = "blog-server"

    def __init__(self, scenario: str = DEFAULT_SCENARIO) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._log: list[RecordedRequest] = []
        self._overrides: list[tuple[str, _Override]] = []
        self._files: dict[str, _AddedFile] = {}
        self._scenario = DEFAULT_SCENARIO
        self.extra_rest_comments: list[dict[str, object]] = []
        """Comments REST lists beyond the captures: a late approval at an old id."""
        self._posts: dict[int, Post] = {}
        self.scenario = scenario
        # WordPress answers 304 from validators alone; switch off to see every body.
        self.conditional_get = True
        # Apache's mod_deflate renames the ETag of gzipped bodies, so WordPress stops matching.
        self.gzip_etag_suffix = False
        # WordPress drops the port from get_self_link(); switch off for the plain rewrite.
        self.portless_self_links = True

    # scenario

    @property
    def scenario(self) -> str:
        return self._scenario

    @scenario.setter
    def scenario(self, name: str) -> None:
        if name not in scenarios():
            raise ValueError(f"unknown scenario {name!r}; have {scenarios()}")
        self._scenario = name

    def url(self, path: str) -> str:
        """Absolute URL on this server, for readability in tests."""
        return self.origin + path

    def fixture_path(self, name: str) -> Path | None:
        """Where the overlay finds `name` for the current scenario, or None."""
        return self._find(name, self._scenario)

    # request log

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._log)

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def count(self, path: str) -> int:
        """Requests for `path`; a path without `?` matches any query string."""
        with self._lock:
            return sum(
                1 for r in self._log if _matches(path, urlsplit(r.path).path, r.path)
            )

    # programmable answers

    def override(
        self,
        path: str,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        repeat: int | None = 1,
        drip: tuple[int, float] | None = None,
    ) -> None:
        """Queue a forced answer for `path`, used `repeat` times (None: until cleared).

        A path without `?` matches any query. With `drip=(bytes_total, seconds_between)` the
        body (cycled, or dots) is sent one byte at a time. An explicit Content-Length header is
        sent as given, so a test can lie about the length.
        """
        if repeat is not None and repeat < 1:
            raise ValueError("repeat must be positive or None")
        if drip is not None:
            total, pause = drip
            if not 0 <= total <= MAX_DRIP_BYTES or not 0 <= pause <= MAX_DRIP_PAUSE:
                raise ValueError(f"drip must stay within {MAX_DRIP_BYTES} bytes, {MAX_DRIP_PAUSE}s")
        entry = _Override(status, dict(headers or {}), body, repeat, drip)
        with self._lock:
            self._overrides.append((path, entry))

    def clear_overrides(self) -> None:
        with self._lock:
            self._overrides.clear()

    def add_file(
        self,
        path: str,
        body: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Serve `body` at `path` (origin rewritten, gzip like Apache) until removed.

        With both `ETag` and `Last-Modified` among `headers`, conditional GETs are answered
        304 the way WordPress does (see `_not_modified`), whatever the body now is: that is
        how a test shows WordPress's site-wide validators hiding a late-approved comment.
        """
        all_headers = {"Content-Type": content_type, **(headers or {})}
        with self._lock:
            self._files[path] = _AddedFile(body, all_headers)

    def add_post(self, post: Post) -> None:
        """Serve `post` beside the captured one, under the same REST root (see `Post`)."""
        with self._lock:
            self._posts[post.post_id] = post

    def remove_file(self, path: str) -> None:
        with self._lock:
            self._files.pop(path, None)

    # internals, called from handler threads

    def _record(self, method: str, target: str, headers: list[tuple[str, str]]) -> dict[str, str]:
        lowered = lower_headers(headers)
        with self._lock:
            self._log.append(RecordedRequest(method, target, dict(lowered)))
        return lowered

    def _take_override(self, path: str, target: str) -> _Override | None:
        with self._lock:
            for index, (key, entry) in enumerate(self._overrides):
                if _matches(key, path, target):
                    if entry.remaining is not None:
                        entry.remaining -= 1
                        if entry.remaining <= 0:
                            del self._overrides[index]
                    return entry
        return None

    def _added_file(self, path: str, target: str) -> _AddedFile | None:
        with self._lock:
            for key, entry in self._files.items():
                if _matches(key, path, target):
                    return entry
        return None

    def _find(self, name: str, scenario: str) -> Path | None:
        for folder in reversed([s for s in scenarios() if s <= scenario]):
            candidate = WORDPRESS_DIR / folder / name
            if candidate.is_file():
                return candidate
        return None

    def _base_headers(self) -> Headers:
        """Date and Server as the capture had them, for answers WordPress never recorded."""
        not_modified = self._find(NOT_MODIFIED, self._scenario)
        if not_modified is None:
            return [("Server", "Apache/2.4.71 (Debian)")]
        _, _, headers = parse_headers_file(not_modified.read_text())
        return [(k, v) for k, v in headers if k.lower() in ("date", "server")]

    def _respond(self, target: str, request_headers: Mapping[str, str]) -> _Response:
        split = urlsplit(target)
        path, query = split.path, split.query
        forced = self._take_override(path, target)
        if forced is not None:
            return self._forced(forced)
        added = self._added_file(path, target)
        if added is not None:
            if self.conditional_get and self._not_modified(
                    list(added.headers.items()), request_headers):
                return self._304(list(added.headers.items()))
            return self._added(added)
        post = self._post_feed(path)
        if post is not None:
            return self._post_comments_feed(post, request_headers)
        if path.rstrip("/") == REST_COMMENTS_PATH:
            return self._rest_comments(query)
        if (one := _REST_ONE_COMMENT.fullmatch(path)) is not None:
            return self._rest_comment(int(one["id"]))
        name = ROUTES.get(path)
        if name == "comments.rss2.xml" and "paged" in parse_qs(query):
            name = "comments.rss2.paged2.xml"
        if name is not None:
            # Only 03 captured ?paged=2; WordPress answers it the same way in every scenario.
            fixture = self._find(name, self._scenario) or self._find(name, scenarios()[-1])
            if fixture is not None:
                return self._fixture(fixture, target, request_headers)
        if not path.endswith("/") and (path + "/" in ROUTES or path + "/" == REST_COMMENTS_PATH):
            return self._canonical_redirect(path + "/", query)
        return self._not_found()

    def _rewritten(self, headers: Mapping[str, str]) -> Headers:
        return [(k, rewrite_origin(v.encode(), self.origin).decode()) for k, v in headers.items()]

    def _forced(self, entry: _Override) -> _Response:
        headers = self._rewritten(entry.headers)
        explicit = any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers)
        if explicit:
            headers.append(("Connection", "close"))
        return _Response(
            status=entry.status,
            reason=_reason(entry.status),
            headers=[*self._base_headers(), *headers],
            body=rewrite_origin(entry.body, self.origin),
            drip=entry.drip,
            verbatim_length=explicit,
        )

    def _added(self, entry: _AddedFile) -> _Response:
        headers = self._rewritten(entry.headers)
        content_type = (get_header(headers, "Content-Type") or "").split(";")[0].strip().lower()
        compressible = content_type in DEFLATE_TYPES
        if compressible:
            headers.append(("Vary", "Accept-Encoding"))
        return _Response(
            200, "OK", [*self._base_headers(), *headers], rewrite_origin(entry.body, self.origin),
            compressible=compressible,
        )

    def _load(self, fixture: Path) -> tuple[int, str, Headers, bytes]:
        status, reason, headers = parse_headers_file(
            fixture.with_name(fixture.name + ".headers").read_text()
        )
        return status, reason, headers, fixture.read_bytes()

    def _fixture(
        self, fixture: Path, target: str, request_headers: Mapping[str, str]
    ) -> _Response:
        status, reason, headers, body = self._load(fixture)
        if self.conditional_get and self._not_modified(headers, request_headers):
            return self._304(headers)
        if self.portless_self_links and fixture.name in _PORTLESS_SELF_FILES:
            self_link = quote(f"http://{self.host}{target}", safe=":/?=&%#[]@!$'()*+,;").replace(
                "&", "&#038;"
            )
            body = _PORTLESS_SELF_LINK.sub(
                lambda m: m.group(1) + self_link.encode() + m.group(2), body
            )
        return self._from_capture(status, reason, headers, body)

    def _from_capture(self, status: int, reason: str, headers: Headers, body: bytes) -> _Response:
        vary = (get_header(headers, "Vary") or "").lower()
        kept = [
            (k, rewrite_origin(v.encode(), self.origin).decode())
            for k, v in without(headers, "Content-Length", "Transfer-Encoding")
        ]
        return _Response(
            status, reason, kept, rewrite_origin(body, self.origin),
            compressible="accept-encoding" in vary,
        )

    @staticmethod
    def _not_modified(headers: Headers, request_headers: Mapping[str, str]) -> bool:
        """WordPress's own test from WP::send_headers(), including its quirks."""
        etag = get_header(headers, "ETag")
        last_modified = get_header(headers, "Last-Modified")
        if etag is None or last_modified is None:
            return False
        client_etag = request_headers.get("if-none-match")
        client_since = (request_headers.get("if-modified-since") or "").strip()
        client_ts = (_http_timestamp(client_since) if client_since else 0.0) or 0.0
        wp_ts = _http_timestamp(last_modified) or 0.0
        newer = client_ts >= wp_ts
        same_etag = client_etag is not None and client_etag == etag
        if client_since and client_etag is not None:
            return newer and same_etag
        return newer or same_etag

    def _304(self, headers: Headers) -> _Response:
        template = self._find(NOT_MODIFIED, self._scenario)
        status, reason, base = 304, "Not Modified", self._base_headers()
        if template is not None:
            status, reason, base = parse_headers_file(template.read_text())
        replaced = {"last-modified": "Last-Modified", "etag": "ETag"}
        out = [(k, v) for k, v in base if k.lower() not in replaced]
        for name in replaced.values():
            value = get_header(headers, name)
            if value is not None:
                out.append((name, value))
        return _Response(status, reason, out, b"")

    def _rest_comments(self, query: str) -> _Response:
        """/wp-json/wp/v2/comments for post 4, from the latest scenario that captured it."""
        params = parse_qs(query, keep_blank_values=True)
        posts = [
            item
            for key, values in params.items()
            if key == "post" or re.fullmatch(r"post\[\d*\]", key)
            for value in values
            for item in value.split(",")
        ]
        group = self._rest_group()
        if group is None:
            return self._not_found()
        _folder, unpaged, pages, after_file = group
        template = unpaged or pages[min(pages)]
        _, _, template_headers, _ = self._load(template)
        page_text = params.get("page", ["1"])[0]
        if not page_text.isdigit() or int(page_text) < 1:
            return self._rest_error(template_headers, "rest_invalid_param",
                                    "Invalid parameter(s): page")
        page = int(page_text)
        if posts and "4" not in posts:
            return self._rest_list(template_headers, sorted(
                (item for item in self._post_items() if str(item["post"]) in posts),
                key=lambda item: int(str(item["id"]))))
        if params.get("orderby", [""])[0] == "id" and not posts:
            return self._rest_by_id(template_headers, unpaged, pages, params)
        after = params.get("after", [""])[0]
        if after:
            if after_file is not None and page == 1:
                status, reason, headers, body = self._load(after_file)
                return self._from_capture(status, reason, headers, body)
            return self._rest_after(template_headers, unpaged, pages, after, page)
        if pages and (page in pages or unpaged is None):
            if page not in pages:
                return self._rest_bad_page(template_headers)
            status, reason, headers, body = self._load(pages[page])
            return self._from_capture(status, reason, headers, body)
        if page > 1 or unpaged is None:
            return self._rest_bad_page(template_headers)
        status, reason, headers, body = self._load(unpaged)
        return self._from_capture(status, reason, headers, body)

    def _rest_comment(self, comment_id: int) -> _Response:
        """/wp-json/wp/v2/comments/<id>: one approved comment from the scenario's REST capture.

        WordPress answers 401 `rest_forbidden` for a comment an anonymous reader may not see
        (held, trashed) and 404 `rest_comment_invalid_id` for one that never existed; both
        look alike to a client that only wants published comments, so 404 serves for both.
        """
        group = self._rest_group()
        if group is None:
            return self._not_found()
        _folder, unpaged, pages, _after = group
        sources = [unpaged] if unpaged is not None else [pages[n] for n in sorted(pages)]
        _, _, template_headers, _ = self._load(sources[0])
        for source in sources:
            for item in json.loads(source.read_bytes()):
                if item.get("id") == comment_id:
                    headers = self._rest_headers(template_headers)
                    return self._from_capture(200, "OK", headers, _wp_json(item))
        body = _wp_json({"code": "rest_comment_invalid_id", "message": "Invalid comment ID.",
                         "data": {"status": 404}})
        return self._from_capture(404, "Not Found", self._rest_headers(template_headers), body)

    def _rest_group(self) -> tuple[str, Path | None, dict[int, Path], Path | None] | None:
        """The REST captures of one scenario only: mixing scenarios would serve stale pages."""
        for folder in reversed([s for s in scenarios() if s <= self._scenario]):
            base = WORDPRESS_DIR / folder
            unpaged = base / "rest-comments-post4.json"
            pages = {
                int(m.group(1)): p
                for p in base.glob("rest-comments-post4.page*.json")
                if (m := re.fullmatch(r"rest-comments-post4\.page(\d+)\.json", p.name))
            }
            after = base / "rest-comments-after.json"
            if unpaged.is_file() or pages:
                return (
                    folder,
                    unpaged if unpaged.is_file() else None,
                    pages,
                    after if after.is_file() else None,
                )
        return None

    def _rest_after(
        self,
        template_headers: Headers,
        unpaged: Path | None,
        pages: dict[int, Path],
        after: str,
        page: int,
    ) -> _Response:
        """Filter like WordPress when the scenario did not capture an `after=` answer."""
        try:
            moment = datetime.fromisoformat(after)
        except ValueError:
            return self._rest_error(template_headers, "rest_invalid_param",
                                    "Invalid parameter(s): after")
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        sources = [unpaged] if unpaged is not None else [pages[n] for n in sorted(pages)]
        items: list[dict[str, object]] = []
        for source in sources:
            items.extend(json.loads(source.read_bytes()))
        kept = [i for i in items if datetime.fromisoformat(str(i["date"])) > moment]
        if page > 1:
            return self._rest_bad_page(template_headers)
        return self._rest_list(template_headers, kept)

    def _rest_by_id(
        self,
        template_headers: Headers,
        unpaged: Path | None,
        pages: dict[int, Path],
        params: Mapping[str, list[str]],
    ) -> _Response:
        """Site-wide listing ordered by id, like WordPress: `per_page`, `order`, `_fields`.

        X-WP-Total counts every approved comment of the scenario plus `extra_rest_comments`
        (a test's late approval), as WordPress counts before paging.
        """
        sources = [unpaged] if unpaged is not None else [pages[n] for n in sorted(pages)]
        items: list[dict[str, object]] = []
        for source in sources:
            items.extend(json.loads(source.read_bytes()))
        items.extend(self.extra_rest_comments)
        items.extend(self._post_items())
        items.extend(self._uncaptured_comments({int(str(i["id"])) for i in items}))
        descending = params.get("order", ["desc"])[0] == "desc"
        items.sort(key=lambda item: int(str(item["id"])), reverse=descending)
        per_page_text = params.get("per_page", ["10"])[0]
        per_page = int(per_page_text) if per_page_text.isdigit() else 10
        fields = [f for f in params.get("_fields", [""])[0].split(",") if f]
        shown = [{k: v for k, v in item.items() if not fields or k in fields}
                 for item in items[:per_page]]
        headers = self._rest_headers(template_headers)
        pages_total = -(-len(items) // per_page) if per_page else 0
        headers += [("X-WP-Total", str(len(items))), ("X-WP-TotalPages", str(pages_total))]
        return self._from_capture(200, "OK", headers, _wp_json(shown))

    def _post_feed(self, path: str) -> Post | None:
        with self._lock:
            return next((p for p in self._posts.values() if path == p.path + "feed/atom/"),
                        None)

    def _post_items(self) -> list[dict[str, object]]:
        with self._lock:
            return [post.rest_item(c) for post in self._posts.values() for c in post.comments]

    def _post_comments_feed(self, post: Post, request_headers: Mapping[str, str]) -> _Response:
        """An added post's comment feed. Its validators are the site's, as WordPress's are
        its newest comment anywhere: the captured post feed's, or an added comment's date
        when that is newer (a comment made now moves them for every thread). Approving or
        importing a comment at an old date does not move them, so a conditional GET is
        answered 304."""
        captured = self._find("post-comments.atom.xml.headers", self._scenario)
        assert captured is not None
        _, _, site = parse_headers_file(captured.read_text())
        headers: Headers = [(name, value) for name, value in site
                            if name.lower() in ("date", "server", "last-modified", "etag")]
        headers = self._site_validators(headers)
        headers += [
            ("Link", f'<{FIXTURE_ORIGIN}/wp-json/>; rel="https://api.w.org/"'),
            ("Link", f"<{FIXTURE_ORIGIN}/wp-json/wp/v2/posts/{post.post_id}>; "
                     'rel="alternate"; type="application/json"'),
            ("Link", f"<{FIXTURE_ORIGIN}/?p={post.post_id}>; rel=shortlink"),
            ("Content-Type", "application/atom+xml; charset=UTF-8"),
        ]
        if self.conditional_get and self._not_modified(headers, request_headers):
            return self._304(headers)
        with self._lock:
            body = post.atom()
        return self._from_capture(200, "OK", [*headers, ("Vary", "Accept-Encoding")], body)

    def _site_validators(self, headers: Headers) -> Headers:
        """WordPress's `Last-Modified` (the newest comment's `date_gmt` anywhere) and its
        `ETag` (the md5 of that header, quoted), moved on by an added comment newer than
        the captured ones."""
        with self._lock:
            dates = [c.date for p in self._posts.values() for c in p.comments]
        captured = get_header(headers, "Last-Modified")
        newest = max((datetime.fromisoformat(d).replace(tzinfo=UTC) for d in dates),
                     default=None)
        if captured is None or newest is None \
                or newest.timestamp() <= (_http_timestamp(captured) or 0.0):
            return headers
        modified = format_datetime(newest, usegmt=True)
        return [*without(headers, "Last-Modified", "ETag"), ("Last-Modified", modified),
                ("ETag", f'"{hashlib.md5(modified.encode()).hexdigest()}"')]

    def _uncaptured_comments(self, listed: set[int]) -> list[dict[str, object]]:
        """Comments the scenario's own post feed shows but no REST capture lists.

        `02-markup-comment` captured only the post's comment feeds; WordPress would list its
        comment 5 too, and count it in X-WP-Total. Pingbacks are left out (REST lists
        `type=comment` only), as are comments the scenario's captures already list.
        """
        feed = self._find("post-comments.atom.xml", self._scenario)
        if feed is None or feed.parent.name != self._scenario:
            return []
        found: list[dict[str, object]] = []
        for block in re.findall(rb"<entry>(.*?)</entry>", feed.read_bytes(), re.S):
            ident = re.search(rb"<id>[^<]*#comment-(\d+)</id>", block)
            if ident is None or int(ident[1]) in listed or b"Another Blog" in block:
                continue
            found.append({"id": int(ident[1]), "post": 4})
        return found

    def _rest_list(self, template_headers: Headers, items: list[dict[str, object]]) -> _Response:
        headers = self._rest_headers(template_headers)
        headers += [("X-WP-Total", str(len(items))), ("X-WP-TotalPages", "1" if items else "0")]
        return self._from_capture(200, "OK", headers, _wp_json(items))

    def _rest_bad_page(self, template_headers: Headers) -> _Response:
        return self._rest_error(
            template_headers,
            "rest_comment_invalid_page_number",
            "The page number requested is larger than the number of pages available.",
        )

    def _rest_error(self, template_headers: Headers, code: str, message: str) -> _Response:
        body = _wp_json({"code": code, "message": message, "data": {"status": 400}})
        return self._from_capture(400, "Bad Request", self._rest_headers(template_headers), body)

    @staticmethod
    def _rest_headers(template_headers: Headers) -> Headers:
        headers = without(template_headers, "X-WP-Total", "X-WP-TotalPages", "Link")
        link = ("Link", f'<{FIXTURE_ORIGIN}/wp-json/>; rel="https://api.w.org/"')
        return [*headers[:2], link, *headers[2:]]

    def _canonical_redirect(self, path: str, query: str) -> _Response:
        """WordPress's redirect_canonical() adds the trailing slash with a 301."""
        location = self.origin + path + (f"?{query}" if query else "")
        headers = [
            *self._base_headers(),
            ("X-Redirect-By", "WordPress"),
            ("Location", location),
            ("Content-Type", "text/html; charset=UTF-8"),
        ]
        return _Response(301, "Moved Permanently", headers, b"")

    def _not_found(self) -> _Response:
        headers = [*self._base_headers(), ("Content-Type", "text/html; charset=UTF-8")]
        body = b"<!DOCTYPE html>\n<html><head><title>Page not found</title></head>" \
            b"<body><h1>Not Found</h1></body></html>\n"
        return _Response(404, "Not Found", headers, body)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
