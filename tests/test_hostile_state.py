"""One bad entry never fails a batch, and text from a feed cannot misdirect a reader.

On the state a user runs (PostgreSQL when NOTIFIER_TEST_POSTGRES_URL is set, SQLite
always): a comment carrying `&#0;` (PostgreSQL refuses NUL in text), an author with a lone
surrogate (no driver encodes one) and a comment whose id is too long for PostgreSQL's index
arrive beside healthy feeds in one run. Every healthy comment is still delivered, the
odd-but-storable ones too, and a poll the database still refuses is recorded as that feed's
failure, not the batch's.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from tests.support.blog_server import BlogServer
from tests.support.webhook_receiver import WebhookReceiver
from tests.test_hostile_feeds import _env, comment_feed, hook_texts, status

PG_URL = os.environ.get("NOTIFIER_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    if not PG_URL:
        pytest.skip("NOTIFIER_TEST_POSTGRES_URL is not set")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def feed(name: str, newest: str = "", *, key: str = "") -> bytes:
    """A comment feed of one plain comment, plus `newest` as comment 2 when given."""
    post = f"http://blog.test/{name}/"
    text = comment_feed(1, post=post).replace("{encoding}", "UTF-8")
    if newest:
        entry = (f"<entry><title>By: Reader 2</title><author><name>Reader 2</name></author>"
                 f"<id>{key or post + '#comment-2'}</id>"
                 f"<link rel=\"alternate\" href=\"{post}#comment-2\" type=\"text/html\" />"
                 f"<updated>2024-05-01T11:00:00Z</updated>"
                 f"<published>2024-05-01T11:00:00Z</published>"
                 f"<content type=\"html\">{newest}</content>"
                 f"<thr:in-reply-to ref=\"{post}\" href=\"{post}\" type=\"text/html\" /></entry>")
        text = text.replace("<entry>", entry + "<entry>", 1)
    return text.encode()


def noise(length: int) -> str:
    """Incompressible text (PostgreSQL compresses a long repetitive key under its limit)."""
    out = ""
    seed = b"notifier"
    while len(out) < length:
        seed = hashlib.sha256(seed).digest()
        out += seed.hex()
    return out[:length]


def run_once(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "notifier", "run", "--once", "-c", str(config)],
                          capture_output=True, text=True, env=_env(), timeout=120, check=False)


def test_one_unstorable_comment_never_loses_the_others(
        tmp_path: Path, state_url: str, blog_server: BlogServer,
        webhook_receiver: WebhookReceiver) -> None:
    names = ["ok1", "ok2", "ok3", "nul", "surrogate", "longid", "bidi"]
    for name in names:
        blog_server.add_file(f"/{name}/feed/atom/", feed(name), "application/atom+xml")
    config = tmp_path / "notifier.yaml"
    config.write_text(yaml.safe_dump({
        "state": state_url,
        "channels": {"hook": {"type": "webhook", "url": webhook_receiver.url,
                              "format": "slack"}},
        "subscriptions": [{"name": n, "url": blog_server.origin + f"/{n}/feed/atom/",
                           "watch": "comments", "notify": ["hook"]} for n in names],
    }), encoding="utf-8")
    first = run_once(config)
    assert first.returncode == 0, first.stderr

    for name in ("ok1", "ok2", "ok3"):
        blog_server.add_file(f"/{name}/feed/atom/", feed(name, f"Fine comment on {name}"),
                             "application/atom+xml")
    blog_server.add_file("/nul/feed/atom/", feed("nul", "Null&amp;#0; here &#0; and here"),
                         "application/atom+xml")
    blog_server.add_file("/surrogate/feed/atom/", feed("surrogate", "Lone &#xD800; half"),
                         "application/atom+xml")
    long_key = "http://blog.test/longid/?c=" + noise(9000)
    blog_server.add_file("/longid/feed/atom/", feed("longid", "A long id", key=long_key),
                         "application/atom+xml")
    blog_server.add_file("/bidi/feed/atom/",
                         feed("bidi", "Name reversal \u202egnp.exe\u202c here"),
                         "application/atom+xml")
    second = run_once(config)
    texts = hook_texts(webhook_receiver)
    for name in ("ok1", "ok2", "ok3"):
        assert any(f"Fine comment on {name}" in t for t in texts), (second.stderr, texts)
    assert any("Null" in t for t in texts), (second.stderr, texts)
    assert any("Lone" in t and "half" in t for t in texts), (second.stderr, texts)
    bidi = [t for t in texts if "Name reversal" in t]
    assert bidi and "\\u202e" not in bidi[0].lower() and "\u202e" not in bidi[0], bidi
    # The over-long id: stored where the database takes it, else that feed alone failed.
    longid_delivered = any("A long id" in t for t in texts)
    shown = status(config)
    assert longid_delivered or "the state refused this poll's entries" in shown, shown
    if not longid_delivered:
        assert "1 failed" in second.stderr, second.stderr
    assert "Traceback" not in second.stderr, second.stderr
