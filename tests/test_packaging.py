"""The package as users install it: `python -m build` makes an sdist and a wheel, and each
installs into a new virtual environment and runs, with its templates, demo feeds and
documentation (the systemd unit's `Documentation=`) in place.

Slow (a build and a dependency install, about a minute with a warm pip cache) and needs the
package index; `pytest -m "not packaging"` leaves it out while iterating. CI runs it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from notifier import __version__
from tests.support.blog_server import BlogServer
from tests.support.daemon import free_port, running, wait_until
from tests.support.webhook_receiver import WebhookReceiver

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "contrib" / "notifier.service"


def _run(args: list[str | Path], cwd: Path, timeout: float = 600) -> str:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith("NOTIFIER_")}
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{args}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.mark.packaging
def test_sdist_and_wheel_install_in_a_clean_venv_and_run(tmp_path: Path) -> None:
    # Build from a copy, so the working tree gains no build/ or egg-info.
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "*_cache", ".hypothesis", "build", "dist", "*.egg-info",
        "__pycache__", "tests", "benchmarks", "*.db*"))
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--outdir", dist, source], tmp_path)
    (wheel,) = dist.glob("notifier-*.whl")
    (sdist,) = dist.glob("notifier-*.tar.gz")

    names = zipfile.ZipFile(wheel).namelist()
    assert "notifier/py.typed" in names
    assert "notifier/templates/email/html.j2" in names
    assert "notifier/demo/2-new-comment.atom.xml" in names
    assert any(n.endswith("data/share/doc/notifier/README.md") for n in names)

    env = tmp_path / "env"
    venv.EnvBuilder(with_pip=True).create(env)
    python, notifier = env / "bin" / "python", env / "bin" / "notifier"
    _run([python, "-m", "pip", "install", "--quiet", wheel], tmp_path)
    assert _run([notifier, "--version"], tmp_path).strip() == f"notifier {__version__}"
    # Templates and the demo's feeds come from the installed package.
    out = _run([notifier, "demo"], tmp_path, timeout=180)
    assert "New comment by Markup Tester" in out
    # The unit's Documentation= names a file the install put in place.
    documented = re.search(r"^Documentation=file:///opt/notifier/(\S+)$", UNIT.read_text(),
                           re.MULTILINE)
    assert documented is not None
    assert (env / documented.group(1)).is_file()

    _run([python, "-m", "pip", "install", "--quiet", "--force-reinstall", "--no-deps",
          sdist], tmp_path)
    assert _run([notifier, "--version"], tmp_path).strip() == f"notifier {__version__}"
    assert (env / documented.group(1)).is_file()


CONTAINERFILE = ROOT / "Containerfile"


def test_the_container_health_check_asks_healthz_of_a_running_daemon(
        tmp_path: Path, blog_server: BlogServer, webhook_receiver: WebhookReceiver) -> None:
    """The image's HEALTHCHECK command, run as the container runtime would (no runtime runs
    here), against a real daemon: healthy while it runs, unhealthy once it is gone."""
    text = CONTAINERFILE.read_text(encoding="utf-8")
    assert re.search(r"^USER notifier$", text, re.MULTILINE)  # not root
    assert 'VOLUME ["/var/lib/notifier"]' in text
    match = re.search(r"^\s*CMD (\[.*healthz.*\])$", text, re.MULTILINE)
    assert match is not None
    command = json.loads(match.group(1))
    assert command[0] == "python" and "127.0.0.1:9464/healthz" in command[-1]
    port = free_port()
    check = [sys.executable, *command[1:-1], command[-1].replace(":9464/", f":{port}/")]
    config = tmp_path / "notifier.yaml"
    config.write_text(f"""\
state: sqlite:///state.db
admin: {{listen: "127.0.0.1:{port}"}}
channels:
  hook: {{type: webhook, url: "{webhook_receiver.url}"}}
subscriptions:
  - {{name: blog, url: "{blog_server.origin}/", notify: [hook]}}
""", encoding="utf-8")
    with running(config, tmp_path / "daemon.log") as daemon:
        daemon.wait_log("admin listener on")
        wait_until(lambda: subprocess.run(check, capture_output=True, timeout=30,
                                          check=False).returncode == 0, 30, "healthy")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0
    gone = subprocess.run(check, capture_output=True, timeout=30, check=False)
    assert gone.returncode == 1
