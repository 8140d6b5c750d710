"""The pure timing decisions of digests, quiet hours and pacing, and their configuration errors.

Plain values and a `now` passed in: no clock, no server.
"""

from __future__ import annotations

import dataclasses
import textwrap
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from notifier.cli import main
from notifier.config import ConfigError, load_config
from notifier.delivery.digest import (
    QuietHours,
    Schedule,
    crontab_for_apscheduler,
    next_fire,
    plan,
    quiet_until,
    release_time,
)
from notifier.delivery.pacing import Pacer, discord_pause


def ts(year: int, month: int, day: int, hour: int, minute: int, tz: str = "UTC") -> float:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(tz)).timestamp()


def test_cron_weekdays_are_standard_crontab_ones() -> None:
    # APScheduler 3 counts weekdays from Monday; crontab (and our users) from Sunday.
    assert crontab_for_apscheduler("0 8 * * 0") == "0 8 * * sun"
    assert crontab_for_apscheduler("0 8 * * 1-5") == "0 8 * * mon,tue,wed,thu,fri"
    assert crontab_for_apscheduler("0 8 * * 5-7") == "0 8 * * fri,sat,sun"
    assert crontab_for_apscheduler("0 8 * * mon") == "0 8 * * mon"
    friday_noon = ts(2026, 11, 27, 12, 0)
    assert next_fire("0 8 * * 1", "UTC", friday_noon) == ts(2026, 11, 30, 8, 0)  # Monday
    assert next_fire("0 8 * * 0", "UTC", friday_noon) == ts(2026, 11, 29, 8, 0)  # Sunday


def test_cron_runs_in_its_time_zone_across_daylight_saving() -> None:
    before = ts(2026, 3, 28, 7, 0, tz="Europe/Berlin")  # clocks go forward the next night
    first = next_fire("0 8 * * *", "Europe/Berlin", before)
    second = next_fire("0 8 * * *", "Europe/Berlin", first)
    assert first == ts(2026, 3, 28, 8, 0, tz="Europe/Berlin")
    assert second == ts(2026, 3, 29, 8, 0, tz="Europe/Berlin")
    assert second - first == 23 * 3600  # one hour less that night


def test_next_fire_is_strictly_after() -> None:
    eight = ts(2026, 11, 27, 8, 0)
    assert next_fire("0 8 * * *", "UTC", eight) == ts(2026, 11, 28, 8, 0)
    assert next_fire("0 8 * * *", "UTC", eight - 1) == eight


def test_quiet_hours_spanning_midnight() -> None:
    quiet = QuietHours.model_validate({"from": "22:00", "to": "07:00"})
    assert quiet_until(quiet, "UTC", ts(2026, 11, 27, 21, 59)) is None
    assert quiet_until(quiet, "UTC", ts(2026, 11, 27, 22, 0)) == ts(2026, 11, 28, 7, 0)
    assert quiet_until(quiet, "UTC", ts(2026, 11, 28, 3, 0)) == ts(2026, 11, 28, 7, 0)
    assert quiet_until(quiet, "UTC", ts(2026, 11, 28, 7, 0)) is None
    lunch = QuietHours.model_validate({"from": "12:00", "to": "13:30"})
    assert quiet_until(lunch, "Europe/Berlin", ts(2026, 11, 27, 12, 45, tz="Europe/Berlin")) \
        == ts(2026, 11, 27, 13, 30, tz="Europe/Berlin")


def test_release_time_combines_digest_and_quiet_hours() -> None:
    quiet = QuietHours.model_validate({"from": "22:00", "to": "07:00"})
    assert release_time(Schedule(), 0.0, ts(2026, 11, 27, 23, 0)) is None
    night = Schedule(quiet_hours=quiet)
    assert release_time(night, 0.0, ts(2026, 11, 27, 23, 0)) == ts(2026, 11, 28, 7, 0)
    # A digest that falls inside quiet hours waits for their end.
    late = Schedule(digest="0 23 * * *", quiet_hours=quiet)
    assert release_time(late, ts(2026, 11, 27, 12, 0), ts(2026, 11, 27, 12, 0)) \
        == ts(2026, 11, 28, 7, 0)
    # A row that waited through a stopped daemon is due at once, not at the next cron time.
    daily = Schedule(digest="0 8 * * *")
    assert release_time(daily, ts(2026, 11, 26, 12, 0), ts(2026, 11, 27, 9, 0)) is None


def test_plan_holds_gathers_and_keeps_digests_whole() -> None:
    daily = Schedule(digest="0 8 * * *")
    now = ts(2026, 11, 27, 8, 0)
    rows = [  # (id, created, held, digest id, schedule)
        (1, now - 3600, True, None, daily), (2, now - 60, True, None, daily),
        (3, now, False, None, daily),                       # after the digest: tomorrow
        (4, now, False, None, Schedule()),                  # no schedule: at once
        (5, now - 99, False, "digest-old", daily), (6, now - 99, False, "digest-old", daily),
    ]
    result = plan(rows, now=now, row_id=lambda r: r[0], created=lambda r: r[1],
                  was_held=lambda r: r[2], digest_id=lambda r: r[3], schedule=lambda r: r[4],
                  burst_limit=None, new_id=lambda: "digest-new")
    assert result.hold == {3: ts(2026, 11, 28, 8, 0)}
    assert [[r[0] for r in members] for _, members in result.digests] == [[5, 6], [1, 2, 4]]
    assert [d for d, _ in result.digests] == ["digest-old", "digest-new"]
    assert result.singles == []


def test_a_floods_summary_waits_out_quiet_hours_and_goes_out_whole() -> None:
    night = Schedule(quiet_hours=QuietHours.model_validate({"from": "22:00", "to": "07:00"}))
    now = ts(2026, 11, 27, 23, 0)
    rows = [(1, now, False, "flood-1", night), (2, now, False, "flood-1", night)]
    common = {"row_id": lambda r: r[0], "created": lambda r: r[1], "digest_id": lambda r: r[3],
              "schedule": lambda r: r[4], "burst_limit": None}
    held = plan(rows, now=now, was_held=lambda r: False, **common)  # type: ignore[arg-type]
    assert held.hold == {1: ts(2026, 11, 28, 7, 0), 2: ts(2026, 11, 28, 7, 0)}
    assert held.digests == [] and held.singles == []
    morning = plan(rows, now=ts(2026, 11, 28, 7, 0), was_held=lambda r: True,
                   **common)  # type: ignore[arg-type]
    assert morning.digests == [("flood-1", rows)] and morning.singles == []


def test_plan_burst_limit() -> None:
    rows = list(range(1, 8))
    common = {"now": 0.0, "row_id": lambda r: r, "created": lambda r: 0.0,
              "was_held": lambda r: False, "digest_id": lambda r: None,
              "schedule": lambda r: Schedule()}
    assert plan(rows, burst_limit=7, **common).singles == rows  # type: ignore[arg-type]
    burst = plan(rows, burst_limit=6, **common)  # type: ignore[arg-type]
    assert burst.singles == [] and [m for _, m in burst.digests] == [rows]


def test_pacer_spaces_messages_and_honours_server_pauses() -> None:
    pacer = Pacer(interval=1.0)
    assert pacer.wait(100.0) == 0
    pacer.sent(100.0)
    assert pacer.wait(100.25) == 0.75
    pacer.sent(101.0, server_pause=30.0)
    assert pacer.wait(101.0) == 30.0
    assert discord_pause({"x-ratelimit-remaining": "0", "x-ratelimit-reset-after": "1.5"}) == 1.5
    assert discord_pause({"x-ratelimit-remaining": "3", "x-ratelimit-reset-after": "1.5"}) is None


GOOD = """\
state: sqlite:///state.db
channels:
  team:
    type: webhook
    url: https://hooks.example.org/T0/B0/xyz
    format: slack
    digest: "0 8 * * 1-5"
    timezone: Europe/Berlin
    quiet_hours: {from: "22:00", to: "07:00"}
    pace: 2s
    burst_limit: 20
subscriptions:
  - name: thread
    url: https://blog.example.org/
    notify: [team]
    digest: "0 18 * * *"
"""


def load(tmp_path: Path, text: str) -> str:
    path = tmp_path / "notifier.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    return str(caught.value)


def test_the_keys_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "notifier.yaml"
    path.write_text(GOOD, encoding="utf-8")
    assert main(["check", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert ("team: webhook (slack) to https://hooks.example.org/…; digest 0 8 * * 1-5 "
            "(Europe/Berlin); quiet 22:00-07:00 (Europe/Berlin); at most one message per 2s; "
            "more than 20 at once as one summary") in out
    assert "digest 0 18 * * * (UTC)" in out
    config = load_config(path, {})
    team = config.channels["team"]
    assert team.schedule.digest == "0 8 * * 1-5" and team.timezone == "Europe/Berlin"
    assert team.quiet_hours is not None and team.quiet_hours.start == "22:00"
    assert team.pace == 2.0 and team.burst_limit == 20
    assert config.subscriptions[0].schedule == Schedule("0 18 * * *", "UTC")


@pytest.mark.parametrize(("edit", "expected"), [
    (("digest: \"0 8 * * 1-5\"", "digest: \"0 25 * * *\""),
     ":7: channels.team.digest: '0 25 * * *' is not a cron expression"),
    (("digest: \"0 8 * * 1-5\"", "digest: \"0 8 * *\""),
     ":7: channels.team.digest: '0 8 * *' is not a cron expression: Wrong number of fields"),
    (("digest: \"0 8 * * 1-5\"", "digest: \"0 8 30 2 *\""),
     ":7: channels.team.digest: '0 8 30 2 *' is not a cron expression: it never fires"),
    (("timezone: Europe/Berlin", "timezone: Europe/Berln"),
     ":8: channels.team.timezone: 'Europe/Berln' is not an IANA time zone name such as UTC or "
     "Europe/Berlin; did you mean 'Europe/Berlin'?"),
    (('to: "07:00"', 'to: "7 am"'),
     ":9: channels.team.quiet_hours.to: '7 am' is not a time of day: write HH:MM"),
    (('to: "07:00"', 'to: "22:00"'),
     ":9: channels.team.quiet_hours: quiet_hours from and to are the same time"),
    (("pace: 2s", "pace: fast"), ":10: channels.team.pace: 'fast' is not a duration"),
    (("burst_limit: 20", "burst_limit: 0"),
     ":11: channels.team.burst_limit: Input should be greater than or equal to 1"),
    (('    digest: "0 18 * * *"', '    digest: "every day"'),
     ":16: subscriptions[0].digest: 'every day' is not a cron expression"),
    (('    digest: "0 18 * * *"', '    quiet_hours: {from: "22:00"}'),
     ":16: subscriptions[0].quiet_hours.to: this required key is missing"),
    (('    digest: "0 18 * * *"', '    digets: "0 18 * * *"'),
     ":16: subscriptions[0].digets: unknown key; did you mean 'digest'?"),
])
def test_bad_values_name_file_line_and_key(tmp_path: Path, edit: tuple[str, str],
                                           expected: str) -> None:
    assert GOOD.count(edit[0]) == 1
    message = load(tmp_path, GOOD.replace(*edit))
    assert message.startswith(str(tmp_path / "notifier.yaml") + expected), message


def test_digest_headline_counts_comments_and_posts_by_post() -> None:
    from notifier.models import Entry, Notice
    from notifier.render import build_digest_context

    def notice(n: int, post: str, kind: str = "comment") -> Notice:
        link = f"http://blog.test/{post}/"
        entry = Entry(key=f"{link}#c{n}", kind="post" if kind == "post" else "comment",
                      author=f"A{n}", title=post, link=link if kind == "post" else f"{link}#c{n}",
                      post_title=post, post_link=link)
        return Notice(notification_id=f"n{n}", subscription="s", channel="c", entry=entry,
                      feed_title="Blog", feed_url="http://blog.test/feed/", is_reply=False,
                      parent=None)

    members = (notice(1, "one"), notice(2, "two"), notice(3, "one"), notice(4, "three", "post"))
    digest = Notice(notification_id="digest-x", subscription="s", channel="c",
                    entry=members[0].entry, feed_title="Blog", feed_url="http://blog.test/feed/",
                    is_reply=False, parent=None, digest=members)
    context = build_digest_context(digest)
    assert context["headline"] == "3 new comments and 1 new post on 3 posts"
    assert [(p["title"], len(p["items"])) for p in context["posts"]] == \
        [("one", 2), ("two", 1), ("three", 1)]
    assert context["link"] == "http://blog.test/feed/"
    single = build_digest_context(dataclasses.replace(digest, digest=members[0:3:2]))
    assert single["headline"] == '2 new comments on "one"'
    assert single["link"] == "http://blog.test/one/"
