"""Shared fixtures: a fresh blog, SMTP server and webhook receiver per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.blog_server import FIXTURES_DIR, BlogServer
from tests.support.smtp_server import SmtpServer
from tests.support.webhook_receiver import WebhookReceiver


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
