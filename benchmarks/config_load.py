"""Time `load_config` on 10,000 subscriptions: one file, and the same split over 10 files.

    .venv/bin/python benchmarks/config_load.py [--subscriptions 10000] [--files 10]

Writes both layouts to a temporary folder and prints the best of three loads of each, so
the figure in the README can be checked on any machine. No thresholds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from notifier.config import load_config  # noqa: E402

HEAD = """\
state: sqlite:///bench.db
channels:
  me:
    type: email
    from: "Notifier <notifier@example.org>"
    to: [reader@example.org]
    smtp: {host: smtp.example.org, port: 587, security: starttls}
  team:
    type: webhook
    url: "${TEAM_WEBHOOK_URL:-https://hooks.example.org/x}"
    format: slack
"""


def subscription(i: int) -> str:
    """A realistic mix: block style, several keys, every third one with replies_to."""
    extra = '    replies_to: ["Reader ' + str(i) + '"]\n' if i % 3 == 0 else ""
    return (f"  - name: sub-{i}\n"
            f"    url: https://blog{i % 97}.example.org/{i}/\n"
            f"    watch: {'posts' if i % 3 == 1 else 'comments'}\n"
            f"    notify: [me{', team' if i % 2 else ''}]\n"
            f"    interval: {5 + i % 50}m\n{extra}")


def write(folder: Path, count: int, files: int) -> tuple[Path, Path]:
    single = folder / "single.yaml"
    single.write_text(HEAD + "subscriptions:\n" + "".join(map(subscription, range(count))),
                      encoding="utf-8")
    split = folder / "split"
    (split / "subscriptions.d").mkdir(parents=True)
    main = split / "notifier.yaml"
    main.write_text(HEAD + "include: subscriptions.d/\n", encoding="utf-8")
    per_file = -(-count // files)
    for n in range(files):
        part = range(n * per_file, min(count, (n + 1) * per_file))
        (split / "subscriptions.d" / f"{n:02d}.yaml").write_text(
            "subscriptions:\n" + "".join(map(subscription, part)), encoding="utf-8")
    return single, main


def best_of(path: Path, runs: int, count: int) -> str:
    """Wall and CPU seconds, each the best of `runs`: CPU is the steadier figure on a
    machine shared with other work."""
    wall = cpu = float("inf")
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        config = load_config(path, {})
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
        assert len(config.subscriptions) == count
    return f"{wall:.3f} s wall, {cpu:.3f} s CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        single, split = write(Path(tmp), args.subscriptions, args.files)
        size = single.stat().st_size
        print(f"{args.subscriptions} subscriptions, {size / 1024:.0f} KiB of YAML")
        print(f"one file:          {best_of(single, args.runs, args.subscriptions)} "
              f"(best of {args.runs})")
        print(f"{args.files} included files: "
              f"{best_of(split, args.runs, args.subscriptions)} (best of {args.runs})")


if __name__ == "__main__":
    main()
