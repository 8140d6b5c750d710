"""The log: one line per event on stderr, as text for a person or JSON for a collector.

`-v` shows notifier's own debug lines only: the libraries' debug output (every HTTP request,
every SQL statement, every scheduler tick) drowns them and prints full request URLs, which can
hold webhook tokens. `-vv` lets the libraries speak too, for a bug report, with every URL in
their lines cut to its scheme and host (`redact.destinations_in`). This is the one place that
sets the libraries' levels.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal

from notifier import redact

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")

THIRD_PARTY = ("aiohttp", "aiosmtpd", "apscheduler", "asyncio", "httpcore", "httpx",
               "httpx_aiohttp", "mail.log", "urllib3")
"""Loggers kept at WARNING unless `-vv`."""
ALWAYS_QUIET = ("apprise",)
"""Loggers kept at WARNING even with `-vv`: Apprise's lines print its service URLs, whose
tokens sit where a host name would (`pover://user@token`), so no redaction can show them."""


class LibraryRedactor(logging.Filter):
    """Every URL in a library's line shown as scheme and host only: httpx logs each request
    (a webhook's token is in its path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "notifier" and not record.name.startswith("notifier."):
            try:
                message = record.getMessage()
            except Exception:  # a library's bad format arguments: `emit` reports those
                return True
            record.msg = redact.destinations_in(message)
            record.args = None
        return True

_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, and any
    `extra=` fields; an exception's traceback goes in `exception`, so a line is never split."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool | dict | list
                                               | None) else str(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def setup_logging(verbose: int = 0, quiet: bool = False, fmt: LogFormat = "text") -> None:
    """Configure the root logger once per process (a second call replaces the first)."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(LibraryRedactor())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s",
                                               datefmt="%Y-%m-%dT%H:%M:%S"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    library_level = level if verbose >= 2 else max(level, logging.WARNING)
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(library_level)
    for name in ALWAYS_QUIET:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
