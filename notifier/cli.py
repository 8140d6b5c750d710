"""The `notifier` entry point; the commands live in `notifier.commands`."""

from __future__ import annotations

from notifier.commands import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
