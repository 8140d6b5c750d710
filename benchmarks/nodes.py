"""Several nodes on one PostgreSQL: cluster cycle time, database round trips, claim cost.

    .venv/bin/python benchmarks/nodes.py --postgres postgresql://... [--feeds 10000]
                      [--nodes 3] [--concurrency 50] [--per-host N] [--delay SECONDS]
                      [--claim-rows 10000 100000]

(`--postgres` defaults to $NOTIFIER_TEST_POSTGRES_URL; `.ci/postgres.sh` starts one.)
Serves N WordPress-shaped comment feeds from `feed_server.py`, starts `--nodes` real node
processes (the daemon's poll cycle, one per process) on one schema, and prints for each
pass over every feed (the first: baseline, bodies parsed; the second: nothing changed,
conditional GETs answered 304) the wall time until every feed was polled once, how the
feeds were shared, the polls that failed (a healthy server: any failure is the poller's,
such as a feed's time budget running out while it queued), and the SQL statements the
nodes sent (each one a round trip). All feeds are on one host, whose slots per node are
`--per-host` (default: as many as `--concurrency`, standing in for many hosts); with
`--delay` each answer takes that long, as from a distant blog whose feeds queue for them.

Then it times the claim statement alone on tables of `--claim-rows` feeds (synthetic rows,
all due), which is what grows with the number of feeds and nodes: the figure to
extrapolate from; and a heartbeat, which reads what every node holds from the whole table
(`--feeds 0`: these costs only). No thresholds: the figures go in benchmarks/README.md.
BENCH_LOG=1 shows the nodes' log (each cycle's summary and time).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from notifier.config import load_config  # noqa: E402
from notifier.daemon import open_engine  # noqa: E402
from notifier.store import Store  # noqa: E402
from notifier.store.db import Connection, Database  # noqa: E402


def schema_url(base: str, schema: str) -> str:
    return f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"


def write_config(folder: Path, name: str, state: str, origin: str, feeds: int,
                 concurrency: int = 50, per_host: int | None = None) -> Path:
    subs = "\n".join(
        f"  - {{name: t{i}, url: '{origin}/feed/{i}/', watch: comments, notify: [hook]}}"
        for i in range(feeds))
    path = folder / f"{name}.yaml"
    path.write_text(f"""\
state: "{state}"
defaults: {{interval: 1h, jitter: 0}}
http: {{concurrency: {concurrency}, per_host: {per_host or concurrency}}}
cluster: {{lease: 30s, node: {name}}}
channels:
  hook: {{type: webhook, url: '{origin}/hook', format: json}}
subscriptions:
{subs}
""")
    return path


async def run_node(config_path: Path, stats: Path) -> None:
    """One node: poll cycles back to back (1 s apart), counting statements, until SIGTERM."""
    config = load_config(config_path, {})
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    counts = {"statements": 0, "polled": 0, "cycles": 0, "claims": 0, "failed": 0}

    def counted(method: Any) -> Any:
        def execute(conn: Connection, statement: str, *args: Any) -> Any:
            counts["statements"] += 1
            if statement.lstrip().upper().startswith("UPDATE FEEDS SET LEASE_OWNER"):
                counts["claims"] += 1
            return method(conn, statement, *args)
        return execute

    Connection.execute = counted(Connection.execute)  # type: ignore[method-assign]
    Connection.execute_many = counted(Connection.execute_many)  # type: ignore[method-assign]
    async with open_engine(config) as engine:
        while not stop.is_set():
            began = time.perf_counter()
            report = await engine.poll()
            logging.info("%s: %s in %.2f s", config.cluster.node, report.summary(),
                         time.perf_counter() - began)
            counts["polled"] += report.feeds_polled
            counts["failed"] += report.feeds_failed
            counts["cycles"] += 1
            partial = stats.with_suffix(".part")  # renamed whole: never read half-written
            partial.write_text(json.dumps(counts))
            partial.replace(stats)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


def node_stats(folder: Path, names: list[str]) -> dict[str, dict[str, int]]:
    out = {}
    for name in names:
        path = folder / f"{name}.json"
        out[name] = {"statements": 0, "polled": 0, "cycles": 0, "claims": 0, "failed": 0,
                     **(json.loads(path.read_text()) if path.exists() else {})}
    return out


def wait_all_polled(engine: Database, after: float, feeds: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            done = conn.execute("SELECT count(*) FROM feeds WHERE last_polled > :t",
                                {"t": after}).scalar()
        if done is not None and done >= feeds:
            return time.time()
        time.sleep(0.2)
    raise SystemExit(f"not every feed was polled within {timeout:.0f} s")


def claim_cost(base: str, rows: int, claims: int = 100, size: int = 50
               ) -> tuple[float, float, float]:
    """Milliseconds per claim of `size` feeds on a table of `rows` due feeds: a daemon's
    claim (any due feed) and a claim naming every feed (`run --once`); and per heartbeat
    (its own row, then what every node holds, read from the whole table)."""
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = Database(base)
    with admin.begin() as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    store = Store(schema_url(base, schema))
    try:
        store.migrate()
        with store.db.begin() as conn:
            conn.execute(
                "INSERT INTO feeds (url, interval, next_due, created) "
                "SELECT 'http://bench.test/' || g, 3600, 0, 0 FROM generate_series(1, :n) g",
                {"n": rows})
            conn.execute("ANALYZE feeds")
            ids = [int(i) for i in conn.execute("SELECT id FROM feeds").scalars()]
        now = time.time()
        start = time.perf_counter()
        for n in range(claims):  # as a daemon claims: any due feed, by the next_due index
            store.claim_feeds(f"node{n % 3}", now, None, size, 60.0)
        by_index = (time.perf_counter() - start) / claims * 1000
        start = time.perf_counter()
        for n in range(claims // 10):  # as `run --once` claims: its feeds named
            store.claim_feeds(f"node{n % 3}", now, ids, size, 60.0)
        named = (time.perf_counter() - start) / (claims // 10) * 1000
        start = time.perf_counter()
        for n in range(claims // 10):
            store.heartbeat(f"node{n % 10}", "bench", "hash", now, 60.0, now)
            store.nodes(now)
        beat = (time.perf_counter() - start) / (claims // 10) * 1000
        return by_index, named, beat
    finally:
        store.close()
        with admin.begin() as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=os.environ.get("NOTIFIER_TEST_POSTGRES_URL"))
    parser.add_argument("--feeds", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50,
                        help="http.concurrency of each node, so its claim size (default 50)")
    parser.add_argument("--per-host", type=int,
                        help="http.per_host of each node (default: --concurrency)")
    parser.add_argument("--delay", type=float, default=0.0,
                        help="seconds the server takes to answer each feed (default 0)")
    parser.add_argument("--claim-rows", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--node", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--stats", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if os.environ.get("BENCH_LOG") else logging.ERROR,
                        format="%(asctime)s %(message)s")
    if args.node:
        asyncio.run(run_node(Path(args.config), Path(args.stats)))
        return
    if not args.postgres:
        raise SystemExit("give --postgres URL or set NOTIFIER_TEST_POSTGRES_URL")
    if args.feeds > 0:
        run_nodes(args.postgres, args.feeds, args.nodes, args.concurrency, args.per_host,
                  args.delay)
    for rows in args.claim_rows:
        ms, named, beat = claim_cost(args.postgres, rows)
        print(f"claim of 50 feeds among {rows} due feeds: {ms:.2f} ms "
              f"({rows // 50} claims, {rows // 50 * ms / 1000:.1f} s of claiming per pass); "
              f"naming all {rows} feeds (run --once): {named:.1f} ms; "
              f"a heartbeat with its look at every node: {beat:.1f} ms")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    procs.clear()


def run_nodes(base: str, feeds: int, nodes: int, concurrency: int,
              per_host: int | None = None, delay: float = 0.0) -> None:
    """The passes over every feed by `nodes` real node processes (see the module doc)."""
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = Database(base)
    with admin.begin() as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = schema_url(base, schema)
    db = Database(url)
    server = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "feed_server.py")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        assert server.stdout is not None
        origin = f"http://127.0.0.1:{int(server.stdout.readline())}"
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            names = [f"node{i + 1}" for i in range(nodes)]
            configs = {n: write_config(folder, n, url, origin, feeds, concurrency, per_host)
                       for n in names}
            # Discovery is not shared (each node would discover every subscription once):
            # one process discovers, as a first `notifier run --once` would.
            started = time.time()

            async def discover() -> None:
                config = load_config(configs[names[0]], {})
                async with open_engine(config) as engine:
                    await engine.poller.planner.plan(force=True)

            asyncio.run(discover())
            print(f"{feeds} feeds discovered by one process in "
                  f"{time.time() - started:.1f} s")
            with db.begin() as conn:
                conn.execute("UPDATE feeds SET next_due = 0, lease_until = NULL")
            if delay:  # discovery went at full speed; the polls meet the slow server
                urllib.request.urlopen(urllib.request.Request(
                    f"{origin}/_delay?seconds={delay}", method="POST"), timeout=10).close()
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            for label in ("first pass (baseline: every body parsed and stored)",
                          "second pass (nothing changed: 304s)"):
                before = node_stats(folder, names)
                t0 = time.time()
                if not procs:
                    procs = [subprocess.Popen(
                        [sys.executable, __file__, "--node", n, "--config", str(configs[n]),
                         "--stats", str(folder / f"{n}.json")], env=env) for n in names]
                else:
                    with db.begin() as conn:
                        conn.execute("UPDATE feeds SET next_due = 0")
                t1 = wait_all_polled(db, t0, feeds, 1800)
                time.sleep(1.5)  # the last cycle's stats file
                after = node_stats(folder, names)
                statements = {n: after[n]["statements"] - before[n]["statements"]
                              for n in names}
                claims = {n: after[n]["claims"] - before[n]["claims"] for n in names}
                failed = sum(after[n]["failed"] - before[n]["failed"] for n in names)
                with db.connect() as conn:
                    shares: dict[str, int] = dict(conn.execute(
                        "SELECT polled_by, count(*) FROM feeds WHERE last_polled > :t "
                        "GROUP BY polled_by", {"t": t0}).tuples())
                total = sum(statements.values())
                print(f"{label}: {t1 - t0:.1f} s for {feeds} feeds on {nodes} "
                      f"nodes; polled by {dict(sorted(shares.items()))}; {failed} polls failed; "
                      f"{total} statements ({total / feeds:.2f} per feed), of which "
                      f"{sum(claims.values())} claims")
            _stop(procs)  # before their folder goes: they write their stats until then
    finally:
        _stop(procs)
        if server.stdin:
            server.stdin.close()  # the server stops when its stdin closes
        server.wait(timeout=10)
        db.dispose()
        with admin.begin() as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


if __name__ == "__main__":
    main()
