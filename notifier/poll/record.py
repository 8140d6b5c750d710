"""Record a batch: every poll's write intent in one transaction, then the cycle's report.

Entries and the notifications they queue are written together (`Store.record_polls`), so a
crash leaves either both or neither: a comment is never stored without its notification,
nor notified without being stored. Per-poll lines are DEBUG for unchanged feeds (at 10,000
feeds an INFO line per poll is most of the log); what changed or failed is INFO/WARNING.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from notifier import redact
from notifier.failures import FailedFeed, count_kinds
from notifier.poll.decide import Outcome
from notifier.poll.retrieve import Polled

log = logging.getLogger("notifier")

__all__ = ["PollReport", "report_batch"]


@dataclass
class PollReport:
    """What one poll cycle did, summed over its batches (the cycle's INFO line)."""

    feeds_polled: int = 0
    feeds_failed: int = 0
    not_modified: int = 0
    new_entries: int = 0
    queued: int = 0
    baselines: int = 0  # subscriptions whose first poll this was
    fenced: int = 0  # polls dropped: another node claimed the feed since (lease lost)
    discovery_failed: int = 0  # subscriptions without a feed: their discovery failed
    errors: list[FailedFeed] = field(default_factory=list)  # each with its kind
    written: set[int] = field(default_factory=set)  # feeds whose poll was written
    fetch_seconds: list[float] = field(default_factory=list)  # each fetch's time, for metrics

    def add(self, other: PollReport) -> None:
        """Sum `other` (a batch's share) into this report."""
        for name in ("feeds_polled", "feeds_failed", "not_modified", "new_entries", "queued",
                     "baselines", "fenced", "discovery_failed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors += other.errors
        self.written |= other.written
        self.fetch_seconds += other.fetch_seconds

    def summary(self) -> str:
        # A subscription whose discovery failed has no feed to poll: named as `status`
        # names it, not counted as a feed (nor does it vanish: "0 feeds polled" alone
        # would hide that nothing works).
        lost = self.discovery_failed
        without = (f", {lost} subscription{'' if lost == 1 else 's'} without a feed "
                   "(discovery failed)" if lost else "")
        text = (f"{self.feeds_polled} feeds polled ({self.not_modified} unchanged, "
                f"{self.feeds_failed} failed){without}, {self.new_entries} new entries, "
                f"{self.queued} notifications queued")
        if self.errors:
            kinds = ", ".join(f"{n} {kind}" for kind, n in count_kinds(self.errors).items())
            stuck = sum(1 for e in self.errors if e.kind.needs_a_person)
            text += f"; failed: {kinds}"
            if stuck:
                text += (f" ({stuck} will not pass by waiting: the URL or the configuration "
                         "must change; see `notifier status`)")
        if self.fenced:
            text += f"; {self.fenced} polls dropped after the lease was lost"
        if self.baselines:
            text += (f"; baseline recorded for {self.baselines} subscription"
                     f"{'' if self.baselines == 1 else 's'}: entries already there are "
                     "not reported (beyond `backfill`), new ones from now on are")
        return text

    def fields(self) -> dict[str, object]:
        """The summary as `extra=` fields of its log line (`--log-format json`)."""
        return {"feeds_polled": self.feeds_polled, "feeds_failed": self.feeds_failed,
                "not_modified": self.not_modified, "new_entries": self.new_entries,
                "queued": self.queued, "subscriptions_without_feed": self.discovery_failed,
                "failures": count_kinds(self.errors)}


def report_batch(polls: Sequence[Polled], outcomes: Sequence[Outcome], queued: int,
                 report: PollReport) -> None:
    """Add a written batch to the cycle's report and log each poll at its level."""
    report.queued += queued
    for polled, outcome in zip(polls, outcomes, strict=True):
        record, decision = outcome.record, outcome.decision
        report.feeds_polled += 1
        new = len(decision.new_entries) if decision else 0
        report.new_entries += new
        report.baselines += len(record.baselines)
        report.fetch_seconds.append(polled.fetch.elapsed)
        level = logging.INFO if new or record.notices else logging.DEBUG
        # Redacting parses the URL: skipped for the quiet majority when no line shows it.
        told = log.isEnabledFor(level)
        shown = (polled.failure or record.new_url or told
                 or (polled.parsed is not None and polled.parsed.kind_note)
                 or outcome.deaf_note)
        url = redact.url(polled.feed.url) if shown else ""
        if polled.failure:
            report.feeds_failed += 1
            report.errors.append(FailedFeed(url, polled.failure))
            log.warning("poll %s failed: %s (%.2fs)", url, polled.failure, polled.fetch.elapsed,
                        extra={"feed": url, "kind": polled.failure.kind.value})
        else:
            if polled.fetch.not_modified or polled.unchanged:
                report.not_modified += 1
            if told:  # its arguments are not built for a line nobody sees
                status = f"{polled.fetch.status}{' unchanged' if polled.unchanged else ''}"
                log.log(level, "poll %s %s new=%d queued=%d%s (%.2fs)", url, status, new,
                        len(record.notices), " baseline" if record.baselines else "",
                        polled.fetch.elapsed)
        if polled.parsed and polled.parsed.kind_note:
            log.info("feed %s %s", url, polled.parsed.kind_note)
        if outcome.deaf_note:
            log.warning("feed %s %s", url, outcome.deaf_note)
        if polled.parsed and polled.parsed.warning:
            log.debug("feed %s parsed leniently: %s", url, polled.parsed.warning)
        if record.new_url:
            log.info("feed %s moved permanently to %s", url, redact.url(record.new_url))
