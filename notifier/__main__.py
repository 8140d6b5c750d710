"""`python -m notifier` and the `notifier` command.

It imports nothing at module level: the CLI and all it needs are imported only when it runs
(parse workers are plain child processes that import the parser alone, not this script).
"""

import gc
import sys


def main() -> int:
    # No cycle collection while the modules are imported: thousands of classes and
    # functions, no garbage among them, and the collector walked them again and again
    # (a tenth of a short run's CPU). `notifier.commands.main` turns it back on.
    gc.disable()
    try:
        from notifier.cli import main as run_cli

        return run_cli()
    except KeyboardInterrupt:  # Ctrl-C while still importing: no traceback either
        return 1


if __name__ == "__main__":
    sys.exit(main())
