"""Failures as values: what went wrong with one feed or one subscription, as a kind and a message.

    fetch (no answer, timeout, HTTP status, refused by our rules) ─┐
    parse (not a feed, parser crashed or overran)                 ├─> Failure(kind, message)
    discovery (no feed found), the store refusing a poll          ┘     -> Polled -> PollRecord
        -> store (last_error, last_error_kind) -> `status`
        -> FailedFeed (the feed or subscription + the Failure) -> PollReport.errors
        -> the cycle summary (counts by kind), the JSON log, `/metrics`, `run --once`

Delivery's failures are values too (`delivery.cycle.FailedDelivery`: the channel, the
server's words, and what comes next), beside these in a run's report.

Why values and not exceptions: at thousands of feeds a failing feed is the normal case, and
one must never stop the batch (see `notifier.errors` for what is raised). Why a kind beside
the message: the message is for the person ("HTTP 503 Service Unavailable", "timed out after
20 s"); the kind is for the code and for `status`, which can then say which failures pass on
their own and which need someone to act, without reading the words.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["FailedFeed", "Failure", "FailureKind", "count_kinds"]


class FailureKind(StrEnum):
    """What sort of failure; stored as its value, so values never change once released."""

    NETWORK = "network"  # no answer: DNS, refused, reset, TLS, protocol broken
    TIMEOUT = "timeout"  # an answer too slow for the fetch's time budget
    HTTP = "http"  # the server answered with an error status
    REFUSED = "refused"  # our own rules said no: a bad URL, a private address, too big
    NOT_A_FEED = "not-a-feed"  # the body is an HTML page, JSON, or nothing readable
    PARSER = "parser"  # the parser itself failed on the body: a bug, or a hostile document
    DISCOVERY = "discovery"  # no feed could be found for what a subscription names
    STATE = "state"  # the database refused to store what the poll found

    @property
    def needs_a_person(self) -> bool:
        """Whether waiting will not help: the URL, the config or the site must change."""
        return self in (FailureKind.REFUSED, FailureKind.NOT_A_FEED, FailureKind.DISCOVERY)


@dataclass(frozen=True, slots=True)
class Failure:
    """One failure: its kind, and a message meant for the person reading `status` or the log."""

    kind: FailureKind
    message: str

    def __str__(self) -> str:
        return self.message

    def about(self, what: str) -> Failure:
        """The same failure, its message saying what failed ("REST API: HTTP 503 ...")."""
        return Failure(self.kind, f"{what}: {self.message}")

    @classmethod
    def stored(cls, kind: str | None, message: str | None) -> Failure | None:
        """Rebuild a stored failure; rows written before kinds were stored read as network."""
        if message is None:
            return None
        try:
            known = FailureKind(kind) if kind else FailureKind.NETWORK
        except ValueError:
            known = FailureKind.NETWORK
        return cls(known, message)


@dataclass(frozen=True, slots=True)
class FailedFeed:
    """A failure and what it happened to: a feed (its URL, as the log shows it: redacted)
    or a subscription whose feed could not be found. What a cycle's report lists."""

    subject: str  # "https://example.org/feed/" or "subscription NAME"
    failure: Failure

    @property
    def kind(self) -> FailureKind:
        return self.failure.kind

    def __str__(self) -> str:
        """The line `run --once` prints: "<feed>: <message>"."""
        return f"{self.subject}: {self.failure.message}"


def count_kinds(failed: Iterable[FailedFeed]) -> dict[str, int]:
    """How many failures of each kind, most frequent first (ties by name): what the cycle
    summary, the JSON log and `/metrics` show."""
    counts: dict[str, int] = {}
    for item in failed:
        counts[item.kind.value] = counts.get(item.kind.value, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
