"""Who reads which feed, and who needs a discovery (`notifier.poll.readers`): plain values."""

from __future__ import annotations

from pathlib import Path

from notifier.config import load_config
from notifier.failures import Failure, FailureKind
from notifier.poll.readers import discovery_failed, needs_discovery, readers
from notifier.store import SubscriptionState
from tests.test_decisions import POST, sub


def _state(name: str, url: str = POST, *, feed_id: int | None = 1, watch: str = "comments",
           due: float | None = None, errors: int = 0) -> SubscriptionState:
    return SubscriptionState(name=name, source_url=url, watch=watch, feed_id=feed_id,
                             feed_url=None, discovered_at=None, baseline_at=None,
                             last_failure=None, discovery_errors=errors, discovery_due=due)


def test_a_subscription_is_discovered_again_when_its_url_or_watch_changes() -> None:
    s = sub()
    assert not needs_discovery(s, _state("s"), now=100.0, force=False)
    assert needs_discovery(s, None, now=100.0, force=False)
    assert needs_discovery(s, _state("s", POST + "other/"), now=100.0, force=False)
    assert needs_discovery(s, _state("s", watch="posts"), now=100.0, force=False)
    # A failed discovery waits out its back-off, unless `run --once` forces it.
    failed = _state("s", feed_id=None, due=200.0, errors=2)
    assert not needs_discovery(s, failed, now=100.0, force=False)
    assert needs_discovery(s, failed, now=100.0, force=True)
    assert needs_discovery(s, failed, now=200.0, force=False)


def test_a_failed_discovery_backs_off_and_a_gone_site_waits_a_day(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(
        "channels: {me: {type: console}}\n"
        f"subscriptions: [{{name: s, url: '{POST}', notify: [me]}}]\n")
    config = load_config(tmp_path / "c.yaml", {})
    s = config.subscriptions[0]
    failure, due = discovery_failed(
        s, _state("s", feed_id=None, errors=3), config, kind=FailureKind.HTTP,
        message="https://u:pw@blog.test/: HTTP 503", status=503, retry_after=None, now=0.0)
    assert failure == Failure(FailureKind.HTTP, "https://u:…@blog.test/: HTTP 503")
    assert due > config.interval(s)  # the fourth failure in a row waits longer
    gone, due = discovery_failed(s, None, config, kind=FailureKind.HTTP, message="HTTP 410",
                                 status=410, retry_after=None, now=0.0)
    assert due >= 86_400.0 and "asked again once a day" in gone.message


def test_thread_feeds_are_read_by_their_followers_quietly_at_first() -> None:
    site, threads, comments = sub("site"), sub("threads", watch="threads"), sub("c")
    states = {"site": _state("site", feed_id=1), "threads": _state("threads", feed_id=2),
              "c": _state("c", feed_id=3)}
    feed_subs, quiet = readers([site, threads, comments], states,
                               {3: {"threads": True}, 4: {"threads": False, "gone": True}})
    assert feed_subs == {1: (site,), 2: (threads,), 3: (comments, threads), 4: (threads,)}
    assert quiet == {3: frozenset({"threads"})}
