"""CPU of one parse (`notifier.parse.parse_feed`), what a parse worker spends per changed feed.

    .venv/bin/python benchmarks/parse_speed.py [--passes 9] [--tree DIR ...]

The bodies: the 100 feeds that change in changed_run.py's 1,000 (side_by_side.py's
WordPress-like RSS, half comment feeds, half post feeds, ten items each, each with its own
URLs), and the real WordPress 6.1 feeds of tests/fixtures. Each body is parsed once per
pass, in one interpreter, with feedparser's remembered URI joins forgotten before each parse
(`feedparser_shortcuts`), as a worker meets a feed it has not seen; the figure is CPU per
body, the least and the median pass. Every `--tree` (a folder holding a `notifier` package,
e.g. `git archive COMMIT notifier | tar -x -C DIR`) runs in a child of its own, taking turns
pass by pass with the others, so that the machine's other load falls on all alike; without
`--tree`, this checkout. No thresholds.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bodies() -> dict[str, list[tuple[bytes, str]]]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from side_by_side import feed_body, feed_url

    origin = "http://127.0.0.1:8080"
    fixtures = sorted((ROOT / "tests" / "fixtures" / "wordpress-6.1").rglob("*.xml"))
    return {
        "benchmark feeds": [(feed_body(origin, i, 31), feed_url(origin, i))
                            for i in range(0, 1000, 10)],
        "WordPress 6.1 fixtures": [(path.read_bytes(), f"https://blog.example/{path.name}")
                                   for path in fixtures],
    }


def forget_joins() -> None:
    """Clear what `feedparser_shortcuts` remembered (nothing to do where it does not exist)."""
    import feedparser.mixin
    import feedparser.urls

    for function in (feedparser.mixin._urljoin, feedparser.mixin.make_safe_absolute_uri,
                     feedparser.urls.make_safe_absolute_uri):
        for cell in getattr(function, "__closure__", None) or ():
            clear = getattr(cell.cell_contents, "cache_clear", None)
            if clear is not None:
                clear()


def one_pass() -> None:
    """In the child: one pass over every body; prints CPU ms per body for each set."""
    from notifier.parse import parse_feed

    figures = {}
    for name, group in bodies().items():
        parse_feed(*group[0])  # imports and first-use costs are not a parse's
        spent = 0.0
        for body, url in group:
            forget_joins()
            start = time.process_time()
            parse_feed(body, url)
            spent += time.process_time() - start
        figures[name] = spent / len(group) * 1000
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=9)
    parser.add_argument("--tree", action="append", default=[])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        gc.collect()
        one_pass()
        return
    trees = args.tree or [str(ROOT)]
    found: dict[str, dict[str, list[float]]] = {tree: {} for tree in trees}
    for _ in range(args.passes):
        for tree in trees:
            done = subprocess.run([sys.executable, __file__, "--child"], check=True,
                                  capture_output=True, text=True, timeout=600,
                                  env={**os.environ, "PYTHONPATH": tree})
            for name, ms in json.loads(done.stdout).items():
                found[tree].setdefault(name, []).append(ms)
    print(f"CPU per parse, ms (least, median of {args.passes} passes; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())})")
    print("| tree | " + " | ".join(next(iter(found.values()))) + " |")
    print("| --- |" + " ---: |" * len(next(iter(found.values()))))
    for tree, sets in found.items():
        print(f"| {tree} | " + " | ".join(f"{min(v):.2f}, {statistics.median(v):.2f}"
                                          for v in sets.values()) + " |")


if __name__ == "__main__":
    main()
