"""Digests and quiet hours: when a notification may go out, and which ones go out together.

    queued row -> release_time(schedule, created, now) -> hold until then (status `held`)
    due rows   -> plan(...) -> single messages + digests (one message for many rows)

Everything here is pure: it takes `now` and returns decisions; the store keeps the held rows
(so a hold survives a restart) and the pipeline sends. A digest's membership is written to
the store before it is sent, so a digest cut short by a crash is sent again with the same
members and the same id, never re-gathered into a different message.

Cron expressions are run by APScheduler's `CronTrigger`, with standard crontab weekdays
(0 or 7 is Sunday): APScheduler 3 counts from Monday, so numeric weekdays are translated.
"""

from __future__ import annotations

import functools
import re
import uuid
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Annotated, Generic, TypeVar

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from notifier.models import FLOOD_ID_PREFIX
from notifier.schema import StrictModel

if TYPE_CHECKING:  # imported when a cron expression is first used, not at every start
    from apscheduler.triggers.cron import CronTrigger

DIGEST_MAX = 500
"""Rows in one digest message: bounds the message (chat platforms cut it anyway) and a claim."""

_WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


# --- configuration values ----------------------------------------------------------------


def check_timezone(value: str) -> str:
    """An IANA zone name; a typo is caught at load time, not at the first digest."""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        import difflib  # only for a wrong name, as in `configproblems.close_match`

        close = difflib.get_close_matches(value, sorted(zoneinfo.available_timezones()), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{value!r} is not an IANA time zone name such as UTC or "
                         f"Europe/Berlin{hint}") from None
    return value


def crontab_for_apscheduler(expr: str) -> str:
    """The same schedule with numeric weekdays written as names (0 and 7 are Sunday)."""
    fields = expr.split()
    if len(fields) != 5 or fields[4] in ("*", "?") or re.search(r"[a-z]", fields[4], re.I):
        return expr
    days: list[int] = []
    for part in fields[4].split(","):
        match = re.fullmatch(r"(\*|\d+)(?:-(\d+))?(?:/(\d+))?", part)
        if match is None:
            return expr  # let APScheduler name the problem
        first = 0 if match.group(1) == "*" else int(match.group(1))
        last = 6 if match.group(1) == "*" else int(match.group(2) or first)
        step = int(match.group(3) or 1)
        if not 0 <= first <= last <= 7 or step < 1:
            raise ValueError(f"weekday {part!r} is out of range: use 0-7 (0 and 7 are "
                             "Sunday) or mon-sun")
        days += range(first, last + 1, step)
    names = dict.fromkeys(_WEEKDAY_NAMES[d] for d in days)
    return " ".join([*fields[:4], ",".join(names)])


def check_cron(value: str) -> str:
    try:
        next_fire(value, "UTC", datetime.now().timestamp())
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a cron expression: {exc}; write five fields, "
                         "minute hour day month weekday, e.g. \"0 8 * * *\" for 08:00 "
                         "every day") from None
    return value


def _check_time(value: str) -> str:
    if not _TIME.fullmatch(value):
        raise ValueError(f"{value!r} is not a time of day: write HH:MM, e.g. 22:00")
    return value


CronExpr = Annotated[str, AfterValidator(check_cron)]
TimeZoneName = Annotated[str, AfterValidator(check_timezone)]
TimeOfDay = Annotated[str, AfterValidator(_check_time)]


class QuietHours(StrictModel):
    """`quiet_hours: {from: "22:00", to: "07:00"}`: local time in `timezone`; may span midnight."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    start: TimeOfDay = Field(alias="from")
    end: TimeOfDay = Field(alias="to")

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if _parse_time(self.start) == _parse_time(self.end):
            raise ValueError("quiet_hours from and to are the same time; the window would "
                             "be empty")
        return self


@dataclass(frozen=True, slots=True)
class Schedule:
    """When one (subscription, channel) pair may send: no digest and no quiet hours is `now`."""

    digest: str | None = None
    timezone: str = "UTC"
    quiet_hours: QuietHours | None = None

    @property
    def immediate(self) -> bool:
        return self.digest is None and self.quiet_hours is None


IMMEDIATE = Schedule()


class DeliveryTiming(StrictModel):
    """`digest`, `timezone` and `quiet_hours`, accepted by every channel and subscription."""

    digest: CronExpr | None = None
    """Gather notifications into one message at these times (crontab syntax)."""
    timezone: TimeZoneName = "UTC"
    """The zone `digest` and `quiet_hours` are read in."""
    quiet_hours: QuietHours | None = None
    """Hold messages in this daily window and send them as one digest after it."""

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.digest, self.timezone, self.quiet_hours)


# --- timing ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _trigger(expr: str, tz: str) -> CronTrigger:
    from apscheduler.triggers.cron import CronTrigger

    return CronTrigger.from_crontab(crontab_for_apscheduler(expr), timezone=zoneinfo.ZoneInfo(tz))


def cron_trigger(expr: str, tz: str) -> CronTrigger:
    """The APScheduler trigger for a validated expression, for the daemon's wake-up jobs."""
    return _trigger(expr, tz)


def next_fire(expr: str, tz: str, after: float) -> float:
    """The first time the cron expression fires after `after` (a Unix time).

    Strictly after: a row queued in the very second a digest goes out waits for the next
    one, rather than being sent alone just after it.
    """
    start = datetime.fromtimestamp(after + 0.001, zoneinfo.ZoneInfo(tz))
    fire = _trigger(expr, tz).get_next_fire_time(None, start)
    if fire is None:  # a date that never comes, e.g. 30 February
        raise ValueError("it never fires (no such date)")
    return float(fire.timestamp())


def quiet_until(quiet: QuietHours, tz: str, now: float) -> float | None:
    """The end of the quiet window `now` falls in, or None outside it."""
    zone = zoneinfo.ZoneInfo(tz)
    local = datetime.fromtimestamp(now, zone)
    start, end = _parse_time(quiet.start), _parse_time(quiet.end)
    clock = local.time().replace(tzinfo=None)
    if start < end:
        inside, end_day = start <= clock < end, local.date()
    else:  # spans midnight: 22:00-07:00
        inside = clock >= start or clock < end
        end_day = local.date() + timedelta(days=1) if clock >= start else local.date()
    if not inside:
        return None
    return datetime.combine(end_day, end, zone).timestamp()


def release_time(schedule: Schedule, created: float, now: float) -> float | None:
    """When a row created at `created` may be sent; None means now.

    A digest row waits for the first cron time after it was queued (not after `now`, so a
    row that waited through a stopped daemon goes out at once); whatever time that gives is
    pushed to the end of quiet hours if it falls inside them.
    """
    when = now
    if schedule.digest is not None:
        when = max(when, next_fire(schedule.digest, schedule.timezone, created))
    if schedule.quiet_hours is not None:
        end = quiet_until(schedule.quiet_hours, schedule.timezone, when)
        if end is not None:
            when = end
    return when if when > now else None


def _parse_time(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


# --- planning ----------------------------------------------------------------------------

Row = TypeVar("Row")


@dataclass(slots=True)
class Plan(Generic[Row]):
    """What to do with one claim of due rows for one channel."""

    hold: dict[int, float] = field(default_factory=dict)
    """Row id -> release time, for rows that must wait."""
    singles: list[Row] = field(default_factory=list)
    digests: list[tuple[str, list[Row]]] = field(default_factory=list)
    """(digest id, members): one message each; the id is new unless the rows had one."""


def plan(rows: Sequence[Row], *, now: float, row_id: Callable[[Row], int],
         created: Callable[[Row], float], was_held: Callable[[Row], bool],
         digest_id: Callable[[Row], str | None], schedule: Callable[[Row], Schedule],
         burst_limit: int | None, new_id: Callable[[], str] | None = None) -> Plan[Row]:
    """Split a channel's due rows into holds, single messages and digests.

    Rows already in a digest stay in it. Rows released together after a hold become one
    digest; so do more than `burst_limit` rows due at once. A lone released row is sent as an
    ordinary message: a digest of one says less than the message itself.
    """
    make_id = new_id or new_digest_id
    result: Plan[Row] = Plan()
    grouped: dict[str, list[Row]] = {}
    free: list[Row] = []
    for row in rows:
        existing = digest_id(row)
        # A flood's summary is written with its id by the poll; it waits out quiet hours and
        # digest times like any row before it goes out whole.
        if existing is not None and (was_held(row) or not existing.startswith(FLOOD_ID_PREFIX)
                                     or release_time(schedule(row), created(row), now) is None):
            grouped.setdefault(existing, []).append(row)
            continue
        wait_until = release_time(schedule(row), created(row), now)
        if wait_until is not None:
            result.hold[row_id(row)] = wait_until
        else:
            free.append(row)
    result.digests = list(grouped.items())
    released = sum(1 for row in free if was_held(row))
    if released >= 2 or (burst_limit is not None and len(free) > burst_limit):
        for start in range(0, len(free), DIGEST_MAX):
            chunk = free[start:start + DIGEST_MAX]
            if len(chunk) == 1:
                result.singles += chunk
            else:
                result.digests.append((make_id(), chunk))
    else:
        result.singles = free
    return result


def new_digest_id() -> str:
    """Like a notification id: the Message-ID and webhook-id of the digest message."""
    return "digest-" + uuid.uuid4().hex


def schedule_for(channel: Schedule, subscription: Schedule | None) -> Schedule:
    """The subscription's settings where it has any, else the channel's."""
    if subscription is None or subscription.immediate:
        return channel
    return subscription

