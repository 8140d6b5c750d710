"""The fetch stage byte for byte: what goes on the wire, and what comes back from servers
that answer with exactly the bytes a test scripts.

`test_fetch.py` checks the fetcher against well-formed answers (`http.server`); these tests
pin the HTTP/1.1 details a client of our own has to get right as well: the request as sent,
keep-alive and its races, and the framing of malformed, truncated and slow answers. They go
through `Fetcher.fetch` only, so they hold whichever HTTP client sits behind it.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import socket
import zlib
from typing import Any

import pytest

from notifier import http1
from notifier.failures import FailureKind
from notifier.fetch import FEED_ACCEPT, Fetcher, FetchSettings, Withdrawn
from notifier.models import FetchResult
from tests.support.raw_http import RawHTTPServer, Reply, hang_up, response

BROKEN = "the server broke the HTTP protocol or closed the connection early"
OK = b"HTTP/1.1 200 OK\r\n"
LAST_MODIFIED = "Sat, 02 Nov 2013 10:00:00 GMT"
# Well under the 20 s default, so a test that fails by hanging fails quickly.
SETTINGS = FetchSettings(timeout=5.0, connect_timeout=2.0)


def fetch_in_turn(urls: list[str], settings: FetchSettings = SETTINGS, *, pause: float = 0.0,
                  etag: str | None = None, last_modified: str | None = None
                  ) -> list[FetchResult]:
    """Fetch `urls` one after the other through one fetcher (one connection pool),
    `pause` seconds apart."""

    async def main() -> list[FetchResult]:
        results = []
        async with Fetcher(settings) as fetcher:
            for number, url in enumerate(urls):
                if number and pause:
                    await asyncio.sleep(pause)
                results.append(await fetcher.fetch(url, etag=etag, last_modified=last_modified))
        return results

    return asyncio.run(main())


def fetch_one(url: str, settings: FetchSettings = SETTINGS, *, etag: str | None = None,
              last_modified: str | None = None) -> FetchResult:
    return fetch_in_turn([url], settings, etag=etag, last_modified=last_modified)[0]


def assert_broken(result: FetchResult) -> None:
    """A malformed answer: no status, no body, the protocol named as the cause."""
    assert (result.status, result.body, result.error) == (None, None, BROKEN)
    assert result.error_kind is FailureKind.NETWORK


def then_next(reply: Reply) -> RawHTTPServer:
    """A server that answers /1 with `reply` (every time: a client may try again) and /2
    with a well-formed "next": whatever `reply` left on its connection must not leak into
    the answer to /2."""
    return RawHTTPServer(routes={"/1": reply, "/2": response(body=b"next")})


# the request


def test_request_line_host_and_feed_headers_are_sent_once_each() -> None:
    with RawHTTPServer([response(body=b"<rss/>")]) as server:
        fetch_one(server.url("/feed/?paged=2&orderby=date"))
        [request] = server.requests
    assert request.request_line == b"GET /feed/?paged=2&orderby=date HTTP/1.1"
    assert request.header("host") == f"127.0.0.1:{server.port}"  # not the default port
    user_agent = request.header("user-agent")
    assert user_agent is not None and user_agent.startswith("notifier/")
    assert request.header("accept") == FEED_ACCEPT
    assert request.header("accept-encoding") == "gzip, deflate"
    assert request.header("if-none-match") is None
    assert request.header("if-modified-since") is None
    assert request.header("authorization") is None
    # A GET has no body: announcing one would make a server wait for it.
    assert request.header("transfer-encoding") is None
    assert request.header("content-length") in (None, "0")


def test_a_configured_user_agent_is_sent_as_is() -> None:
    agent = "notifier/1 (+https://blog.example/about-this-bot; ops@blog.example)"
    with RawHTTPServer([response(body=b"<rss/>")]) as server:
        fetch_one(server.url("/feed/"), FetchSettings(timeout=5.0, user_agent=agent))
        [request] = server.requests
    assert request.header("user-agent") == agent


@pytest.mark.parametrize(
    ("path", "target"),
    [("", b"/"), ("?x=1", b"/?x=1"), ("/feed#comments", b"/feed"),
     ("/feed?a=1#c", b"/feed?a=1")],
    ids=["no-path", "query-only", "fragment", "query-and-fragment"],
)
def test_the_request_target_is_the_path_and_query_only(path: str, target: bytes) -> None:
    with RawHTTPServer([response(body=b"<rss/>")]) as server:
        assert fetch_one(server.origin + path).ok
        [request] = server.requests
    assert request.request_line == b"GET " + target + b" HTTP/1.1"


def test_validators_go_back_exactly_as_stored() -> None:
    etag = 'W/"5f2b-1a, with a comma and  two spaces"'
    with RawHTTPServer([response("304 Not Modified", length=False)]) as server:
        result = fetch_one(server.url("/feed/"), etag=etag, last_modified=LAST_MODIFIED)
        [request] = server.requests
    assert result.status == 304 and result.error is None
    assert request.header("if-none-match") == etag
    assert request.header("if-modified-since") == LAST_MODIFIED
    assert f"If-None-Match: {etag}\r\n".lower().encode() in request.raw.lower()


@pytest.mark.parametrize(
    "raw_etag",
    [
        b'"caf\xc3\xa9"',  # UTF-8
        b'"caf\xe9"',  # Latin-1: read as one character each, sent back as the same bytes
    ],
    ids=["utf-8", "latin-1"],
)
def test_a_validator_with_non_ascii_bytes_goes_back_byte_for_byte(raw_etag: bytes) -> None:
    """Servers send ETag bytes outside ASCII now and then; conditional GET works only if
    the same bytes come back, and the poll can only record a validator that is text."""
    first = Reply(OK + b"ETag: " + raw_etag + b"\r\nContent-Length: 2\r\n\r\nok")
    with RawHTTPServer([first, response("304 Not Modified", length=False)]) as server:
        async def main() -> tuple[FetchResult, FetchResult]:
            async with Fetcher(SETTINGS) as fetcher:
                one = await fetcher.fetch(server.url("/feed/"))
                two = await fetcher.fetch(server.url("/feed/"), etag=one.etag)
                return one, two

        one, two = asyncio.run(main())
        sent = server.requests[1].raw
    assert one.etag is not None
    one.etag.encode("utf-8")  # storable text: no lone surrogates
    assert b"\r\nIf-None-Match: " + raw_etag + b"\r\n" in sent
    assert two.status == 304


@pytest.mark.parametrize("etag", ['"\u65e5\u672c"', '"\u20ac5"', 'W/"caf\u00e9-\u2014"'],
                         ids=["cjk", "euro", "latin-1-and-beyond"])
def test_a_validator_stored_as_utf_8_text_goes_back_as_its_utf_8_bytes(etag: str) -> None:
    """aiohttp read header bytes as UTF-8, so validators stored before the own client
    hold characters beyond Latin-1. Sent back as the UTF-8 bytes the server sent (as
    aiohttp did), the feed still answers 304; refused as unsendable, the poll failed with
    "invalid request" every time, and a failed poll keeps its validators."""
    with RawHTTPServer([response("304 Not Modified", length=False)]) as server:
        result = fetch_one(server.url("/feed/"), etag=etag)
        [request] = server.requests
    assert (result.status, result.error, result.etag) == (304, None, etag)
    assert b"\r\nIf-None-Match: " + etag.encode() + b"\r\n" in request.raw


def test_a_path_with_a_space_or_non_ascii_letters_is_sent_percent_encoded() -> None:
    with RawHTTPServer([response(body=b"<rss/>")]) as server:
        result = fetch_one(server.url("/blog/my posts/café/feed?tag=ü&lang=fr"))
        [request] = server.requests
    assert result.ok
    assert request.request_line == b"GET /blog/my%20posts/caf%C3%A9/feed?tag=%C3%BC&lang=fr " \
        b"HTTP/1.1"


def test_an_already_encoded_url_is_sent_unchanged() -> None:
    """Feed URLs are stored encoded; encoding them again (%20 -> %2520) or decoding an
    escaped slash or plus would ask the server for another resource."""
    path = "/a%20b/%C3%A9/x%2Fy;v=1?q=a+b&r=%20c&s=%2B&t=%26"
    with RawHTTPServer([response(body=b"<rss/>")]) as server:
        fetch_one(server.url(path))
        [request] = server.requests
    assert request.request_line == f"GET {path} HTTP/1.1".encode()


@pytest.mark.parametrize(
    ("path", "target"),
    [("/100%/feed", b"/100%25/feed"), ("/feed?off=50%&x=%zz", b"/feed?off=50%25&x=%25zz"),
     ("/a%2/b%", b"/a%252/b%25")],
    ids=["path", "query", "one-hex-digit"],
)
def test_a_percent_sign_that_starts_no_escape_is_sent_encoded(path: str,
                                                              target: bytes) -> None:
    """A '%' not followed by two hex digits is not an escape: sent raw, the target is
    malformed and nginx and Apache answer 400 (aiohttp sent it as %25, as yarl does)."""
    with RawHTTPServer([response(body=b"<rss/>")]) as server:
        assert fetch_one(server.url(path)).ok
        [request] = server.requests
    assert request.request_line == b"GET " + target + b" HTTP/1.1"


@pytest.mark.parametrize(
    ("host", "ascii_host"),
    [("straße.example", "xn--strae-oqa.example"), ("σίσυφος.example", "xn--kxa6ajbbmh.example"),
     ("bücher.example", "xn--bcher-kva.example")],
    ids=["sharp-s", "final-sigma", "umlaut"],
)
def test_an_international_host_is_asked_by_its_idna_2008_name(
        host: str, ascii_host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """IDNA 2003 (Python's "idna" codec) maps ß to "ss" and ς to σ: straße.example would be
    fetched from strasse.example, another domain and maybe another owner. Browsers and
    aiohttp (yarl) use IDNA 2008 with UTS 46. The public DNS is played by loopback."""
    asked: list[str] = []

    async def loopback(name: str, port: int, block_private: bool = False) -> list[Any]:
        asked.append(name)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(http1, "resolve", loopback)
    with RawHTTPServer([response(body=b"<rss/>")]) as server:
        assert fetch_one(f"http://{host}:{server.port}/feed").ok
        [request] = server.requests
    assert asked == [ascii_host]
    assert request.header("host") == f"{ascii_host}:{server.port}"


def test_credentials_in_the_url_become_basic_auth_and_stay_out_of_the_request_line() -> None:
    with RawHTTPServer([response(body=b"<rss/>")]) as server:
        url = server.url("/private/feed?key=1").replace("://", "://read%20er:p%40ss:w@")
        result = fetch_one(url)
        [request] = server.requests
    assert result.ok
    assert request.request_line == b"GET /private/feed?key=1 HTTP/1.1"
    assert request.header("authorization") == \
        "Basic " + base64.b64encode(b"read er:p@ss:w").decode()
    assert request.header("host") == f"127.0.0.1:{server.port}"
    assert b"p%40ss" not in request.raw and b"p@ss" not in request.raw


@pytest.mark.parametrize(
    "validators",
    [
        {"etag": '"v1"\r\nX-Injected: 1'},
        {"etag": '"v1"\nX-Injected: 1'},
        {"etag": '"v1"\rX-Injected: 1'},
        {"etag": '"v1"\r\n\r\nGET /smuggled HTTP/1.1\r\nX-Injected: 1'},
        {"last_modified": f"{LAST_MODIFIED}\r\nX-Injected: 1"},
        {"etag": '"v1"\x00X-Injected: 1'},
    ],
    ids=["crlf", "lf", "cr", "second-request", "last-modified", "nul"],
)
def test_a_stored_validator_with_line_breaks_never_injects_a_header(
        validators: dict[str, str]) -> None:
    """A hostile server may have sent such a validator earlier (before values were cleaned
    on arrival). It must never be sent raw, which would add a header or a request; it is
    dropped, and the feed is asked in full: it keeps working, and brings a clean one."""
    with RawHTTPServer([response(body=b"<rss/>")] * 2) as server:
        result = fetch_one(server.url("/feed/"), etag=validators.get("etag"),
                           last_modified=validators.get("last_modified"))
        requests = server.requests
    for request in requests:
        assert request.request_line == b"GET /feed/ HTTP/1.1"
        assert not any(b"\r" in line or b"\n" in line or b"\0" in line
                       for line in request.lines)
        assert "x-injected" not in dict(request.headers)
    assert len(requests) == 1
    assert requests[0].header("if-none-match") is None
    assert requests[0].header("if-modified-since") is None
    assert result.ok and result.body == b"<rss/>"


def test_a_folded_validator_comes_back_on_one_line() -> None:
    """obs-fold (a header continued on the next line) is replaced by a space (RFC 9112
    5.2), so a validator stored from it cannot carry a line break into the next request."""
    folded = Reply(OK + b'ETag: "a\r\n X-Injected: b"\r\nContent-Length: 2\r\n\r\nok')
    with RawHTTPServer([folded, response("304 Not Modified", length=False)]) as server:
        async def main() -> tuple[FetchResult, FetchResult]:
            async with Fetcher(SETTINGS) as fetcher:
                one = await fetcher.fetch(server.url("/feed/"))
                return one, await fetcher.fetch(server.url("/feed/"), etag=one.etag)

        one, two = asyncio.run(main())
        requests = server.requests
    if one.status is None:  # refusing the fold is as safe
        assert one.error == BROKEN
        return
    assert one.etag is not None and "\r" not in one.etag and "\n" not in one.etag
    assert two.status == 304
    assert "x-injected" not in dict(requests[1].headers)
    assert requests[1].header("if-none-match") == one.etag


@pytest.mark.parametrize(
    "header",
    [b'ETag: "a\rX-Injected: b"', b'ETag: "a\x00b"',
     b"Last-Modified: Sat, 02 Nov 2013\r10:00:00 GMT", b"Last-Modified: Sat\x00"],
    ids=["cr-in-etag", "nul-in-etag", "cr-in-last-modified", "nul-in-last-modified"],
)
def test_a_validator_with_a_control_character_is_refused_or_cleaned(header: bytes) -> None:
    """RFC 9110 5.5: a CR or NUL inside a field value is refused or replaced by a space.
    Kept as sent, it would be stored (PostgreSQL refuses NUL in text), then refused by
    the request writer on every later poll: the feed would fail until someone acts."""
    reply = Reply(OK + header + b"\r\nContent-Length: 2\r\n\r\nok")
    with RawHTTPServer(routes={"/1": reply, "/2": response(body=b"next")}) as server:
        async def main() -> tuple[FetchResult, FetchResult | None, FetchResult]:
            async with Fetcher(SETTINGS) as fetcher:
                first = await fetcher.fetch(server.url("/1"))
                again = None
                if first.status is not None:  # validators taken: they must be usable
                    again = await fetcher.fetch(server.url("/1"), etag=first.etag,
                                                last_modified=first.last_modified)
                return first, again, await fetcher.fetch(server.url("/2"))

        first, again, second = asyncio.run(main())
    if first.status is None:
        assert first.error == BROKEN
    else:
        for value in (first.etag, first.last_modified):
            assert value is None or ("\r" not in value and "\0" not in value)
        assert again is not None and (again.status, again.error) == (200, None)
    assert second.body == b"next"


# keep-alive


def test_fetches_in_turn_to_one_host_share_one_connection() -> None:
    with RawHTTPServer([response(body=b"one"), response(body=b"two"),
                        response(body=b"three")]) as server:
        results = fetch_in_turn([server.url("/1"), server.url("/2"), server.url("/3")])
        requests = server.requests
    assert [r.body for r in results] == [b"one", b"two", b"three"]
    assert server.connections == 1
    assert [(r.connection, r.request_line) for r in requests] == [
        (1, b"GET /1 HTTP/1.1"), (1, b"GET /2 HTTP/1.1"), (1, b"GET /3 HTTP/1.1")]


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_a_connection_the_server_closed_while_idle_is_replaced(reset: bool) -> None:
    # Closed a moment after the answer, once the client has put the connection back.
    first = Reply(response(body=b"one").raw, close=True, reset=reset, stall=0.05)
    with RawHTTPServer([first, response(body=b"two")]) as server:
        results = fetch_in_turn([server.url("/1"), server.url("/2")], pause=0.2)
        requests = server.requests
    assert [(r.status, r.body, r.error) for r in results] == [(200, b"one", None),
                                                             (200, b"two", None)]
    assert server.connections == 2
    assert [r.connection for r in requests] == [1, 2]


def test_a_request_lost_on_a_reused_connection_is_sent_again_on_a_fresh_one() -> None:
    """The server's idle timeout fires as the request goes out: the request lands on a
    connection that closes without an answer. A GET may be retried (RFC 9112 9.3.1)."""
    with RawHTTPServer([response(body=b"one"), hang_up(), response(body=b"two")]) as server:
        results = fetch_in_turn([server.url("/1"), server.url("/2")])
        requests = server.requests
    assert [(r.status, r.body, r.error) for r in results] == [(200, b"one", None),
                                                             (200, b"two", None)]
    assert [(r.connection, r.request_line) for r in requests] == [
        (1, b"GET /1 HTTP/1.1"), (1, b"GET /2 HTTP/1.1"), (2, b"GET /2 HTTP/1.1")]


def test_a_connection_left_unused_by_a_request_called_off_is_retried_like_a_reused_one(
        ) -> None:
    """A request called off once its connection was open leaves the connection idle in
    the pool; the server may close it as the next request goes out, as with any idle
    connection, and that request is sent again on a fresh one."""
    with RawHTTPServer([hang_up(), response(body=b"two")]) as server:
        async def main() -> FetchResult:
            async with Fetcher(SETTINGS) as fetcher:
                proceed = iter([True, False]).__next__  # yes for the slot, then no
                with pytest.raises(Withdrawn):
                    await fetcher.fetch(server.url("/1"), proceed=proceed)
                return await fetcher.fetch(server.url("/2"))

        result = asyncio.run(main())
        requests = server.requests
    assert (result.status, result.body, result.error) == (200, b"two", None)
    assert [(r.connection, r.request_line) for r in requests] == [
        (1, b"GET /2 HTTP/1.1"), (2, b"GET /2 HTTP/1.1")]


def test_the_retry_is_made_once_only() -> None:
    with RawHTTPServer([response(body=b"one"), hang_up(), hang_up(), hang_up(),
                        response(body=b"never")]) as server:
        results = fetch_in_turn([server.url("/1"), server.url("/2")])
        requests = server.requests
    assert results[0].body == b"one"
    assert_broken(results[1])
    assert [r.request_line for r in requests].count(b"GET /2 HTTP/1.1") == 2


def test_an_answer_cut_off_on_a_reused_connection_is_an_error_and_not_retried() -> None:
    """Part of the answer came: the server broke it, the connection was not stale."""
    cut = Reply(OK + b"Content-Length: 10\r\n\r\nab", close=True)
    with RawHTTPServer([response(body=b"one"), cut, response(body=b"x")]) as server:
        results = fetch_in_turn([server.url("/1"), server.url("/2")])
        requests = server.requests
    assert_broken(results[1])
    assert len(requests) == 2


@pytest.mark.parametrize("cut_by", ["fetch-timeout", "caller-cancel"])
def test_a_connection_given_up_on_in_the_middle_of_an_answer_is_not_reused(
        cut_by: str) -> None:
    """The rest of a late answer would otherwise be read as the answer to the next
    request, to this feed or another one on the same host."""
    late = OK + b'ETag: "late"\r\nContent-Length: 15\r\n\r\n<rss>LATE</rss>'
    # Half of the head, then the rest 0.3 s later: after the fetch gave up at 0.2 s.
    slow = Reply(late, drip=((len(late) + 1) // 2, 0.3))
    with RawHTTPServer([slow, response(body=b"next")]) as server:
        async def main() -> FetchResult:
            async with Fetcher(FetchSettings(timeout=0.2 if cut_by == "fetch-timeout"
                                             else 5.0)) as fetcher:
                first = fetcher.fetch(server.url("/1"))
                if cut_by == "fetch-timeout":
                    assert (await first).error == "timed out after 0.2 s"
                else:
                    with pytest.raises(TimeoutError):
                        await asyncio.wait_for(first, 0.2)
                await asyncio.sleep(0.4)  # the late answer has arrived by now
                return await fetcher.fetch(server.url("/2"))

        second = asyncio.run(main())
    assert (second.status, second.body, second.etag) == (200, b"next", None)
    assert server.connections == 2


@pytest.mark.parametrize(
    ("head", "connections"),
    [
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n", 2),
        (b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, CLOSE\r\nContent-Length: 2\r\n\r\n", 2),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n", 2),
        (b"HTTP/1.0 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n", 2),
        # HTTP/1.0 with "Connection: keep-alive" may be reused or not; either is fine.
    ],
    ids=["close", "close-in-a-list", "http-1.0", "http-1.0-close"],
)
def test_a_connection_is_reused_only_when_the_answer_allows_it(
        head: bytes, connections: int) -> None:
    # The server keeps the connection open either way: a client that reused it against the
    # answer's word would be the one to blame for what follows.
    with then_next(Reply(head + b"ok")) as server:
        results = fetch_in_turn([server.url("/1"), server.url("/2")])
    assert [r.body for r in results] == [b"ok", b"next"]
    assert server.connections == connections


# response framing


def test_a_chunked_body_with_extensions_and_trailers() -> None:
    body = (b'5;name=value\r\nhello\r\n6;quoted="a;b"\r\n world\r\n0\r\n'
            b"X-Checksum: abc\r\nX-Other: 1\r\n\r\n")
    with then_next(Reply(OK + b"Transfer-Encoding: chunked\r\n\r\n" + body)) as server:
        results = fetch_in_turn([server.url("/1"), server.url("/2")])
    assert [r.body for r in results] == [b"hello world", b"next"]
    assert server.connections == 1  # the trailers were read to their end


@pytest.mark.parametrize("connection_header", [b"Connection: close\r\n", b""],
                         ids=["connection-close", "nothing-said"])
def test_a_body_without_length_ends_with_the_connection(connection_header: bytes) -> None:
    head = OK + b"Content-Type: application/rss+xml\r\n" + connection_header + b"\r\n"
    with then_next(Reply(head + b"<rss>until the end</rss>", close=True)) as server:
        results = fetch_in_turn([server.url("/1"), server.url("/2")])
    assert [(r.status, r.body) for r in results] == [(200, b"<rss>until the end</rss>"),
                                                     (200, b"next")]
    assert server.connections == 2


@pytest.mark.parametrize(
    "head",
    [
        b'HTTP/1.1 304 Not Modified\r\nETag: "e2"\r\n\r\n',
        # The length of the body a 200 would have had: a 304 has none all the same.
        b'HTTP/1.1 304 Not Modified\r\nETag: "e2"\r\nContent-Length: 1234\r\n\r\n',
        b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
    ],
    ids=["304", "304-content-length", "304-chunked", "204", "204-content-length"],
)
def test_an_answer_without_body_leaves_the_connection_ready(head: bytes) -> None:
    with then_next(Reply(head)) as server:
        first, second = fetch_in_turn([server.url("/1"), server.url("/2")], etag='"e1"')
    assert first.error is None and not first.body
    if first.status == 304:
        assert first.etag == ('"e2"' if b"ETag" in head else '"e1"')
    else:
        assert first.status == 204
    assert (second.status, second.body) == (200, b"next")
    assert server.connections == 1


@pytest.mark.parametrize(
    "interim",
    [
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n",
    ],
    ids=["100", "103", "100-then-102"],
)
def test_interim_answers_before_the_real_one_are_skipped(interim: bytes) -> None:
    final = OK + b'ETag: "real"\r\nContent-Length: 6\r\n\r\n<rss/>'
    with then_next(Reply(interim + final)) as server:
        first, second = fetch_in_turn([server.url("/1"), server.url("/2")])
    assert (first.status, first.body, first.etag) == (200, b"<rss/>", '"real"')
    assert "link" not in first.headers  # the hint's headers are not the answer's
    assert second.body == b"next" and server.connections == 1


def test_interim_answers_without_end_are_cut_off_before_the_time_limit() -> None:
    """A server that answers 100 Continue over and over never sends the real answer; the
    fetch gives up after a few, long before its 5 s limit."""
    with RawHTTPServer([Reply(b"HTTP/1.1 100 Continue\r\n\r\n" * 50, stall=4.0)]) as server:
        result = fetch_one(server.url("/feed/"))
    assert result.status is None and result.error == BROKEN
    assert result.elapsed < 2.0


def test_gzip_over_chunked_with_the_gzip_stream_split_across_chunks() -> None:
    feed = b"<rss>" + b"<item>comment</item>" * 500 + b"</rss>"
    packed = gzip.compress(feed)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(packed[i:i + 100]), packed[i:i + 100])
                      for i in range(0, len(packed), 100))
    head = OK + b"Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
    with then_next(Reply(head + chunks + b"0\r\n\r\n")) as server:
        results = fetch_in_turn([server.url("/1"), server.url("/2")])
    assert [r.body for r in results] == [feed, b"next"]
    assert server.connections == 1


def test_zlib_wrapped_deflate_is_decoded() -> None:
    # "deflate" as RFC 9110 defines it (zlib format); test_fetch.py covers the raw
    # deflate that some servers send instead.
    feed = b"<rss>" + b"<item>x</item>" * 100 + b"</rss>"
    reply = response(body=zlib.compress(feed), headers=[("Content-Encoding", "deflate")])
    with RawHTTPServer([reply]) as server:
        assert fetch_one(server.url("/feed")).body == feed


def test_transfer_encoding_overrides_content_length() -> None:
    """RFC 9112 6.3: chunked wins over Content-Length (and the message "ought to be
    handled as an error"; aiohttp refuses it). Either is safe; reading 3 bytes by the
    Content-Length and the rest as the next answer would not be."""
    head = OK + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
    with then_next(Reply(head + b"5\r\nhello\r\n0\r\n\r\n")) as server:
        first, second = fetch_in_turn([server.url("/1"), server.url("/2")])
    if first.status is None:
        assert_broken(first)
    else:
        assert (first.status, first.body) == (200, b"hello")
    assert (second.status, second.body) == (200, b"next")


@pytest.mark.parametrize(
    "head",
    [
        b"Content-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
        b"Content-Length: 2, 3\r\n\r\nabc",
        b"Content-Length: -1\r\n\r\nok",
        b"Content-Length: +2\r\n\r\nok",
        b"Content-Length: 0x2\r\n\r\nok",
        b"Content-Length: \xb2\r\n\r\nok",  # Latin-1's superscript two: a digit to str
        b"Content-Length: " + b"9" * 5000 + b"\r\n\r\nok",  # past int()'s 4300 digits
    ],
    ids=["two-fields", "a-list", "negative", "plus-sign", "hex", "superscript-two",
         "5000-digits"],
)
def test_a_content_length_that_does_not_say_one_length_is_an_error(head: bytes) -> None:
    """RFC 9112 6.3: an invalid Content-Length is unrecoverable framing. Picking one of two
    lengths would read the rest of the body as the next answer (aiohttp's pure-Python
    parser takes the first; its C parser refuses)."""
    with then_next(Reply(OK + head)) as server:
        first, second = fetch_in_turn([server.url("/1"), server.url("/2")])
    assert_broken(first)
    assert (second.status, second.body) == (200, b"next")


@pytest.mark.parametrize(
    "reply",
    [
        Reply(OK + b"Content-Length: 100\r\n\r\n<rss><item>", close=True),
        Reply(OK + b"Transfer-Encoding: chunked\r\n\r\n64\r\n<rss><item>", close=True),
        Reply(OK + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", close=True),
        # The pause lets the part that was sent arrive before the reset.
        Reply(OK + b"Content-Length: 100\r\n\r\n<rss><item>", reset=True, stall=0.2),
    ],
    ids=["content-length", "inside-a-chunk", "before-the-last-chunk", "reset"],
)
def test_a_body_cut_short_by_the_server_is_an_error(reply: Reply) -> None:
    with then_next(reply) as server:
        first, second = fetch_in_turn([server.url("/1"), server.url("/2")])
    if reply.reset and first.error == "connection reset by the server":
        assert first.error_kind is FailureKind.NETWORK and first.status is None
    else:
        assert_broken(first)
    assert (second.status, second.body) == (200, b"next")


@pytest.mark.parametrize(
    "garbage",
    [
        b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n",
        b"<?xml version='1.0'?><rss></rss>",  # HTTP/0.9: a body without a status line
        b"HTTP/1.1 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",  # a TLS record: https on an http port
    ],
    ids=["ssh", "http-0.9", "no-code", "four-digits", "two-digits", "tls"],
)
def test_garbage_instead_of_a_status_line_is_an_error(garbage: bytes) -> None:
    with then_next(Reply(garbage, close=True)) as server:
        first, second = fetch_in_turn([server.url("/1"), server.url("/2")])
    assert_broken(first)
    assert second.body == b"next"


def test_a_header_line_without_a_colon_is_an_error() -> None:
    with then_next(Reply(OK + b"Content-Length: 2\r\nThis line has no colon\r\n\r\nok")) \
            as server:
        first, second = fetch_in_turn([server.url("/1"), server.url("/2")])
    assert_broken(first)
    assert second.body == b"next"


def test_header_names_are_read_whatever_their_case() -> None:
    packed = gzip.compress(b"<rss/>")
    head = (OK + b'eTaG: "mixed"\r\nLAST-MODIFIED: ' + LAST_MODIFIED.encode()
            + b"\r\ncontent-TYPE: application/rss+xml\r\nContent-encoding: GZIP\r\n"
            b"tRaNsFeR-eNcOdInG: ChUnKeD\r\n\r\n")
    body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(packed), packed)
    with then_next(Reply(head + body)) as server:
        first, second = fetch_in_turn([server.url("/1"), server.url("/2")])
    assert (first.status, first.body) == (200, b"<rss/>")
    assert (first.etag, first.last_modified) == ('"mixed"', LAST_MODIFIED)
    assert first.headers["content-type"] == "application/rss+xml"
    assert second.body == b"next" and server.connections == 1


def test_repeated_headers_are_joined_in_order_whatever_their_case() -> None:
    head = (OK + b'Link: <https://blog.example/wp-json/>; rel="https://api.w.org/"\r\n'
            b"Content-Length: 2\r\n"
            b'link: <https://blog.example/?p=1>; rel="shortlink"\r\n\r\nok')
    with RawHTTPServer([Reply(head)]) as server:
        result = fetch_one(server.url("/feed"))
    assert result.headers["link"] == ('<https://blog.example/wp-json/>; rel="https://api.w.org/"'
                                      ', <https://blog.example/?p=1>; rel="shortlink"')


@pytest.mark.parametrize(
    ("status_line", "status", "error"),
    [
        (b"HTTP/1.1 200", 200, None),
        (b"HTTP/1.1 200 ", 200, None),
        (b"HTTP/1.1 200 Everything Is Fine Here", 200, None),
        (b"HTTP/1.1 404", 404, "HTTP 404 Not Found"),
    ],
    ids=["no-reason", "empty-reason", "other-reason", "404-no-reason"],
)
def test_the_reason_phrase_is_optional_and_ignored(status_line: bytes, status: int,
                                                   error: str | None) -> None:
    with then_next(Reply(status_line + b"\r\nContent-Length: 4\r\n\r\nbody")) as server:
        first, second = fetch_in_turn([server.url("/1"), server.url("/2")])
    assert (first.status, first.error) == (status, error)
    assert first.body == (b"body" if error is None else None)
    assert second.body == b"next" and server.connections == 1


def test_bare_lf_line_ends_are_read() -> None:
    """RFC 9112 2.2 lets a recipient accept LF alone; old scripts write it, and such feeds
    are read today (not under PYTHONASYNCIODEBUG or `-X dev`, where aiohttp is strict)."""
    with then_next(Reply(b'HTTP/1.1 200 OK\nETag: "lf"\nContent-Length: 2\n\nok')) as server:
        first, second = fetch_in_turn([server.url("/1"), server.url("/2")])
    assert (first.status, first.body, first.etag) == (200, b"ok", '"lf"')
    assert second.body == b"next"


def test_ordinary_large_headers_are_read() -> None:
    """Many headers (CSP, cookies, tracing) and one long one: what servers send in fact."""
    many = b"".join(b"X-Header-%d: value %d\r\n" % (n, n) for n in range(100))
    cookie = b"Set-Cookie: session=" + b"c" * 8000 + b"\r\n"
    reply = Reply(OK + many + cookie + b"Content-Length: 6\r\n\r\n<rss/>")
    with RawHTTPServer([reply]) as server:
        result = fetch_one(server.url("/feed"))
    assert (result.status, result.body) == (200, b"<rss/>")
    assert result.headers["x-header-99"] == "value 99"


@pytest.mark.parametrize(
    "head",
    [
        b"X-Huge: " + b"a" * (1 << 20),
        b"".join(b"X-Many-%06d: v\r\n" % n for n in range(1 << 16)),
    ],
    ids=["one-line", "many-lines"],
)
def test_a_mebibyte_of_headers_is_an_error_not_a_wait(head: bytes) -> None:
    """The head never ends (the server stalls after 1 MiB): a client that kept reading until
    the blank line would hold it all and then time out, instead of stopping at a limit."""
    with RawHTTPServer([Reply(OK + head, stall=4.0)]) as server:
        result = fetch_one(server.url("/feed"), FetchSettings(timeout=3.0))
    assert_broken(result)


@pytest.mark.parametrize(
    "chunks",
    [
        b"zz\r\nhello\r\n0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
        b"ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXX0\r\n\r\n",  # no CRLF after the chunk's data
    ],
    ids=["not-hex", "0x-prefix", "negative", "overflow", "no-crlf-after-data"],
)
def test_a_malformed_chunk_is_an_error(chunks: bytes) -> None:
    with then_next(Reply(OK + b"Transfer-Encoding: chunked\r\n\r\n" + chunks)) as server:
        first, second = fetch_in_turn([server.url("/1"), server.url("/2")])
    assert_broken(first)
    assert second.body == b"next"


@pytest.mark.parametrize(
    "raw",
    [OK + b"Content-Length: 100\r\n\r\n<rss>", OK + b"Content-Length: 100\r\n", b""],
    ids=["after-part-of-the-body", "inside-the-head", "before-anything"],
)
def test_a_server_that_stalls_is_cut_off_by_the_total_timeout(raw: bytes) -> None:
    with RawHTTPServer([Reply(raw, stall=4.0)]) as server:
        result = fetch_one(server.url("/feed"), FetchSettings(timeout=0.3))
    assert (result.status, result.body) == (None, None)
    assert result.error == "timed out after 0.3 s"
    assert result.error_kind is FailureKind.TIMEOUT


def test_an_answer_arriving_a_byte_at_a_time_reads_the_same() -> None:
    raw = (OK + b'ETag: "drip"\r\nTransfer-Encoding: chunked\r\n\r\n'
           b"3;x=y\r\n<rs\r\n3\r\ns/>\r\n0\r\n\r\n")
    with then_next(Reply(raw, drip=(1, 0.001))) as server:
        first, second = fetch_in_turn([server.url("/1"), server.url("/2")])
    assert (first.status, first.body, first.etag) == (200, b"<rss/>", '"drip"')
    assert second.body == b"next" and server.connections == 1


def test_bytes_after_the_end_of_an_answer_never_become_the_next_answer() -> None:
    """A server that writes more than its Content-Length: the surplus is a second answer
    nobody asked for, and must not be taken for the answer to the next request."""
    smuggled = OK + b"Content-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL"
    with then_next(Reply(smuggled)) as server:
        first, second = fetch_in_turn([server.url("/1"), server.url("/2")])
    assert first.body == b"ok"
    assert (second.status, second.body) == (200, b"next")


def test_whitespace_around_header_values_is_not_part_of_them() -> None:
    head = (OK + b'ETag: \t "spaced" \t\r\nLast-Modified:' + LAST_MODIFIED.encode()
            + b"   \r\nContent-Length:  2 \r\n\r\nok")
    with then_next(Reply(head)) as server:
        first, second = fetch_in_turn([server.url("/1"), server.url("/2")])
    assert (first.body, first.etag, first.last_modified) == (b"ok", '"spaced"', LAST_MODIFIED)
    assert second.body == b"next"


# the size cap, whatever the framing


@pytest.mark.parametrize(
    "framing",
    [b"Connection: close\r\n\r\n", b"Transfer-Encoding: chunked\r\n\r\n"],
    ids=["until-close", "chunked"],
)
def test_a_body_without_declared_length_is_cut_off_at_the_cap(framing: bytes) -> None:
    piece = b"<item>" + b"x" * 4090  # 4 KiB
    if b"chunked" in framing:
        body = b"%x\r\n%s\r\n" % (len(piece), piece) * 64 + b"0\r\n\r\n"
    else:
        body = piece * 64
    with then_next(Reply(OK + framing + body, close=b"close" in framing)) as server:
        first, second = fetch_in_turn([server.url("/1"), server.url("/2")],
                                      FetchSettings(timeout=5.0, max_bytes=64 * 1024))
    assert (first.status, first.body, first.error) == (None, None, "body larger than 64 KiB")
    assert first.error_kind is FailureKind.REFUSED
    assert second.body == b"next"  # the rest of the big body is not read as an answer


def test_a_declared_length_over_the_cap_is_refused_without_waiting_for_the_body() -> None:
    head = OK + b"Content-Length: 10737418240\r\n\r\n<rss>"  # 10 GiB declared
    with then_next(Reply(head, stall=4.0)) as server:
        first, second = fetch_in_turn([server.url("/1"), server.url("/2")],
                                      FetchSettings(timeout=3.0, max_bytes=1 << 20))
    assert (first.status, first.error) == (None, "body larger than 1 MiB")
    assert second.body == b"next"


# redirects on top of keep-alive


def test_redirects_relative_and_absolute_reuse_each_hosts_connection() -> None:
    with RawHTTPServer() as first, RawHTTPServer() as second:
        for _ in range(2):
            first.add(
                # A redirect's small body is read, so the connection serves the next hop.
                response("301 Moved Permanently", b"<a href='/moved'>moved</a>",
                         [("Location", "/moved?x=1")]),
                response("302 Found", b"", [("Location", second.url("/feed/"))]))
            second.add(response(body=b"<rss/>"))
        url = first.url("/old").replace("://", "://reader:secret@")
        results = fetch_in_turn([url, url])
        asked_first, asked_second = first.requests, second.requests
    assert [(r.status, r.body, r.final_url) for r in results] == \
        [(200, b"<rss/>", second.url("/feed/"))] * 2
    assert [(r.connection, r.request_line) for r in asked_first] == [
        (1, b"GET /old HTTP/1.1"), (1, b"GET /moved?x=1 HTTP/1.1")] * 2
    assert [(r.connection, r.request_line) for r in asked_second] == \
        [(1, b"GET /feed/ HTTP/1.1")] * 2
    assert first.connections == second.connections == 1
    basic = "Basic " + base64.b64encode(b"reader:secret").decode()
    # A relative Location stays on the origin and keeps the credentials; another origin
    # does not get them.
    assert [r.header("authorization") for r in asked_first] == [basic] * 4
    assert [r.header("authorization") for r in asked_second] == [None] * 2
    assert [r.header("host") for r in asked_second] == [f"127.0.0.1:{second.port}"] * 2


def test_a_redirect_that_closes_its_connection_is_followed_on_a_new_one() -> None:
    moved = response("301 Moved Permanently", b"", [("Location", "/new"),
                                                    ("Connection", "close")])
    with RawHTTPServer([moved, response(body=b"<rss/>")]) as server:
        result = fetch_one(server.url("/old"))
        requests = server.requests
    assert (result.status, result.body, result.permanent_url) == \
        (200, b"<rss/>", server.url("/new"))
    assert [(r.connection, r.request_line) for r in requests] == [
        (1, b"GET /old HTTP/1.1"), (2, b"GET /new HTTP/1.1")]


def test_a_redirect_with_a_large_body_is_still_followed() -> None:
    """A redirect's body is read only up to a limit; past it the connection is dropped
    rather than read to its end, and the next hop must not see what was left of it."""
    moved = response("302 Found", b"<p>moved</p>" * 20_000, [("Location", "/new")])
    with RawHTTPServer([moved, response(body=b"<rss/>"), response(body=b"next")]) as server:
        first, second = fetch_in_turn([server.url("/old"), server.url("/other")])
        requests = server.requests
    assert (first.status, first.body, first.final_url) == (200, b"<rss/>", server.url("/new"))
    assert second.body == b"next"
    assert [r.request_line for r in requests] == [
        b"GET /old HTTP/1.1", b"GET /new HTTP/1.1", b"GET /other HTTP/1.1"]


# connections under concurrency


def test_concurrent_fetches_to_one_host_open_no_more_than_per_host_connections() -> None:
    """Politeness on the wire: six feeds of one blog at once, two connections, reused."""
    with RawHTTPServer([response(body=b"<rss/>", stall=0.05)] * 6) as server:
        async def main() -> list[FetchResult]:
            async with Fetcher(FetchSettings(timeout=5.0, per_host=2)) as fetcher:
                return await asyncio.gather(
                    *(fetcher.fetch(server.url(f"/feed/{n}")) for n in range(6)))

        results = asyncio.run(main())
        requests = server.requests
    assert [r.body for r in results] == [b"<rss/>"] * 6
    assert server.connections == 2
    assert sorted(r.request_line for r in requests) == [
        f"GET /feed/{n} HTTP/1.1".encode() for n in range(6)]


def test_a_per_host_limit_above_the_global_one_leaves_the_global_one_in_force() -> None:
    """A host may be given as many connections as all hosts together (a single-host run):
    the global limit still bounds it."""
    with RawHTTPServer([response(body=b"<rss/>", stall=0.05)] * 6) as server:
        async def main() -> list[FetchResult]:
            settings = FetchSettings(timeout=5.0, max_connections=2, per_host=50)
            async with Fetcher(settings) as fetcher:
                return await asyncio.gather(
                    *(fetcher.fetch(server.url(f"/feed/{n}")) for n in range(6)))

        results = asyncio.run(main())
    assert [r.body for r in results] == [b"<rss/>"] * 6
    assert server.connections == 2
