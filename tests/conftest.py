"""Shared fixtures: a fresh blog, SMTP server and webhook receiver per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.blog_server import FIXTURES_DIR, BlogServer
from tests.support.smtp_server import SmtpServer
from tests.support.webhook_receiver import WebhookReceiver


@pytest.fixture(autouse=True, scope="session")
def _cache_folder_of_the_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Compiled templates go to a folder of this test run (the processes it starts too),
    not to the user's cache folder."""
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache-home"))
    yield
    if before is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = before


@pytest.fixture
def fixtures_dir() -> Path:
    """The captured WordPress output, located from this file so the suite runs anywhere."""
    return FIXTURES_DIR


@pytest.fixture
def blog_server() -> Iterator[BlogServer]:
    """A blog at scenario 01; per test, so scenario, overrides and log never leak."""
    with BlogServer() as server:
        yield server


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """An SMTP server that keeps what it receives; per test, so mailboxes start empty."""
    with SmtpServer() as server:
        yield server


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A webhook endpoint answering 204 unless scripted; per test, so scripts never leak."""
    with WebhookReceiver() as receiver:
        yield receiver
