"""The one reading of HTTP header values that the fetcher and the channels share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from notifier.channels.httpsend import retry_after
from notifier.httpheaders import parse_link_header, parse_retry_after
from notifier.limits import MAX_RETRY_AFTER
from tests.support.cpu import cpu_bound

NOW = datetime(2026, 11, 27, 1, 15, 18, tzinfo=UTC)


def test_retry_after_seconds_and_dates() -> None:
    assert parse_retry_after("120", NOW) == 120.0
    assert parse_retry_after(" 0 ", NOW) == 0.0
    assert parse_retry_after("99999999", NOW) == 86_400.0  # capped at a day
    in_five_minutes = format_datetime(NOW + timedelta(minutes=5), usegmt=True)
    assert parse_retry_after(in_five_minutes, NOW) == 300.0
    in_a_week = format_datetime(NOW + timedelta(days=7), usegmt=True)
    assert parse_retry_after(in_a_week, NOW) == 86_400.0
    yesterday = format_datetime(NOW - timedelta(days=1), usegmt=True)
    assert parse_retry_after(yesterday, NOW) == 0.0


@pytest.mark.parametrize("value", ["", "soon", "-5", "1.5e9", "Fri, 99 Nov 2026 99:00:00 GMT"])
def test_retry_after_garbage_gives_none(value: str) -> None:
    assert parse_retry_after(value, NOW) is None


def test_link_header_as_wordpress_sends_it() -> None:
    # The three Link headers of post.html.headers, joined with ", " as the fetcher does.
    value = (
        '<http://blog.test/wp-json/>; rel="https://api.w.org/", '
        '<http://blog.test/wp-json/wp/v2/posts/4>; rel="alternate"; type="application/json", '
        "<http://blog.test/?p=4>; rel=shortlink"
    )
    assert parse_link_header(value) == [
        ("http://blog.test/wp-json/", {"rel": "https://api.w.org/"}),
        (
            "http://blog.test/wp-json/wp/v2/posts/4",
            {"rel": "alternate", "type": "application/json"},
        ),
        ("http://blog.test/?p=4", {"rel": "shortlink"}),
    ]


def test_link_header_commas_quotes_and_relative_urls() -> None:
    value = (
        '</wp-json/wp/v2/comments?post=4&page=2,3>; REL="next"; title="a; b, c", '
        '<../up>;rel=up;rel=ignored, garbage, <https://x.test/a\\b>; title="q\\"d"'
    )
    links = parse_link_header(value, "https://blog.test/dir/page")
    assert links == [
        (
            "https://blog.test/wp-json/wp/v2/comments?post=4&page=2,3",
            {"rel": "next", "title": "a; b, c"},
        ),
        ("https://blog.test/up", {"rel": "up"}),  # the first rel wins (RFC 8288)
        ("https://x.test/a\\b", {"title": 'q"d'}),
    ]


def test_link_header_malformed_is_skipped_not_raised() -> None:
    assert parse_link_header("") == []
    assert parse_link_header("no brackets at all") == []
    assert parse_link_header("<unclosed; rel=next") == []
    assert parse_link_header('<http://[::1/>; rel="a", </b>; rel="b"', "http://ok.test/") == [
        ("http://ok.test/b", {"rel": "b"})
    ]
    with cpu_bound(2.0, "hostile Link header"):  # 0.05 s needed
        parse_link_header("<a>;" * 100_000 + '"' * 100_000)


def test_a_fraction_of_a_second_is_honoured_and_a_unix_clock_works_too() -> None:
    assert parse_retry_after("1.5", NOW) == 1.5
    in_five_minutes = format_datetime(NOW + timedelta(minutes=5), usegmt=True)
    assert parse_retry_after(in_five_minutes, NOW.timestamp()) == 300.0


@pytest.mark.parametrize("value", ["120", "1.5", "99999999", "-5", "soon",
                                   "Wed, 21 Oct 2015 07:28:30 GMT"])
def test_a_channel_reads_retry_after_as_the_fetcher_does(value: str) -> None:
    """One parser: a webhook's 429 and a feed's 503 with the same header wait the same."""
    response = httpx.Response(429, headers={"Retry-After": value})
    assert retry_after(response, NOW.timestamp()) == parse_retry_after(value, NOW)


def test_a_platforms_own_wait_in_the_body_is_capped_like_the_header() -> None:
    response = httpx.Response(429, json={"retry_after": 10 * MAX_RETRY_AFTER})
    assert retry_after(response, NOW.timestamp(),
                       lambda data: data["retry_after"]) == MAX_RETRY_AFTER
