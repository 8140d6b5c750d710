"""Run `notifier run` as a real subprocess for tests of signals, reload and the admin listener.

The daemon gets its own process group (as under a service manager or a terminal's job
control), its log goes to a file the test reads, and it is always stopped, with SIGKILL to the
group as the last resort, so no test leaves a process behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent.parent
T = TypeVar("T")


def free_port() -> int:
    """A loopback port free right now (the daemon binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NOTIFIER_", "NOTIFY_SOCKET", "WATCHDOG_"))}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra or {})
    return env


def wait_until(check: Callable[[], T | None], timeout: float, what: str,
               every: float = 0.1, explain: Callable[[], object] | None = None) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout` s,
    with what `explain` returns then (the state a reader needs to see why)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            detail = f" {explain()}" if explain is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
        time.sleep(every)


def run_cli(*args: str, timeout: float = 60.0,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`notifier ARGS` in a new interpreter, to its end, its output captured."""
    return subprocess.run([sys.executable, "-m", "notifier", *args], capture_output=True,
                          text=True, env=cli_env(env), timeout=timeout, check=False)


def start(config: Path, log: Path, *args: str,
          env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`notifier ARGS run -c CONFIG` in its own process group, so that a signal to the
    group reaches its parse workers too, as a service manager's would."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "notifier", *args, "run", "-c", str(config)],
            stdout=out, stderr=out, env=cli_env(env), start_new_session=True)


def signal_group(proc: subprocess.Popen[bytes], signum: int) -> None:
    """Signal the daemon's process group; one that is gone already is no error."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signum)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the daemon and its workers and reap it, as a crash or `kill -9` would."""
    signal_group(proc, signal.SIGKILL)
    proc.wait(timeout=10)


def stop_groups(procs: Iterable[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    """Stop daemons as a service manager would: each woken if paused and sent SIGTERM, then
    given `timeout` s to exit before SIGKILL; all reaped."""
    started = list(procs)
    for proc in started:
        if proc.poll() is None:
            signal_group(proc, signal.SIGCONT)
            signal_group(proc, signal.SIGTERM)
    for proc in started:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)


class Daemon:
    def __init__(self, config: Path, log: Path, *args: str,
                 env: Mapping[str, str] | None = None) -> None:
        self.log_path = log
        self.proc = start(config, log, *args, env=env)

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_log(self, text: str, timeout: float = 30.0, count: int = 1) -> str:
        def seen() -> str | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited ({self.proc.returncode}):\n{self.log}")
            log = self.log
            return log if log.count(text) >= count else None
        return wait_until(seen, timeout, f"{text!r} in the daemon's log")

    def signal(self, signum: int, *, group: bool = False) -> None:
        if group:
            os.killpg(self.proc.pid, signum)
        else:
            self.proc.send_signal(signum)

    def wait(self, timeout: float = 20.0) -> int:
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            kill_group(self.proc)
        # Parse workers of a daemon stopped cleanly exit with it; make sure of it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def running(config: Path, log: Path, *args: str,
            env: Mapping[str, str] | None = None) -> Iterator[Daemon]:
    daemon = Daemon(config, log, *args, env=env)
    try:
        yield daemon
    finally:
        daemon.kill()
