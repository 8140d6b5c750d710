"""The changed run alone, the same state each time: this tree against earlier commits.

    .venv/bin/python benchmarks/changed_run.py --feeds 10000 --rounds 3 --against HEAD~1

Why this exists: side_by_side.py runs each scenario once, beside rss2email, and one run on
a shared machine says as much about the machine's other load as about the code. To judge a
change to the changed path (poll of changed feeds, then email delivery), this prepares the
state once (first run, unchanged run, as side_by_side.py does), makes 1 feed in 10 change,
and then runs `notifier run --once` from that same saved state again and again, the code
variants taking turns run by run: this tree (copied first, so that edits meanwhile do not
change what runs) and each `--against` commit exported with `git archive`, each
byte-compiled and put first on PYTHONPATH, so the same venv runs them.

Per run: wall time, CPU (user+sys of the process and its parse workers, from os.wait4),
peak RSS, the emails the SMTP sink counted, and the load average; then per variant the
minimum and median. `--profile` runs each variant once more under cProfile (the main
process only) and prints its top functions (with `--phases`: the phases' run, poll and
delivery apart). `--phases` adds, per variant and round, a run
in one interpreter (this script as the child, under the variant's code): the main
process's CPU for the whole poll (fetch, decide, record; not the parse worker's), then
for delivering the mail it queued, divided by the emails sent.

Needs what side_by_side.py needs (nginx, `.venv`); no rss2email.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from aiosmtpd.controller import Controller

sys.path.insert(0, str(Path(__file__).resolve().parent))

from side_by_side import (
    ROOT,
    Sink,
    compile_notifier,
    ensure_nginx,
    free_port,
    interrupts_as_exit,
    run_whole,
    start_nginx,
    write_feeds,
    write_notifier_config,
)

RUN_TIMEOUT = 600.0


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float
    rss_mib: float
    status: int
    emails: int
    load: float


def export(rev: str, into: Path) -> Path:
    """The `notifier` package of commit `rev`, byte-compiled, in a folder of its own."""
    folder = into / rev.replace("/", "_").replace("~", "-").replace("^", "-")
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "notifier"],
                             check=True, capture_output=True, timeout=120).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True, timeout=120)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(folder / "notifier")],
                   check=True, timeout=600)
    return folder


def run_once(argv: list[str], env: dict[str, str], log: Path, sink: Sink) -> Run:
    sink.take()
    # In the work folder: started in a checkout, `python -m notifier` would import the
    # checkout's notifier for every variant, not the one PYTHONPATH names.
    wall, code, usage = run_whole(argv, log, env, RUN_TIMEOUT, cwd=log.parent)
    time.sleep(0.2)  # the sink's last message is counted before we read it
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024,
               code, sink.take(), os.getloadavg()[0])


def phases_child(config_path: str, profile: bool) -> None:
    """In the child: poll (nothing delivered meanwhile), then deliver; print CPU figures
    (and with `profile`, each phase's profile of the main thread to stderr)."""
    import cProfile

    from notifier.commands.run import run_async, tune_gc
    from notifier.config import load_config
    from notifier.daemon import open_engine

    config = load_config(config_path, {})
    tune_gc()

    async def measure() -> dict[str, float]:
        async with open_engine(config) as engine:
            profiles = [cProfile.Profile(), cProfile.Profile()] if profile else []
            start = time.process_time()
            if profiles:
                profiles[0].enable()
            await engine.poll(force=True)
            polled = time.process_time()
            if profiles:
                profiles[0].disable()
                profiles[1].enable()
            report = await engine.deliver(limit=1_000_000)
            delivered = time.process_time()
            if profiles:
                profiles[1].disable()
            for name, found in zip(("poll", "delivery"), profiles, strict=False):
                print(f"== {name}: main thread", file=sys.stderr)
                stats = pstats.Stats(found, stream=sys.stderr)
                stats.sort_stats("tottime").print_stats(30)
                stats.sort_stats("cumulative").print_stats(50)
        return {"poll": polled - start, "deliver": delivered - polled, "sent": report.sent}

    print(json.dumps(run_async(measure())))


def phases(config: Path, env: dict[str, str], profile: bool = False) -> dict[str, float]:
    done = subprocess.run([sys.executable, __file__, "--phases-child", str(config),
                           *(["--profile"] if profile else [])], env=env,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT, check=True)
    if profile:
        print(done.stderr)
    found: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def restore(saved: Path, folder: Path) -> None:
    for old in folder.glob("notifier.db*"):
        old.unlink()
    for path in saved.glob("notifier.db*"):
        shutil.copy2(path, folder / path.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", nargs="*", default=[],
                        help="commits to compare with this tree (e.g. main, HEAD~1)")
    parser.add_argument("--profile", action="store_true",
                        help="then one run of each variant under cProfile")
    parser.add_argument("--phases", action="store_true",
                        help="also poll and delivery CPU of the main process, in one "
                             "interpreter")
    parser.add_argument("--phases-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phases_child:
        phases_child(args.phases_child, args.profile)
        return
    nginx = ensure_nginx()
    compile_notifier()
    work = Path(tempfile.mkdtemp(prefix="notifier-changed-run-"))
    work.chmod(0o755)
    docroot = work / "www"
    docroot.mkdir()
    docroot.chmod(0o755)
    folder = work / "state"
    folder.mkdir()
    saved = work / "saved"
    saved.mkdir()
    log = work / "notifier.log"
    http_port, smtp_port = free_port(), free_port()
    origin = f"http://127.0.0.1:{http_port}"
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    server: subprocess.Popen[bytes] | None = None
    # This tree is copied too: an edit while the runs go on must not change what they run
    # (nor a parse worker import other code than its parent).
    mine = work / "code" / "this-tree"
    shutil.copytree(ROOT / "notifier", mine / "notifier",
                    ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(mine / "notifier")],
                   check=True, timeout=600)
    variants: dict[str, dict[str, str]] = {"this tree": {**os.environ,
                                                         "PYTHONPATH": str(mine)}}
    results: dict[str, list[Run]] = {}
    split: dict[str, list[dict[str, float]]] = {}
    try:
        with interrupts_as_exit():
            for rev in args.against:
                env = dict(os.environ)
                env["PYTHONPATH"] = str(export(rev, work / "code"))
                variants[rev] = env
            controller.start()
            server = start_nginx(nginx, work, docroot, http_port)
            write_feeds(docroot, origin, args.feeds, changed=False)
            config = write_notifier_config(folder, origin, args.feeds, smtp_port, 60)
            once = [sys.executable, "-m", "notifier", "run", "--once", "-q", "-c", str(config)]
            for step in ("first run", "unchanged"):
                made = run_once(once, variants["this tree"], log, sink)
                print(f"prepared: {step}: {made}", file=sys.stderr, flush=True)
            restore(folder, saved)
            write_feeds(docroot, origin, args.feeds, changed=True)
            for number in range(args.rounds):
                order = list(variants.items())
                if number % 2:
                    order.reverse()  # neither variant always runs first
                for name, env in order:
                    restore(saved, folder)
                    made = run_once(once, env, log, sink)
                    results.setdefault(name, []).append(made)
                    print(f"{name}: {made}", file=sys.stderr, flush=True)
                    if args.phases:
                        restore(saved, folder)
                        split.setdefault(name, []).append(phases(config, env))
                        print(f"{name}: {split[name][-1]}", file=sys.stderr, flush=True)
            if args.profile and args.phases:
                for name, env in variants.items():
                    restore(saved, folder)
                    print(f"\n== profile of the phases: {name}")
                    phases(config, env, profile=True)
            elif args.profile:
                for name, env in variants.items():
                    restore(saved, folder)
                    out = work / "profile.out"
                    run_once([sys.executable, "-m", "cProfile", "-o", str(out), *once[1:]],
                             env, log, sink)
                    print(f"\n== profile: {name} (main process; tottime)")
                    stats = pstats.Stats(str(out))
                    stats.sort_stats("tottime").print_stats(25)
                    print(f"== profile: {name} (cumulative)")
                    stats.sort_stats("cumulative").print_stats(40)
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
        with contextlib.suppress(Exception):
            controller.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.feeds} feeds, 1 in 10 changed, `notifier run --once` from one saved state; "
          f"{args.rounds} runs per variant, taking turns")
    print("| variant | wall min | wall median | CPU min | CPU median | peak RSS max | emails "
          "| load (1 min) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    for name, runs in results.items():
        walls = [r.wall for r in runs]
        cpus = [r.cpu for r in runs]
        print(f"| {name} | {min(walls):.2f} s | {statistics.median(walls):.2f} s | "
              f"{min(cpus):.2f} s | {statistics.median(cpus):.2f} s | "
              f"{max(r.rss_mib for r in runs):.0f} MiB | "
              f"{', '.join(str(r.emails) for r in runs)} | "
              f"{', '.join(f'{r.load:.1f}' for r in runs)} |")
    for name, runs in results.items():
        if failed := [r.status for r in runs if r.status != 0]:
            # An older commit refuses a state a newer schema migrated (it exits 1 at once):
            # its figures are of that refusal, not of a run.
            print(f"warning: {name} exited {', '.join(map(str, failed))} in {len(failed)} of "
                  f"{len(runs)} runs; its figures are not a run's", file=sys.stderr)
    if split:
        print("\nIn one interpreter, main process CPU (min, median): the whole poll, and "
              "delivery per email sent")
        print("| variant | poll (all feeds) | delivery per email |")
        print("| --- | ---: | ---: |")
        for name, figures in split.items():
            poll = [f["poll"] for f in figures]
            send = [f["deliver"] / max(f["sent"], 1) * 1000 for f in figures]
            print(f"| {name} | {min(poll):.2f} s, {statistics.median(poll):.2f} s | "
                  f"{min(send):.2f} ms, {statistics.median(send):.2f} ms |")


if __name__ == "__main__":
    main()
