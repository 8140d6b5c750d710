"""`python -m notifier` and the `notifier` command.

The command's script is re-imported (not run) by every spawned parse worker, so it imports
nothing at module level: the CLI and all it needs are imported only when it runs.
"""

import sys


def main() -> int:
    from notifier.cli import main as run_cli

    return run_cli()


if __name__ == "__main__":
    sys.exit(main())
