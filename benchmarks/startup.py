"""What `notifier run --once` imports before its first request, library by library.

    .venv/bin/python benchmarks/startup.py --samples 11

Why this exists: a `run --once` over 1,000 unchanged feeds lasts about 0.4-0.5 s, and more
than half of it is the interpreter importing what the run needs, before the first feed is
asked.
That part does not shrink with faster polling, so it decides how far a small run can get
ahead of a tool that imports little (rss2email). This prints it in steps, each the extra
time one more group of imports takes in a fresh interpreter (the groups before it
imported already): the interpreter itself, the standard library a run uses (sqlite3, the
store's driver, among it), pydantic and PyYAML (the configuration), the event loop, the mail
and HTML libraries, and last notifier's own modules (their pydantic models and dataclasses are built
at import). Each step is timed in `--samples` interpreters; the least and the median are
printed. Nothing but the venv is needed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

STEPS: list[tuple[str, str]] = [
    ("standard library a run uses",
     "import asyncio, typing, re, json, logging, dataclasses, decimal, uuid, collections, "
     "weakref, threading, inspect, enum, operator, itertools, functools, datetime, pathlib, "
     "sqlite3, email.utils, socket, hashlib, concurrent.futures, zoneinfo, ssl, argparse, "
     "glob, html.parser, http, ctypes, resource, secrets, multiprocessing.connection"),
    ("pydantic (what the models use)",
     "import pydantic, pydantic.types, pydantic.main, pydantic.functional_validators, "
     "pydantic.networks, pydantic.json_schema, annotated_types"),
    ("PyYAML (libyaml)", "import yaml"),
    ("uvloop and aiohappyeyeballs", "import uvloop, aiohappyeyeballs"),
    ("mail and HTML (smtplib, email, nh3, markupsafe)",
     "import smtplib, email.policy, nh3, markupsafe"),
    ("notifier's own modules",
     "import notifier.commands.run, notifier.daemon, notifier.poll.record, "
     "notifier.channels.email"),
]


def step_time(before: list[str], code: str) -> float:
    """Seconds `code` takes in a fresh interpreter that ran `before` first."""
    program = ";".join([*before, "import time", "t = time.perf_counter()", code,
                        "print(time.perf_counter() - t)"])
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          check=True, timeout=120)
    return float(done.stdout.strip())


def interpreter_time() -> float:
    """Seconds from spawn to exit of an interpreter that does nothing (`-c pass`)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True, timeout=60)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=11)
    args = parser.parse_args()
    rows: list[tuple[str, list[float]]] = [("interpreter start and exit (`-c pass`)", [])]
    rows += [(name, []) for name, _ in STEPS]
    for _ in range(args.samples):  # the steps take turns sample by sample
        rows[0][1].append(interpreter_time())
        for index, (_, code) in enumerate(STEPS):
            rows[index + 1][1].append(step_time([c for _, c in STEPS[:index]], code))
    print(f"{args.samples} samples per step, Python {sys.version.split()[0]}")
    print("| step | least | median |")
    print("| --- | ---: | ---: |")
    for name, times in rows:
        print(f"| {name} | {min(times) * 1000:.0f} ms | {statistics.median(times) * 1000:.0f} ms |")
    total = sum(min(times) for _, times in rows)
    print(f"| all (sum of the least) | {total * 1000:.0f} ms | |")


if __name__ == "__main__":
    main()
