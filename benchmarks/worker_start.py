"""A parse worker's start: a fresh pool's first answer, this tree against earlier commits.

    .venv/bin/python benchmarks/worker_start.py --samples 10 --against main

Why this exists: in a changed `run --once` the first changed body waits for the pool's first
worker, and every body after it for that worker's parses, so the worker's start is on the
run's critical path (and each replacement's start is on the path of the bodies behind it).

Each sample is a new interpreter, as `run --once` is (what multiprocessing started once per
process, its resource tracker, is paid by every run): it imports the pool (not timed), then
times `ParsePool(workers=1)` to the answer of its first parse of a small feed (the worker's
start and one parse), and the CPU that took: its own and its children's (the worker, and a
resource tracker where one is started), read from /proc before the pool shuts down. The
variants take turns sample by sample: this tree (copied first, so that edits meanwhile do
not change what runs) and each `--against` commit exported with `git archive`, each first
on PYTHONPATH, so the same venv runs them. Prints per variant the median and minimum.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from changed_run import export  # the commit's package, byte-compiled as installed

ROOT = Path(__file__).resolve().parent.parent
FEED = (b'<?xml version="1.0" encoding="utf-8"?>'
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>Blog</title>'
        b'<id>http://blog.test/</id><updated>2026-01-01T00:00:00Z</updated>'
        b'<entry><title>One</title><id>http://blog.test/1</id>'
        b'<link href="http://blog.test/1"/><updated>2026-01-01T00:00:00Z</updated>'
        b'<content type="html">&lt;p&gt;Hello&lt;/p&gt;</content></entry></feed>')


def _cpu_of(pid: int) -> float:
    """User+system seconds of a live process (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children() -> list[int]:
    found: list[int] = []
    for task in Path("/proc/self/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def sample() -> None:
    """One sample, in its own interpreter; prints its figures as JSON."""
    import asyncio
    import time

    from notifier.models import ParsedFeed
    from notifier.poll.parsepool import ParsePool

    async def first_answer() -> dict[str, float]:
        own = time.process_time()
        started = time.perf_counter()
        pool = ParsePool(workers=1)
        try:
            parsed = await pool.parse(FEED, "http://blog.test/", {})
            wall = time.perf_counter() - started
            assert isinstance(parsed, ParsedFeed), parsed
            cpu = time.process_time() - own + sum(_cpu_of(pid) for pid in _children())
        finally:
            pool.shutdown()
        return {"wall": wall, "cpu": cpu}

    print(json.dumps(asyncio.run(first_answer())))



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--against", nargs="*", default=[], metavar="REV")
    parser.add_argument("--sample", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sample:
        sample()
        return
    with tempfile.TemporaryDirectory(prefix="notifier-worker-start-") as work:
        mine = Path(work) / "this-tree"
        shutil.copytree(ROOT / "notifier", mine / "notifier",
                        ignore=shutil.ignore_patterns("__pycache__"))
        variants = {"this tree": mine}
        for rev in args.against:
            variants[rev] = export(rev, Path(work))
        for folder in variants.values():  # byte-compiled, as an install leaves them
            subprocess.run([sys.executable, "-m", "compileall", "-q", str(folder)],
                           check=True, timeout=600)
        results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
        for _ in range(args.samples):
            for name, folder in variants.items():
                env = {**os.environ, "PYTHONPATH": str(folder)}
                out = subprocess.run([sys.executable, __file__, "--sample"], env=env,
                                     check=True, capture_output=True, text=True,
                                     timeout=300).stdout
                results[name].append(json.loads(out))
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    print("| variant | first answer median | min | CPU median | min |")
    print("|---|---|---|---|---|")
    for name, runs in results.items():
        walls = [r["wall"] for r in runs]
        cpus = [r["cpu"] for r in runs]
        print(f"| {name} | {statistics.median(walls):.3f} s | {min(walls):.3f} s | "
              f"{statistics.median(cpus):.3f} s | {min(cpus):.3f} s |")


if __name__ == "__main__":
    main()
