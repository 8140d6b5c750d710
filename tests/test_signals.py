"""Stopping, reloading and logging as an operator meets them: Ctrl-C in a terminal, SIGTERM
from a service manager, SIGHUP, systemd's notify socket, JSON logs and -v/-vv. The real
command runs as a subprocess against a local blog."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from notifier import __version__
from tests.support.blog_server import POST_PATH, BlogServer
from tests.support.daemon import cli_env, running, wait_until
from tests.support.webhook_receiver import WebhookReceiver

LIBRARIES = ("aiohttp", "apscheduler", "asyncio", "httpcore", "httpx")


def write_config(tmp_path: Path, blog: BlogServer, hook: WebhookReceiver) -> Path:
    path = tmp_path / "notifier.yaml"
    path.write_text(f"""\
state: sqlite:///state.db
defaults: {{interval: 1s, jitter: 0, backfill: 2}}
channels:
  hook: {{type: webhook, url: "{hook.url}", format: json}}
subscriptions:
  - name: thread
    url: {blog.url(POST_PATH + "feed/atom/")}
    notify: [hook]
""", encoding="utf-8")
    return path


@pytest.fixture
def config(tmp_path: Path, blog_server: BlogServer, webhook_receiver: WebhookReceiver) -> Path:
    return write_config(tmp_path, blog_server, webhook_receiver)


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text()
        found += [int(p) for p in text.split()]
    return found


@pytest.mark.parametrize("signum,group", [(signal.SIGINT, True), (signal.SIGTERM, False),
                                          (signal.SIGTERM, True)],
                         ids=["ctrl-c-to-the-group", "sigterm", "sigterm-to-the-group"])
def test_stop_signals_end_every_process_without_a_traceback(
        config: Path, tmp_path: Path, webhook_receiver: WebhookReceiver,
        signum: int, group: bool) -> None:
    with running(config, tmp_path / "daemon.log") as daemon:
        webhook_receiver.wait_for(2, timeout=30)  # a body was parsed: the workers run
        workers = wait_until(lambda: children(daemon.proc.pid), 10, "parse workers")
        time.sleep(0.5)
        daemon.signal(signum, group=group)
        assert daemon.wait() == 0
        log = daemon.log
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log
    assert log.rstrip().endswith("stopped")
    for pid in workers:
        wait_until(lambda pid=pid: not Path(f"/proc/{pid}").exists()  # type: ignore[misc]
                   or "zombie" in Path(f"/proc/{pid}/status").read_text().lower(),
                   10, f"parse worker {pid} to exit")


def _starting_worker(pid: int) -> bool:
    """Whether a parse worker of `pid` exists (most likely still importing)."""
    for child in children(pid):
        try:
            if b"notifier.poll.parseworker" in Path(f"/proc/{child}/cmdline").read_bytes():
                return True
        except OSError:
            continue
    return False


def test_ctrl_c_while_a_parse_worker_starts_prints_no_traceback(
        config: Path, tmp_path: Path) -> None:
    # The narrow moment: a parse worker still importing its modules, before it can ignore
    # SIGINT, as right after `notifier run` in a terminal.
    with running(config, tmp_path / "daemon.log") as daemon:
        wait_until(lambda: _starting_worker(daemon.proc.pid), 30, "a parse worker",
                   every=0.002)
        daemon.signal(signal.SIGINT, group=True)
        assert daemon.wait() == 0
        log = daemon.log
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log
    # The worker was not killed by it: the poll in flight finished instead of failing.
    assert "parser worker did not start" not in log and "WARNING" not in log.split(
        "stopping:")[1], log
    assert log.rstrip().endswith("stopped")


def test_sighup_reloads_instead_of_killing(config: Path, tmp_path: Path) -> None:
    with running(config, tmp_path / "daemon.log") as daemon:
        daemon.wait_log("running:")
        # The first poll says what a baseline is: a first run reports nothing old.
        daemon.wait_log("baseline recorded for 1 subscription: entries already there "
                        "are not reported (beyond `backfill`), new ones from now on are")
        daemon.signal(signal.SIGHUP)
        daemon.wait_log("reload applied: subscriptions: unchanged; channels: unchanged")
        assert daemon.proc.poll() is None
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0


def test_systemd_notify_ready_watchdog_reloading_stopping(
        config: Path, tmp_path: Path) -> None:
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(0.5)
        messages: list[str] = []

        def receive_until(wanted: str, timeout: float = 30) -> None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    messages.append(sock.recv(4096).decode())
                except TimeoutError:
                    continue
                if wanted in messages[-1].splitlines():
                    return
            raise AssertionError(f"no {wanted} in {messages}")

        env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "600000"}
        with running(config, tmp_path / "daemon.log", env=env) as daemon:
            receive_until("READY=1")
            assert "STATUS=polling 1 subscriptions for 1 channels" in messages[-1]
            receive_until("WATCHDOG=1")
            receive_until("WATCHDOG=1")
            daemon.signal(signal.SIGHUP)
            receive_until("RELOADING=1")
            receive_until("READY=1")
            daemon.signal(signal.SIGTERM)
            receive_until("STOPPING=1")
            assert daemon.wait() == 0
    kinds = [m.splitlines()[0] for m in messages]
    assert kinds[0] == "READY=1" and kinds[-1] == "STOPPING=1"
    assert "Traceback" not in daemon.log


def run_once(config: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "notifier", *flags, "run", "--once", "-c",
                           str(config)], capture_output=True, text=True, timeout=120,
                          check=False, env=cli_env())


def test_json_log_is_one_object_per_line(config: Path) -> None:
    result = run_once(config, "--log-format", "json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert lines and all({"time", "level", "logger", "message"} <= set(x) for x in lines)
    assert any("cycle done" in x["message"] for x in lines)
    assert all(x["time"].endswith("Z") for x in lines)


def test_json_log_holds_a_configuration_error_too(config: Path) -> None:
    config.write_text(config.read_text().replace("notify: [hook]", "notify: [hoook]"))
    result = run_once(config, "--log-format", "json")
    assert result.returncode == 2
    (line,) = [json.loads(line) for line in result.stderr.splitlines()]
    assert line["level"] == "error"
    assert line["message"].startswith("configuration is not valid:\n")
    assert "no channel named 'hoook'; did you mean 'hook'?" in line["message"]


def test_verbose_is_notifier_debug_without_library_noise(
        config: Path, blog_server: BlogServer) -> None:
    def loggers(*flags: str) -> set[tuple[str, str]]:
        result = run_once(config, "--log-format", "json", *flags)
        assert result.returncode == 0, result.stderr
        return {(x["logger"].split(".")[0], x["level"])
                for x in map(json.loads, result.stderr.splitlines())}

    assert ("notifier", "debug") in loggers("-v")  # the baseline
    # Each run then delivers a new comment to the webhook, over httpx.
    blog_server.scenario = "02-markup-comment"
    once = loggers("-v")
    assert ("notifier", "debug") in once
    assert not {name for name, level in once if name in LIBRARIES and level == "debug"}
    blog_server.scenario = "03-burst-of-24"
    twice = loggers("-vv")
    assert {name for name, level in twice if name in LIBRARIES and level == "debug"}, twice


def test_version() -> None:
    result = subprocess.run([sys.executable, "-m", "notifier", "--version"],
                            capture_output=True, text=True, timeout=60, check=False,
                            env=cli_env())
    assert result.returncode == 0 and result.stdout.strip() == f"notifier {__version__}"


def test_log_format_after_the_command_too(config: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "notifier", "check", "--log-format", "json",
                             "-c", str(config)], capture_output=True, text=True, timeout=60,
                            check=False, env=cli_env())
    assert result.returncode == 0, result.stderr
