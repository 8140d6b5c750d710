"""What the admin listener costs at scale: one /metrics scrape and one status page over a
state of N feeds, read on the store's thread as the daemon does.

    .venv/bin/python benchmarks/admin.py [--feeds 10000]

Builds a SQLite state with N subscriptions, each with its own feed, 1 in 100 failing its
discovery, in a temporary folder, then prints the best of five of: the state read behind
/metrics (`Store.ops_snapshot`), the whole /metrics body, and the status page (read and
render), with the page's size. No thresholds: figures to compare across changes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from notifier.admin import Metrics, read_facts, render_page  # noqa: E402
from notifier.config import load_config  # noqa: E402
from notifier.failures import Failure, FailureKind  # noqa: E402
from notifier.store import Store  # noqa: E402


def best_of(runs: int, work: Callable[[], object]) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "notifier.yaml"
        subs = "".join(f"  - {{name: sub-{i}, url: 'https://blog{i}.example.org/feed/', "
                       f"notify: [me]}}\n" for i in range(args.feeds))
        path.write_text("state: sqlite:///state.db\nchannels:\n  me: {type: console}\n"
                        f"subscriptions:\n{subs}", encoding="utf-8")
        config = load_config(path)
        store = Store(config.state_url())
        store.migrate()
        now = time.time()
        for i, sub in enumerate(config.subscriptions):
            if i % 100 == 0:
                store.record_discovery_error(sub.name, sub.url, sub.watch,
                                             Failure(FailureKind.HTTP, "HTTP 404 Not Found"), now)
            else:
                store.save_discovery(sub.name, sub.url, sub.watch, sub.url, None, 600.0, now)
        metrics = Metrics()

        def scrape() -> bytes:
            snapshot = store.ops_snapshot()
            metrics.observe_state(snapshot, store.disabled_channels(), ["me"], time.time())
            return metrics.render()

        snap, _ = best_of(5, store.ops_snapshot)
        whole, body = best_of(5, scrape)
        page, html = best_of(5, lambda: render_page(read_facts(store, config), config, now))
        store.close()
    assert isinstance(body, bytes) and isinstance(html, str)
    print(f"| {args.feeds:,} feeds | state read for /metrics {snap * 1000:.1f} ms | "
          f"/metrics {whole * 1000:.1f} ms ({len(body):,} bytes) | status page "
          f"{page * 1000:.0f} ms ({len(html.encode()):,} bytes) |")


if __name__ == "__main__":
    main()
