"""Time one notifier cycle over N local WordPress-shaped comment feeds.

    python3 scripts/dev.py run ... is for users; this is for us:
    .venv/bin/python benchmarks/cycle.py [--feeds 1000] [--concurrency 50]

Prints the time of the first cycle (discovery + baseline), of a cycle in which no feed
changed (conditional GETs answered 304), of a cycle in which one feed in ten has a new
comment (the peers' published case), and of a cycle in which every feed has one new comment
(fetch, parse, store, queue N notifications), then of delivering those N notifications to a
local webhook, and the process's peak memory. No thresholds: the figures go in the issue
notes and the README.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from notifier.config import load_config  # noqa: E402
from notifier.daemon import open_engine  # noqa: E402


def write_config(folder: Path, origin: str, feeds: int, concurrency: int) -> Path:
    subs = "\n".join(
        f"  - {{name: t{i}, url: '{origin}/feed/{i}/', watch: comments, notify: [hook]}}"
        for i in range(feeds))
    path = folder / "bench.yaml"
    path.write_text(f"""\
state: sqlite:///bench.db
http: {{concurrency: {concurrency}, per_host: {concurrency}}}
channels:
  hook: {{type: webhook, url: '{origin}/hook', format: json}}
subscriptions:
{subs}
""")
    return path


async def measure(config_path: Path, origin: str) -> list[tuple[str, float, str]]:
    config = load_config(config_path, {})
    rows: list[tuple[str, float, str]] = []
    async with open_engine(config) as pipeline:
        start = time.perf_counter()
        report = await pipeline.poll(force=True)
        rows.append(("first cycle (discover + baseline)", time.perf_counter() - start,
                     f"{report.feeds_polled} feeds, {report.new_entries} entries stored"))
        start = time.perf_counter()
        report = await pipeline.poll(force=True)
        rows.append(("unchanged cycle", time.perf_counter() - start,
                     f"{report.not_modified} answered 304, {report.new_entries} new"))
        for label, every in (("cycle with a new comment in 1 feed of 10", 10),
                             ("cycle with one new comment per feed", 1)):
            urllib.request.urlopen(urllib.request.Request(f"{origin}/_bump?every={every}",
                                                          method="POST"))
            start = time.perf_counter()
            report = await pipeline.poll(force=True)
            rows.append((label, time.perf_counter() - start,
                         f"{report.new_entries} new, {report.queued} queued"))
        start = time.perf_counter()
        delivery = await pipeline.deliver(limit=1_000_000)
        rows.append(("delivering all those (json webhook)", time.perf_counter() - start,
                     f"{delivery.sent} sent, {delivery.failed + delivery.dead} failed"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    server = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "feed_server.py")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        origin = f"http://127.0.0.1:{server.stdout.readline().strip()}"
        with tempfile.TemporaryDirectory() as folder:
            config = write_config(Path(folder), origin, args.feeds, args.concurrency)
            rows = asyncio.run(measure(config, origin))
    finally:
        if server.stdin:
            server.stdin.close()
        server.wait(timeout=10)
    print(f"notifier benchmark: {args.feeds} feeds, concurrency {args.concurrency}, "
          f"Python {sys.version.split()[0]}")
    for name, seconds, detail in rows:
        rate = args.feeds / seconds if seconds else 0
        print(f"  {name:<42} {seconds:7.2f} s  ({rate:6.0f} feeds/s)  {detail}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak memory of the notifier process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
