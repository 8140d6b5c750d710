"""What the subcommands share: exit codes, the `Command` record, loading, time phrases."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from notifier.config import Config
    from notifier.delivery.digest import DeliveryTiming

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_CONFIG = "notifier.yaml"
"""Without -c and $NOTIFIER_CONFIG (read when the command line is, so a test can set it)."""


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    """For a command that takes only the common options."""


@dataclass(frozen=True)
class Command:
    """What one subcommand does: two hooks. Its name and help are listed in
    `notifier.commands.COMMANDS`, which imports its module only when it is used."""

    run: Callable[[argparse.Namespace], int]
    configure: Callable[[argparse.ArgumentParser], None] = _no_arguments
    description: str | None = None
    """The longer text of `notifier COMMAND --help`, if the listed help is not enough."""
    takes_config: bool = True
    """Whether `-c FILE` is offered; `run` loads the file itself (see `load`)."""


def load(args: argparse.Namespace, *, require_secrets: bool = True,
         need_subscriptions: bool = True) -> Config:
    """The configuration named by `-c`; raises ConfigError, which `main` reports.

    Commands that send nothing pass `require_secrets=False`, so that they work from a shell
    without the service's environment file (see `load_config`); `add` and `import` pass
    `need_subscriptions=False`, being how the first one is written.
    """
    from notifier.config import load_config  # not for `notifier --help`

    return load_config(args.config, require_secrets=require_secrets,
                       need_subscriptions=need_subscriptions)


def iso(when: float | None) -> str | None:
    """A time for JSON output: ISO 8601 in UTC, seconds precision."""
    if when is None:
        return None
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="seconds")


def at(now: float, then: float) -> str:
    """`2026-12-02 17:20:00 UTC (in 9m53s)`: the absolute time first, it does not go stale."""
    delta = then - now
    relative = f"in {duration(delta)}" if delta > 0 else "now"
    return f"{when(then)} ({relative})"


def timing(timing: DeliveryTiming) -> list[str]:
    """`digest 0 8 * * * (Europe/Berlin)`, `quiet 22:00-07:00 (UTC)`, for `check`."""
    out = []
    if timing.digest is not None:
        out.append(f"digest {timing.digest} ({timing.timezone})")
    if timing.quiet_hours is not None:
        out.append(f"quiet {timing.quiet_hours.start}-{timing.quiet_hours.end} "
                   f"({timing.timezone})")
    return out


def duration(seconds: float) -> str:
    """`45s`, `9m03s`, `10m`, `2h05m`, `3d`: at most two units, as a person reads them."""
    total = round(seconds)
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    for index, (unit, size) in enumerate(units[:-1]):
        if total >= size:
            whole, rest = divmod(total, size)
            small, small_size = units[index + 1]
            part = rest // small_size
            return f"{whole}{unit}{part:02d}{small}" if part else f"{whole}{unit}"
    return f"{total}s"


def ago(now: float, then: float) -> str:
    return f"{duration(max(now - then, 0))} ago ({when(then)})"


def when(then: float) -> str:
    return datetime.fromtimestamp(then, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
