"""notifier and rss2email 3.14, run as their users run them, over the same nginx-served feeds.

    .venv/bin/python benchmarks/side_by_side.py --feeds 1000 10000

Why this exists: benchmarks/cycle.py times notifier's pipeline inside one Python process
against a purpose-built server; the project's targets compare against rss2email, the tool
notifier replaces, so this benchmark measures what a user would see: whole processes
(`notifier run --once`, `r2e run`), start-up included, against a stock web server (nginx,
which sends ETag/Last-Modified from the file's mtime and answers 304), delivering real email
to a local SMTP sink. Both tools read the same files and see the same changes, and they
take turns run by run (notifier's first run, rss2email's, notifier's unchanged run, ...), so
that load from other work on the machine falls on both alike.

For each N: first run (baseline; rss2email `run --no-send`, as its users start), unchanged
run, and a run in which 1 feed in 10 has one new item. Per run: wall time, CPU seconds
(user+sys of the child, from os.wait4) and peak RSS (ru_maxrss of the child). Then notifier
as a daemon (`notifier run`): the CPU it spends on one full unchanged cycle, read from
/proc (the process and its parse workers), and its resident memory.

The feeds are spread over 16 sites, one loopback address each (127.0.0.1 to 127.0.0.16,
all served by the one nginx), as a reader's feeds are spread over many sites: notifier's
politeness and its split of a large run between two processes both go by host. notifier
gets `per_host` equal to `concurrency` (16 hosts stand in for the hundreds a real list
holds); rss2email fetches one feed after another whatever the host.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any

from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent
R2E_VERSION = "3.14"
WINDOW = 10
"""Items per feed: WordPress's default feed window."""
BASE = datetime(2026, 1, 1, tzinfo=UTC)
BASE_MTIME = BASE.timestamp()
CHANGED_MTIME = BASE_MTIME + 86400
"""Changed files get a later mtime, so nginx's ETag and Last-Modified change with them."""
RUN_TIMEOUT = 3600.0
"""No single run may take longer than this; a hung tool ends the benchmark, not the machine."""


# --- the feeds -------------------------------------------------------------------------

HOSTS = 16
"""Loopback addresses the feeds are spread over, one site each (see the docstring)."""


def site(origin: str, index: int) -> str:
    """Feed `index`'s origin: `origin` (on 127.0.0.1) moved to its site's address."""
    return origin.replace("//127.0.0.1:", f"//127.0.0.{1 + index % HOSTS}:", 1)


def _rss_item(origin: str, index: int, number: int, comments: bool) -> str:
    when = format_datetime(BASE + timedelta(hours=index % 97, minutes=number), usegmt=True)
    origin = site(origin, index)
    post = f"{origin}/{index}/a-post-about-things-{index}/"
    if comments:
        guid = f"{origin}/?p={index}#comment-{number}"
        return f"""
	<item>
		<title>By: Reader {number}</title>
		<link>{post}#comment-{number}</link>
		<dc:creator><![CDATA[Reader {number}]]></dc:creator>
		<pubDate>{when}</pubDate>
		<guid isPermaLink="false">{guid}</guid>
		<description><![CDATA[Comment {number} on post {index}, with words.]]></description>
		<content:encoded><![CDATA[<p>Comment number {number} on post {index}, with a \
<a href="https://example.org/">link</a> &amp; some <strong>markup</strong>. Lorem ipsum \
dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt.</p>
]]></content:encoded>
	</item>"""
    link = f"{origin}/{index}/post-{number}/"
    return f"""
	<item>
		<title>Post {number} of blog {index}</title>
		<link>{link}</link>
		<comments>{link}#comments</comments>
		<dc:creator><![CDATA[Author {index}]]></dc:creator>
		<pubDate>{when}</pubDate>
		<category><![CDATA[Uncategorized]]></category>
		<guid isPermaLink="false">{origin}/?p={index * 1000 + number}</guid>
		<description><![CDATA[Summary of post {number}, blog {index} [&#8230;]]]></description>
		<content:encoded><![CDATA[<p>Post {number} of blog {index}. Lorem ipsum dolor sit \
amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna \
aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris.</p>
<p>A second paragraph with a <a href="https://example.org/">link</a>.</p>
]]></content:encoded>
		<wfw:commentRss>{link}feed/</wfw:commentRss>
		<slash:comments>0</slash:comments>
	</item>"""


def feed_body(origin: str, index: int, newest: int) -> bytes:
    """RSS 2.0 as WordPress writes it: even indices are comment feeds, odd ones post feeds."""
    comments = index % 2 == 0
    items = "".join(_rss_item(origin, index, n, comments)
                    for n in range(newest, newest - WINDOW, -1))
    self_url = feed_url(origin, index)
    origin = site(origin, index)
    if comments:
        title = f"Comments on: A post about things {index}"
        link = f"{origin}/{index}/a-post-about-things-{index}/"
    else:
        title = f"Blog {index}"
        link = f"{origin}/{index}/"
    return f"""<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"
	xmlns:content="http://purl.org/rss/1.0/modules/content/"
	xmlns:dc="http://purl.org/dc/elements/1.1/"
	xmlns:atom="http://www.w3.org/2005/Atom"
	xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"
	xmlns:wfw="http://wellformedweb.org/CommentAPI/"
	xmlns:slash="http://purl.org/rss/1.0/modules/slash/">
<channel>
	<title>{title}</title>
	<atom:link href="{self_url}" rel="self" type="application/rss+xml" />
	<link>{link}</link>
	<description>Just another blog</description>
	<lastBuildDate>{format_datetime(BASE + timedelta(minutes=newest), usegmt=True)}\
</lastBuildDate>
	<language>en-US</language>
	<sy:updatePeriod>hourly</sy:updatePeriod>
	<sy:updateFrequency>1</sy:updateFrequency>{items}
</channel>
</rss>
""".encode()


def feed_url(origin: str, index: int) -> str:
    kind = "comments" if index % 2 == 0 else "posts"
    return f"{site(origin, index)}/{kind}/{index}.xml"


def write_feeds(root: Path, origin: str, count: int, *, changed: bool) -> None:
    """Every feed in its first state, or with one new item in every 10th feed.

    mtimes are set explicitly, so the unchanged files keep their validators across rewrites
    and both tools meet identical ETags."""
    for kind in ("comments", "posts"):
        (root / kind).mkdir(parents=True, exist_ok=True)
        (root / kind).chmod(0o755)
    for index in range(count):
        bumped = changed and index % 10 == 0
        path = root / feed_url("", index).lstrip("/")
        path.write_bytes(feed_body(origin, index, 20 + (1 if bumped else 0)))
        mtime = CHANGED_MTIME if bumped else BASE_MTIME
        os.utime(path, (mtime, mtime))


# --- servers -------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {seconds:.0f} s")


def ensure_nginx() -> str:
    """nginx from Debian's packages when it is missing: the web server most blogs sit behind."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if found:
        return found
    subprocess.run(["apt-get", "install", "-y", "nginx-light"], check=False, timeout=600)
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if not found:
        subprocess.run(["apt-get", "install", "-y", "nginx"], check=True, timeout=600)
        found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if not found:
        raise RuntimeError("nginx could not be installed")
    return found


def start_nginx(nginx: str, folder: Path, docroot: Path, port: int) -> subprocess.Popen[bytes]:
    """Our own nginx in the foreground: its own config, loopback only, static files.

    Defaults kept where they matter: `etag on` and `if_modified_since exact`, so validators
    come from the file's mtime and size, as on a real static site or cache."""
    conf = folder / "nginx.conf"
    conf.write_text(f"""\
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    types {{ application/rss+xml xml; }}
    default_type application/octet-stream;
    keepalive_requests 100000;
    server {{
        {" ".join(f"listen 127.0.0.{k}:{port};" for k in range(1, HOSTS + 1))}
        root {docroot};
        etag on;
        if_modified_since exact;
    }}
}}
""")
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
    except RuntimeError:
        proc.kill()
        raise
    return proc


class Sink:
    """An SMTP server that accepts and counts every message: both tools' email arrives here."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.count += 1
        return "250 OK"

    def take(self) -> int:
        with self._lock:
            count, self.count = self.count, 0
            return count


# --- the tools -----------------------------------------------------------------------

def ensure_rss2email() -> Path:
    """rss2email 3.14 in a venv of its own, kept under the temp dir so reruns skip pip."""
    home = Path(tempfile.gettempdir()) / f"notifier-bench-rss2email-{R2E_VERSION}"
    r2e = home / "bin" / "r2e"
    if r2e.exists():
        probe = subprocess.run([str(r2e), "--version"], capture_output=True, text=True,
                               timeout=60, check=False)
        if R2E_VERSION in probe.stdout + probe.stderr:
            return r2e
        shutil.rmtree(home)
    venv.EnvBuilder(with_pip=True, clear=True).create(home)
    subprocess.run([str(home / "bin" / "python"), "-m", "pip", "install", "-q",
                    f"rss2email=={R2E_VERSION}"], check=True, timeout=900)
    return r2e


def notifier_command() -> str:
    found = Path(sys.executable).parent / "notifier"
    return str(found) if found.exists() else shutil.which("notifier") or "notifier"


def compile_notifier() -> None:
    """Byte-compile the notifier package being measured, as `pip install` does.

    An editable install (the development venv) or PYTHONDONTWRITEBYTECODE in the environment
    would otherwise leave it compiling every module from source at every start, which no
    installed notifier does (rss2email's venv is compiled by pip).
    """
    import notifier

    subprocess.run([sys.executable, "-m", "compileall", "-q",
                    str(Path(notifier.__file__).parent)], check=True, timeout=600)


def write_notifier_config(folder: Path, origin: str, count: int, smtp_port: int,
                          interval: int) -> Path:
    subs = "\n".join(
        f"  - {{name: f{i}, url: '{feed_url(origin, i)}', "
        f"watch: {'comments' if i % 2 == 0 else 'posts'}, notify: [mail]}}"
        for i in range(count))
    path = folder / "notifier.yaml"
    path.write_text(f"""\
state: sqlite:///{folder / 'notifier.db'}
defaults: {{interval: {interval}s, jitter: 0}}
http: {{concurrency: 50, per_host: 50}}
channels:
  mail:
    type: email
    from: "Notifier <notifier@example.org>"
    to: [reader@example.org]
    smtp: {{host: 127.0.0.1, port: {smtp_port}, security: none}}
subscriptions:
{subs}
""")
    return path


def write_r2e_config(folder: Path, origin: str, count: int, smtp_port: int) -> tuple[Path, Path]:
    """rss2email's INI written directly: `r2e add` 10,000 times would take far longer than
    the runs being measured, and this is the file `r2e add` writes."""
    config = folder / "rss2email.cfg"
    data = folder / "rss2email.json"
    feeds = "".join(f"\n[feed.f{i}]\nurl = {feed_url(origin, i)}\n" for i in range(count))
    config.write_text(f"""\
[DEFAULT]
from = rss2email@example.org
to = reader@example.org
email-protocol = smtp
smtp-server = 127.0.0.1:{smtp_port}
smtp-auth = False
smtp-ssl = False
{feeds}""")
    return config, data


@dataclass(frozen=True)
class Measure:
    wall: float
    cpu: float
    rss_mib: float
    status: int
    emails: int


def run_whole(argv: list[str], log: Path, env: dict[str, str] | None = None,
              timeout: float = RUN_TIMEOUT, cwd: Path | None = None
              ) -> tuple[float, int, resource.struct_rusage]:
    """One whole process, its output appended to `log`: wall clock from spawn to exit, its
    exit status, and the child's own rusage (CPU, peak RSS). Killed after `timeout` s.

    `cwd`: where it runs. `python -m notifier` puts its working directory first on the
    import path, so a run started inside a checkout imports that checkout's notifier
    whatever PYTHONPATH says: runs of other code (`changed_run.py`'s exports) go elsewhere.
    """
    with log.open("ab") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.005)
        wall = time.perf_counter() - start
    return wall, os.waitstatus_to_exitcode(status), usage


def timed(argv: list[str], log: Path, sink: Sink) -> Measure:
    """One whole process: wall clock from spawn to exit; the child's own rusage."""
    sink.take()
    wall, code, usage = run_whole(argv, log)
    time.sleep(0.2)  # the sink's last message is counted before we read it
    measure = Measure(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024,
                      code, sink.take())
    # Each figure as soon as it exists: a long run cut short still leaves its finished rows.
    print(f"  {Path(argv[0]).name} {' '.join(a for a in argv[1:] if not a.startswith('/'))}: "
          f"{measure}", file=sys.stderr, flush=True)
    return measure


@dataclass(frozen=True)
class DaemonFigure:
    cycles: tuple[float, ...]
    """CPU of each unchanged cycle measured, in order."""
    window: float
    polls: int
    rss_mib: float
    workers_rss_mib: float

    @property
    def cpu(self) -> float:
        """The median cycle: one cycle's figure moved by a quarter with the machine's
        other work (1.06-1.76 s for the same code at 10,000 feeds)."""
        return statistics.median(self.cycles)


def _proc_cpu_and_rss(pid: int) -> tuple[float, float, float]:
    """CPU seconds of a process and its live children (parse workers), and their RSS."""
    tick = os.sysconf("SC_CLK_TCK")
    cpu, main_rss, child_rss = 0.0, 0.0, 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        ppid = int(fields[1])
        if int(entry.name) != pid and ppid != pid:
            continue
        cpu += sum(int(f) for f in fields[11:15]) / tick  # utime stime cutime cstime
        rss = re.search(r"VmRSS:\s+(\d+)", status)
        kib = int(rss.group(1)) if rss else 0
        if int(entry.name) == pid:
            main_rss = kib / 1024
        else:
            child_rss += kib / 1024
    return cpu, main_rss, child_rss


class CycleCounter:
    """Reads a running daemon's log (its stderr, copied to `log`): whether it is up, and
    how many polls its cycle summaries have counted. Unchanged polls log at DEBUG; each
    cycle logs one INFO summary with its count."""

    def __init__(self, stream: IO[str], log: IO[bytes]) -> None:
        self.running = threading.Event()
        self._polls = 0
        self._lock = threading.Lock()
        self._stream = stream
        self._log = log
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self._stream:
            self._log.write(line.encode())
            if " running: " in line:
                self.running.set()
            elif found := re.search(r" poll cycle: (\d+) feeds polled", line):
                with self._lock:
                    self._polls += int(found.group(1))

    @property
    def polls(self) -> int:
        with self._lock:
            return self._polls

    def reset(self) -> None:
        with self._lock:
            self._polls = 0

    def join(self) -> None:
        self._reader.join(5)


def stop_daemon(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


DAEMON_LEAD = 20.0
DAEMON_CYCLES = 3
DAEMON_GAP = 8.0
"""Seconds from the end of one measured cycle to the next one's due time: more than the
daemon's tick (`poll_tick_seconds`: 6 s at a 60 s interval), so it is idle when the next
window opens."""
"""Seconds from the daemon's start to the moment every feed comes due (its start-up, the
loading of N subscriptions included, must be over by then)."""


def due_all_at(state: Path, when: float) -> None:
    """Make every feed of the state due at `when`: the daemon's window then opens before
    its cycle starts, whatever the runs before left as due times (the changed run and
    rss2email's took 40 s at 10,000, and feeds coming due meanwhile started the cycle
    before a window opened after start-up would)."""
    db = sqlite3.connect(state)
    try:
        with db:
            db.execute("UPDATE feeds SET next_due = ?", (when,))
    finally:
        db.close()


def daemon_tick(config: Path, count: int, interval: int, log: Path,
                cycles: int = DAEMON_CYCLES) -> DaemonFigure | None:
    """CPU of `notifier run` over `cycles` full unchanged cycles, each apart, start-up
    excluded.

    Every feed is made due `DAEMON_LEAD` s after the daemon's start, and again
    `DAEMON_GAP` s after each cycle (the state's `next_due`, which the running daemon reads
    at each of its ticks); a window opens a second before each due time, once the daemon
    is idle, and closes when its cycle summaries have counted N polls."""
    state = config.parent / "notifier.db"
    due = time.time() + DAEMON_LEAD
    due_all_at(state, due)
    with log.open("ab") as out:
        proc = subprocess.Popen([notifier_command(), "run", "-c", str(config)],
                                stdout=out, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        counter = CycleCounter(proc.stderr, out)
        try:
            if not counter.running.wait(120):
                return None
            taken: list[float] = []
            windows: list[float] = []
            for cycle in range(cycles):
                if cycle:
                    due = time.time() + DAEMON_GAP
                    due_all_at(state, due)
                wait = due - 1.0 - time.time()
                if wait < 0:
                    print(f"warning: the daemon took more than {DAEMON_LEAD:g} s to start; "
                          "its window may miss the start of its cycle", file=sys.stderr)
                time.sleep(max(0.0, wait))
                counter.reset()
                cpu0, _, _ = _proc_cpu_and_rss(proc.pid)
                start = time.monotonic()
                deadline = start + interval * 2 + 300
                while time.monotonic() < deadline and proc.poll() is None:
                    if counter.polls >= count:
                        break
                    time.sleep(0.1)
                else:
                    return None
                cpu1, rss, workers = _proc_cpu_and_rss(proc.pid)
                taken.append(cpu1 - cpu0)
                windows.append(time.monotonic() - start)
            return DaemonFigure(tuple(taken), statistics.median(windows), counter.polls, rss,
                                workers)
        finally:
            stop_daemon(proc)
            counter.join()


# --- one N ---------------------------------------------------------------------------

SCENARIOS = ("first run", "unchanged", "1 in 10 changed")
TARGETS = {(1000, "unchanged"): 3.0, (1000, "1 in 10 changed"): 3.0,
           (10000, "unchanged"): 9.0, (10000, "1 in 10 changed"): 4.0}
"""Speed-up over rss2email the project aims at (issue 7); peak RSS at most 150 MiB at
10,000 feeds, and at most 1.5 s of CPU for an unchanged daemon tick over 10,000 feeds."""
RSS_TARGET_MIB = 150.0
DAEMON_CPU_TARGET = 1.5


def bench(count: int, work: Path, origin: str, docroot: Path, smtp_port: int, sink: Sink,
          r2e: Path, interval: int, daemon: bool
          ) -> tuple[dict[str, dict[str, Measure]], DaemonFigure | None]:
    results: dict[str, dict[str, Measure]] = {"notifier": {}, "rss2email": {}}
    folder = work / f"n{count}"
    folder.mkdir()
    log = folder / "notifier.log"
    write_feeds(docroot, origin, count, changed=False)
    config = write_notifier_config(folder, origin, count, smtp_port, interval)
    check = subprocess.run([notifier_command(), "check", "-c", str(config)], capture_output=True,
                           text=True, timeout=600, check=False)
    if check.returncode != 0:
        raise RuntimeError(f"notifier check failed:\n{check.stdout}{check.stderr}")
    once = [notifier_command(), "run", "--once", "-q", "-c", str(config)]
    cfg, data = write_r2e_config(folder, origin, count, smtp_port)
    r2e_log = folder / "rss2email.log"
    base = [str(r2e), "-c", str(cfg), "-d", str(data)]
    # The tools take turns, run by run, so that both meet the same load from whatever else
    # the machine runs; one tool's three runs after the other's made the comparison one of
    # two moments as much as of two tools. Both see the same files at each step.
    mine, theirs = results["notifier"], results["rss2email"]
    mine["first run"] = timed(once, log, sink)
    theirs["first run"] = timed([*base, "run", "--no-send"], r2e_log, sink)
    mine["unchanged"] = timed(once, log, sink)
    theirs["unchanged"] = timed([*base, "run"], r2e_log, sink)
    write_feeds(docroot, origin, count, changed=True)
    mine["1 in 10 changed"] = timed(once, log, sink)
    theirs["1 in 10 changed"] = timed([*base, "run"], r2e_log, sink)
    # Unchanged since the changed run, as for every poll of its interval.
    figure = daemon_tick(config, count, interval, log) if daemon else None
    for tool, tool_runs in results.items():
        for name, m in tool_runs.items():
            if m.status != 0:
                print(f"warning: {tool} {name} (N={count}) exited {m.status}; "
                      f"see its log", file=sys.stderr)
    return results, figure


def print_table(all_results: dict[int, tuple[dict[str, dict[str, Measure]], DaemonFigure | None]],
                ) -> None:
    print("| N feeds | run | notifier wall | notifier CPU | notifier peak RSS "
          "| rss2email wall | rss2email CPU | rss2email peak RSS | speed-up (wall) "
          "| speed-up (CPU) | target (wall) |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for count, (results, _) in all_results.items():
        for name in SCENARIOS:
            n, r = results["notifier"][name], results["rss2email"][name]
            speed = r.wall / n.wall if n.wall else 0.0
            # CPU (parse workers included) is the steadier figure on a machine shared with
            # other work, where wall time depends on who else runs.
            cpu_speed = r.cpu / n.cpu if n.cpu else 0.0
            print(f"| {count:,} | {name} | {n.wall:.2f} s | {n.cpu:.2f} s | {n.rss_mib:.0f} MiB "
                  f"| {r.wall:.2f} s | {r.cpu:.2f} s | {r.rss_mib:.0f} MiB | {speed:.1f}x "
                  f"| {cpu_speed:.1f}x | {_target(count, name, speed, n.rss_mib)} |")
    print()
    print("| N feeds | run | emails from notifier | emails from rss2email | expected |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for count, (results, _) in all_results.items():
        for name in SCENARIOS:
            expected = (count + 9) // 10 if name == SCENARIOS[2] else 0
            print(f"| {count:,} | {name} | {results['notifier'][name].emails:,} "
                  f"| {results['rss2email'][name].emails:,} | {expected:,} |")
    figures = [(c, f) for c, (_, f) in all_results.items() if f is not None]
    if figures:
        print()
        print("| N feeds | daemon: CPU for one unchanged cycle (median) | each cycle "
              "| per feed | window | polls seen | RSS main | RSS parse workers | target |")
        print("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |")
        for count, f in figures:
            verdict = "-"
            if count >= 10000:
                verdict = (f"<= {DAEMON_CPU_TARGET:g} s: "
                           f"{'met' if f.cpu <= DAEMON_CPU_TARGET else 'NOT met'}")
            each = ", ".join(f"{c:.2f}" for c in f.cycles)
            print(f"| {count:,} | {f.cpu:.2f} s | {each} s "
                  f"| {f.cpu / max(1, f.polls) * 1000:.2f} ms "
                  f"| {f.window:.1f} s | {f.polls:,} | {f.rss_mib:.0f} MiB "
                  f"| {f.workers_rss_mib:.0f} MiB | {verdict} |")


def _target(count: int, name: str, speed: float, rss_mib: float) -> str:
    """The aim for this row and whether this run met it."""
    parts = []
    if (count, name) in TARGETS:
        goal = TARGETS[(count, name)]
        parts.append(f">= {goal:.0f}x: {'met' if speed >= goal else 'NOT met'}")
    if count >= 10000 and name != "first run":
        parts.append(f"RSS <= {RSS_TARGET_MIB:.0f} MiB: "
                     f"{'met' if rss_mib <= RSS_TARGET_MIB else 'NOT met'}")
    return "; ".join(parts) or "-"


@contextlib.contextmanager
def interrupts_as_exit() -> Iterator[None]:
    """SIGTERM ends the run like Ctrl-C, so the `finally` blocks stop nginx and the sink."""
    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (1 min), {five:.1f} (5 min)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--interval", type=int, default=60,
                        help="daemon poll interval in seconds (the in-daemon figure)")
    parser.add_argument("--no-daemon", action="store_true", help="skip the in-daemon figure")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args()
    nginx = ensure_nginx()
    compile_notifier()
    r2e = ensure_rss2email()
    work = Path(tempfile.mkdtemp(prefix="notifier-side-by-side-"))
    work.chmod(0o755)
    docroot = work / "www"
    docroot.mkdir()
    docroot.chmod(0o755)
    http_port, smtp_port = free_port(), free_port()
    origin = f"http://127.0.0.1:{http_port}"
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    server: subprocess.Popen[bytes] | None = None
    all_results: dict[int, tuple[dict[str, dict[str, Measure]], DaemonFigure | None]] = {}
    loads: list[str] = []
    try:
        with interrupts_as_exit():
            controller.start()
            server = start_nginx(nginx, work, docroot, http_port)
            for count in args.feeds:
                print(f"N={count}: running ...", file=sys.stderr, flush=True)
                loads.append(f"N={count}: load average {_load()} at the start")
                all_results[count] = bench(count, work, origin, docroot, smtp_port, sink, r2e,
                                           args.interval, not args.no_daemon)
                loads.append(f"N={count}: load average {_load()} at the end")
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
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if all_results:
        print(f"notifier vs rss2email {R2E_VERSION}; Python {sys.version.split()[0]}, "
              f"{os.cpu_count()} cores, nginx on loopback, SMTP sink (aiosmtpd)")
        # Other work on the machine slows both tools' wall times: say how busy it was.
        print("; ".join(loads))
        print()
        print_table(all_results)


if __name__ == "__main__":
    main()
