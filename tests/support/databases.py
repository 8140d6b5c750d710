"""The state databases tests run on: SQLite in the test's folder, and PostgreSQL when
NOTIFIER_TEST_POSTGRES_URL names one (`.ci/run` starts a throw-away server).

Each PostgreSQL test gets a schema of its own, named in the URL's search path and dropped
afterwards, so tests never see each other's rows and nothing is left behind.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from notifier.store.db import Database

PG_URL = os.environ.get("NOTIFIER_TEST_POSTGRES_URL")
KINDS = ("sqlite", "postgresql")
"""The `params` of a fixture that runs its tests on each database."""


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    """The URL of a fresh schema on the test PostgreSQL, dropped on exit."""
    assert PG_URL is not None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = Database(PG_URL)
    with admin.begin() as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@contextlib.contextmanager
def state_url(kind: str, folder: Path) -> Iterator[str]:
    """A state URL on `kind` (one of KINDS); skips the test when PostgreSQL is not set."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'state.db'}"
        return
    if not PG_URL:
        pytest.skip("NOTIFIER_TEST_POSTGRES_URL is not set")
    with postgres_schema() as url:
        yield url
