#!/usr/bin/env python3
"""Bootstrap a virtual environment from the project's own files, then run or test.

Only a Python 3.11+ interpreter is needed: the first call creates `.venv`, installs the
project (with the test tools for `test`) and remembers what it installed, so later calls
start at once and reinstall only when pyproject.toml changes.

    python3 scripts/dev.py demo    # a bundled blog on loopback, one notification printed
    python3 scripts/dev.py run     # the daemon on config.example.yaml, state in notifier.db
    python3 scripts/dev.py test    # ruff, mypy, then pytest
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def ensure_venv(extras: str) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script is what checks it
        sys.exit(f"notifier needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    stamp = VENV / f".installed-{extras or 'base'}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    if not (BIN / "python").exists():
        print("creating .venv ...", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(VENV)
    target = f".[{extras}]" if extras else "."
    print(f"installing notifier{f'[{extras}]' if extras else ''} into .venv ...", file=sys.stderr)
    subprocess.run([str(BIN / "python"), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", "-e", target], cwd=ROOT, check=True)
    stamp.write_text(digest)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    rest = argv[1:]
    if command == "run":
        ensure_venv("")
        args = rest or ["-c", str(ROOT / "config.example.yaml")]
        # Become the daemon, so Ctrl-C and SIGTERM reach it directly.
        os.chdir(ROOT)
        os.execv(str(BIN / "notifier"), [str(BIN / "notifier"), "run", *args])
    if command == "demo":
        ensure_venv("")
        os.execv(str(BIN / "notifier"), [str(BIN / "notifier"), "demo", *rest])
    if command == "test":
        ensure_venv("test,postgres")
        # Linters first, so the test runner's summary is the last thing printed.
        steps = [
            [str(BIN / "ruff"), "check", "."],
            [str(BIN / "mypy")],
            [str(BIN / "python"), "-m", "pytest", *rest],
        ]
        for step in steps:
            print(f"$ {' '.join(Path(step[0]).name if i == 0 else a for i, a in enumerate(step))}",
                  file=sys.stderr, flush=True)
            code = subprocess.call(step, cwd=ROOT)
            if code != 0:
                return code
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
