"""The read-only status page at `/`: what `notifier status` says, for a browser.

Plain HTML, no script. Everything on it comes from feeds and comments other people wrote,
so every value goes through Jinja2's autoescaping, and a link is only made of an http(s)
URL (a `javascript:` link in a feed stays text).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import jinja2

from notifier import __version__, redact
from notifier.config import Config
from notifier.store import ChannelStats, FeedHealth, RecentNotification, Store

RECENT = 50
"""Notifications listed, newest first."""
FEEDS_SHOWN = 300
"""Feed rows listed, failing ones first: at 10,000 feeds a full list is megabytes that no
one reads in a browser; `notifier status` lists every feed."""

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("notifier.admin", "templates"),
                          autoescape=True, undefined=jinja2.StrictUndefined)


@dataclass(frozen=True, slots=True)
class PageFacts:
    """What the page shows, read from the state in one go on the store's thread."""

    stats: dict[str, ChannelStats]
    health: list[FeedHealth]
    lost: dict[str, str]  # configured subscription -> why its feed is unknown
    recent: list[RecentNotification]


def read_facts(store: Store, config: Config) -> PageFacts:
    """Runs on the store thread."""
    states = store.subscription_states()
    lost = {}
    for sub in config.subscriptions:
        state = states.get(sub.name)
        if state is None or state.feed_id is None:
            lost[sub.name] = (str(state.last_failure) if state and state.last_failure
                              else "not polled yet")
    return PageFacts(store.channel_stats(), store.feed_health(), lost,
                     store.recent_notifications(RECENT))


def render_page(facts: PageFacts, config: Config, started: float,
                now: float | None = None) -> str:
    now = time.time() if now is None else now
    failures = []
    channels = []
    for name in sorted(set(config.channels) | set(facts.stats)):
        s = facts.stats.get(name) or ChannelStats()
        configured = config.channels.get(name)
        error = f"DISABLED: {s.disabled_reason}" if s.disabled_reason else s.last_error
        if s.disabled_reason:
            failures.append(f"channel {name} is disabled: {s.disabled_reason}; fix it, then "
                            f"run `notifier retry --channel {name}`")
        elif s.failed:
            failures.append(f"channel {name}: {s.failed} notification(s) failing: "
                            f"{s.last_error or 'no error recorded'}")
        channels.append({
            "name": name, "kind": configured.type if configured else "(not configured)",
            "queued": s.queued, "held": s.held, "sent": s.sent, "failed": s.failed,
            "dead": s.dead, "last_sent": _when(s.last_sent), "error": error})
    for name, reason in facts.lost.items():
        failures.append(f"subscription {name}: no feed: {reason}")
    feeds = []
    ordered = sorted(facts.health, key=lambda h: (h.last_failure is None, h.url))
    for feed in ordered[:FEEDS_SHOWN]:
        url = redact.url(feed.url)
        if feed.last_failure:
            state = (f"failing x{feed.error_count}: {feed.last_failure.message} "
                     f"[{feed.last_failure.kind}]")
            failures.append(f"feed {url}: {state}")
        else:
            state = f"ok ({feed.last_status})" if feed.last_status else "waiting"
        feeds.append({"url": url, "state": state, "failing": bool(feed.last_failure),
                      "polled": _when(feed.last_polled), "next": _when(feed.next_due),
                      "entries": feed.entries,
                      "subscriptions": ", ".join(feed.subscriptions) or "no subscription"})
    recent = [{
        "created": _when(r.created), "channel": r.channel, "subscription": r.subscription,
        "what": _what(r), "link": r.link if _web_link(r.link) else "",
        "status": _status(r), "bad": r.status == "dead" or bool(r.last_error and
                                                               r.status != "sent")}
        for r in facts.recent]
    return _ENV.get_template("status.html.j2").render(
        version=__version__, started=_when(started), uptime=_duration(now - started),
        now=_when(now), config_path=str(config.path),
        state=Store.describe_url(config.state_url()), failures=failures, channels=channels,
        feeds=feeds, feed_count=len(ordered), recent=recent)


def _what(r: RecentNotification) -> str:
    if r.kind == "post":
        return f"post “{r.title}” by {r.author}"
    return f"comment by {r.author} on “{r.post_title or r.title}”"


def _status(r: RecentNotification) -> str:
    if r.status == "sent":
        return f"sent {_when(r.sent_at)}"
    if r.status == "dead":
        return f"given up after {r.attempts} attempt(s): {r.last_error or '-'}"
    if r.last_error:
        return f"{r.status}, {r.attempts} attempt(s) failed: {r.last_error}"
    return r.status


def _web_link(url: str) -> bool:
    try:
        return urlsplit(url).scheme in ("http", "https")
    except ValueError:
        return False


def _when(then: float | None) -> str:
    if then is None:
        return "never"
    return datetime.fromtimestamp(then, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float) -> str:
    total = max(round(seconds), 0)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"
