"""`python -m notifier` and the `notifier` command.

The command's script is re-imported (not run) by every spawned parse worker, so it imports
nothing at module level: the CLI and all it needs are imported only when it runs.
"""

import sys


def main() -> int:
    try:
        from notifier.cli import main as run_cli

        return run_cli()
    except KeyboardInterrupt:  # Ctrl-C while still importing: no traceback either
        return 1


if __name__ == "__main__":
    sys.exit(main())
