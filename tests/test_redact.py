"""One redactor: what a log line, an error or `status` may show of a URL or an answer."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from notifier import redact
from notifier.config import ConfigError, load_config
from notifier.fetch import Fetcher
from notifier.store import Store, StoreError
from tests.support.blog_server import BlogServer


def test_a_url_keeps_where_it_points_and_hides_its_secrets() -> None:
    shown = redact.url("https://reader:hunter22@Example.org:8443/feed/?token=abc&cat=7#x")
    assert shown == "https://reader:…@example.org:8443/feed/?token=…&cat=7"
    assert redact.url("https://blog.test/feed/") == "https://blog.test/feed/"
    assert redact.url("http://[::1/feed") == "<unparsable URL>"
    assert redact.url("sqlite:///var/lib/notifier/state.db") == "sqlite:///var/lib/notifier/state.db"
    assert redact.url("postgresql+psycopg://n:pw@[::1]:5432/db") == \
        "postgresql+psycopg://n:…@[::1]:5432/db"


def test_a_destination_shows_only_scheme_and_host() -> None:
    assert redact.destination("https://hooks.slack.com/services/T0/B0/sEcReT") == \
        "https://hooks.slack.com/…"
    assert redact.destination("hooks.slack.com") == "hooks.slack.com"  # a mistake, shown
    assert redact.destination("x" * 100) == "x" * 37 + "…"


def test_a_library_line_shows_each_url_as_a_destination() -> None:
    line = ('HTTP Request: POST https://hooks.slack.com/services/T0/B0/XyZ "HTTP/1.1 200 OK"; '
            "then (https://example.org:8443/a?token=t).")
    assert redact.destinations_in(line) == (
        'HTTP Request: POST https://hooks.slack.com/… "HTTP/1.1 200 OK"; '
        "then (https://example.org/…).")


def test_text_loses_every_secret_and_the_long_parts_of_a_secret_url() -> None:
    hook = "https://example.test/workflows/abc/triggers/run?api-version=1&sig=SiGnAtUrE1234"
    echoed = f"bad request to {hook}; sig SiGnAtUrE1234; token 123:AAAA"
    shown = redact.text(echoed, [hook, "123:AAAA", ""])
    assert "SiGnAtUrE1234" not in shown and "123:AAAA" not in shown
    assert shown.startswith("bad request to …")


def test_the_fetcher_logs_no_secret_of_the_url(blog_server: BlogServer,
                                      caplog: pytest.LogCaptureFixture) -> None:
    url = blog_server.url("/no-such-feed/?key=SeCrEt#access_token=pAsSwOrD")

    async def main() -> None:
        async with Fetcher() as fetcher:
            await fetcher.fetch(url)

    with caplog.at_level(logging.DEBUG, logger="notifier"):
        asyncio.run(main())
    assert caplog.text and "pAsSwOrD" not in caplog.text and "SeCrEt" not in caplog.text


def test_a_database_error_hides_the_password() -> None:
    with pytest.raises(StoreError) as caught:
        Store("nosuchdialect://me:pAsSwOrD@db.test/state")
    assert "pAsSwOrD" not in str(caught.value) and "db.test" in str(caught.value)


def test_a_config_error_shows_the_host_not_the_token(tmp_path: Path) -> None:
    text = """
channels:
  hook: {type: webhook, url: "ftp://hooks.test/services/T0/sEcReTtOkEn"}
subscriptions:
  - {name: s, url: "https://blog.test/", notify: [hook]}
"""
    path = tmp_path / "notifier.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert "sEcReTtOkEn" not in str(caught.value) and "hooks.test" in str(caught.value)
