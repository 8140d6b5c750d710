"""What a parse worker process runs, in a module of its own.

A worker unpickles the job by module and name, so it imports this module and what it
imports: the parser alone, not the daemon's HTTP client, SQL layer and configuration, which
would cost every worker half a second of start-up.
"""

from __future__ import annotations

from notifier.models import ParsedFeed
from notifier.parse import ParseError, parse_feed

__all__ = ["parse_job"]


def parse_job(body: bytes, url: str, headers: dict[str, str]) -> ParsedFeed | str:
    """The parsed feed or the reason it is not one; never raises."""
    try:
        return parse_feed(body, url, headers)
    except ParseError as exc:
        return str(exc)
    except Exception as exc:
        return f"parser failed: {type(exc).__name__}: {exc}"
