"""The unchanged path, two versions of notifier taking turns over one state and one nginx.

    .venv/bin/python benchmarks/unchanged.py --feeds 10000 --work DIR --mode once \
        --tree OLD_SOURCE_TREE --tree .

Why this exists: side_by_side.py answers "how far from rss2email" in one 10-minute run whose
figures move with the machine's other load; a change to the unchanged path needs "is this
faster than the code before it", which one run of each cannot say on a shared machine. Here
each `--tree` (a folder holding a `notifier` package: this checkout, or an older commit
unpacked with `git archive COMMIT notifier | tar -x -C DIR`) runs in turn, round after
round, from the same copy of the state against the same nginx, so that load falls on all
alike; the minimum and median of each are printed.

Modes:
- `once`: `notifier run --once` as a whole process: wall, CPU (user+sys, os.wait4), peak RSS.
- `daemon`: `notifier run`, its feeds' `next_due` set to now + `--lead` seconds, spread
  evenly over `--spread` seconds (0: all due at once); the CPU of the process from its
  first poll cycle summary's start of window to the moment the summaries count every feed,
  per thread (main, store, others) from /proc.

The first invocation with a new `--work` folder writes the feeds, runs the first (baseline)
run and one unchanged run, and keeps that state as the copy every measured run starts
from; later invocations reuse it (nginx is started on the same port again).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from side_by_side import (
    CycleCounter,
    ensure_nginx,
    free_port,
    start_nginx,
    stop_daemon,
    write_feeds,
    write_notifier_config,
)

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def setup(work: Path, count: int) -> tuple[Path, int]:
    """The feeds, the configuration and the baselined state; reused when present."""
    meta = work / "meta.json"
    if meta.exists():
        data = json.loads(meta.read_text())
        return work / "notifier.yaml", int(data["port"])
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o755)
    port = free_port()
    docroot = work / "www"
    docroot.mkdir(exist_ok=True)
    docroot.chmod(0o755)
    write_feeds(docroot, f"http://127.0.0.1:{port}", count, changed=False)
    # No mail is sent by an unchanged run; the channel points at a closed port.
    config = write_notifier_config(work, f"http://127.0.0.1:{port}", count, free_port(), 60)
    meta.write_text(json.dumps({"port": port, "feeds": count}))
    return config, port


def run_env(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree.resolve())
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def restore(work: Path) -> None:
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            (work / f"notifier.db{suffix}").unlink()
    shutil.copyfile(work / "pristine.db", work / "notifier.db")


def once(tree: Path, config: Path, work: Path) -> tuple[float, float, float]:
    """One `run --once`: wall, CPU, peak RSS in MiB."""
    started = time.perf_counter()
    with (work / "once.log").open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "notifier", "run", "--once", "-q",
                                 "-c", str(config)], env=run_env(tree), cwd=work,
                                stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        print(f"warning: run --once of {tree} exited {status}", file=sys.stderr)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def _threads(pid: int) -> dict[str, float]:
    """CPU seconds per thread name of a process, and of its children as "children"."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            stat = (task / "stat").read_text()
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            # Python does not name its threads for the system: "threads" is the store's
            # thread and the pools' (parse hand-over, resolver).
            key = "main" if task.name == str(pid) else (
                "store" if name.startswith("store") else "threads")
            out[key] = out.get(key, 0.0) + (int(fields[11]) + int(fields[12])) / TICKS
            # system time apart (loopback sends and receives are the kernel's work)
            out["sys"] = out.get("sys", 0.0) + int(fields[12]) / TICKS
    children = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(pid):
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                fields = stat[stat.rindex(")") + 2:].split()
                if int(fields[1]) == pid:
                    children += (int(fields[11]) + int(fields[12])) / TICKS
    out["children"] = children
    return out


def daemon(tree: Path, config: Path, work: Path, count: int, lead: float, spread: float,
           profile: Path | None) -> dict[str, float] | None:
    """CPU of one unchanged cycle inside `notifier run`, per thread; None if it did not
    finish in time."""
    now = time.time()
    db = sqlite3.connect(work / "notifier.db")
    try:
        with db:
            ids = [row[0] for row in db.execute("SELECT id FROM feeds ORDER BY id")]
            db.executemany("UPDATE feeds SET next_due = ? WHERE id = ?",
                           [(now + lead + spread * i / max(1, len(ids)), fid)
                            for i, fid in enumerate(ids)])
    finally:
        db.close()  # before the next run's copy replaces the file under it
    with (work / "daemon.log").open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "notifier", "run", "-c", str(config)],
                                env=run_env(tree), cwd=work, stdout=log,
                                stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        counter = CycleCounter(proc.stderr, log)
        spy: subprocess.Popen[bytes] | None = None
        try:
            if not counter.running.wait(120):
                return None
            wait = now + lead - 1.0 - time.time()
            if wait < 0:
                print("warning: --lead too short, the daemon started after the first due "
                      "time", file=sys.stderr)
            time.sleep(max(0.0, wait))
            counter.reset()
            if profile is not None:
                spy = subprocess.Popen(["py-spy", "record", "-p", str(proc.pid), "-o",
                                        str(profile), "-f", "raw", "-r", "200", "--threads",
                                        "--nonblocking"], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            before = _threads(proc.pid)
            start = time.monotonic()
            while time.monotonic() < start + spread + 120 and proc.poll() is None:
                if counter.polls >= count:
                    break
                time.sleep(0.05)
            else:
                return None
            after = _threads(proc.pid)
            figure = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
            figure["total"] = sum(v for k, v in figure.items() if k != "sys")
            figure["window"] = time.monotonic() - start
            return figure
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(60)
            stop_daemon(proc)
            counter.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=10000)
    parser.add_argument("--work", type=Path, required=True,
                        help="folder for the feeds and the state (kept between invocations)")
    parser.add_argument("--tree", type=Path, action="append",
                        help="a folder holding a notifier package (repeat; default: .)")
    parser.add_argument("--mode", choices=("once", "daemon"), default="once")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lead", type=float, default=20.0,
                        help="daemon: seconds from start to the first due feed")
    parser.add_argument("--spread", type=float, default=0.0,
                        help="daemon: seconds over which the feeds come due")
    parser.add_argument("--profile", type=Path,
                        help="daemon: py-spy raw profile of each run, to this prefix")
    args = parser.parse_args()
    trees = args.tree or [ROOT]
    config, port = setup(args.work, args.feeds)
    server = start_nginx(ensure_nginx(), args.work, args.work / "www", port)
    try:
        if not (args.work / "pristine.db").exists():
            print("first run (baseline) ...", file=sys.stderr, flush=True)
            print(f"  {once(ROOT, config, args.work)}", file=sys.stderr)
            print(f"  unchanged: {once(ROOT, config, args.work)}", file=sys.stderr)
            shutil.copyfile(args.work / "notifier.db", args.work / "pristine.db")
        for tree in trees:
            subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "notifier")],
                           check=True)
        results: dict[Path, list[dict[str, float]]] = {t: [] for t in trees}
        for rnd in range(args.rounds):
            for index, tree in enumerate(trees):
                restore(args.work)
                load = os.getloadavg()[0]
                if args.mode == "once":
                    wall, cpu, rss = once(tree, config, args.work)
                    figure = {"wall": wall, "cpu": cpu, "rss": rss}
                else:
                    profile = (Path(f"{args.profile}-{index}-{rnd}.txt") if args.profile
                               else None)
                    found = daemon(tree, config, args.work, args.feeds, args.lead,
                                   args.spread, profile)
                    if found is None:
                        print(f"  {tree}: cycle did not finish", file=sys.stderr)
                        continue
                    figure = found
                figure["load"] = load
                results[tree].append(figure)
                print(f"  round {rnd + 1} {tree}: "
                      + ", ".join(f"{k} {v:.2f}" for k, v in figure.items()),
                      file=sys.stderr, flush=True)
    finally:
        server.terminate()
        server.wait(10)
    key = "cpu" if args.mode == "once" else "total"
    for tree, figures in results.items():
        if not figures:
            continue
        values = sorted(f[key] for f in figures)
        print(f"{tree}: {key} min {values[0]:.2f} s, median {statistics.median(values):.2f} s "
              f"over {len(values)} runs; load {min(f['load'] for f in figures):.1f}-"
              f"{max(f['load'] for f in figures):.1f}")


if __name__ == "__main__":
    main()
